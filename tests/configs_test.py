"""Every configs/*.cfg parses with the real flag definitions into a valid TrainConfig."""

import glob
import os

import pytest

from tfgan_app.training import flags as app_flags
from conftest import REPO_ROOT

CONFIGS = sorted(glob.glob(os.path.join(REPO_ROOT, "configs", "*.cfg")))


def test_there_are_configs():
  assert any(path.endswith("dcgan.cfg") for path in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_parses(path):
  app_flags.FLAGS.unparse_flags()
  try:
    app_flags.FLAGS(["train", f"--flagfile={path}"])
    config = app_flags.config_from_flags()
  finally:
    app_flags.FLAGS.unparse_flags()
  text = open(path).read()
  assert text.startswith("#"), "a config opens with comments: command, run time, result"
  assert "python -m tfgan_app.train --flagfile=configs/" in text
  assert config.train_steps > 0 and config.batch_size > 0


def test_dcgan_config_is_the_dcgan_recipe():
  config = _parse("dcgan.cfg")
  assert config.dataset == "mnist" and config.model_name == "dcgan"
  assert config.architecture == "dcgan" and config.export
  assert config.loss == "non_saturating" and config.update == "alternating"
  # DCGAN's Adam betas at twice its learning rate, held steady by lazy R1 (the header gives the
  # measurements).
  assert (config.g_lr, config.d_lr, config.beta1) == (4e-4, 4e-4, 0.5)
  assert (config.r1_gamma, config.r1_every) == (0.1, 16)
  assert (config.kernel_size, config.g_refine_blocks, config.g_refine_kernel_size) == (5, 2, 3)
  # The flags' default batch is DCGAN's 128; the config halves it for twice the updates.
  assert app_flags.FLAGS["batch_size"].default == 128 and config.batch_size == 64


def test_dcgan_config_trains_within_half_the_former_recipes_compute():
  """The MNIST bar's budget (issue #20): half of the former recipe's 10,000 steps x 64 images x
  0.5721 GFLOP, counted the way `flops` counts (R1 included)."""
  config = _parse("dcgan.cfg")
  per_image, total = _training_flops(config)
  former = config.with_updates(g_refine_kernel_size=0, r1_gamma=0.0, train_steps=10000)
  former_per_image, former_total = _training_flops(former)
  assert per_image == pytest.approx(0.3743e9, rel=1e-3)
  assert former_per_image == pytest.approx(0.5721e9, rel=1e-3)
  assert total <= former_total / 2 and total > 0.99 * former_total / 2, (total, former_total)


def _training_flops(config):
  """(FLOPs per real image, FLOPs of the whole run) of an MNIST config's training."""
  from tfgan_app.performance import flops  # pylint: disable=import-outside-toplevel
  from tfgan_app.runs import restore  # pylint: disable=import-outside-toplevel
  model = restore.build_model(config, (28, 28, 1), "float32")
  step = flops.config_training_flops(model.generator, model.discriminator, config, (28, 28, 1))
  return step.per_real_image, step.per_example_step * config.batch_size * config.train_steps


def _parse(name):
  app_flags.FLAGS.unparse_flags()
  try:
    app_flags.FLAGS(["train", f"--flagfile={os.path.join(REPO_ROOT, 'configs', name)}"])
    return app_flags.config_from_flags()
  finally:
    app_flags.FLAGS.unparse_flags()


def test_ring8_config_is_the_issue_recipe():
  config = _parse("ring8.cfg")
  assert (config.model_name, config.architecture, config.dataset) == ("ring8", "mlp", "ring8")
  assert config.loss == "non_saturating" and config.export
  # Callbacks fire where the step lands: multiples of steps_per_execution.
  for every in (config.log_every, config.sample_every, config.checkpoint_every):
    assert every % config.steps_per_execution == 0


def test_gan_mnist_config_is_an_mlp_gan_on_mnist():
  config = _parse("gan_mnist.cfg")
  assert (config.architecture, config.dataset, config.model_name) == ("mlp", "mnist",
                                                                      "gan_mnist")
  assert config.d_dropout > 0  # Goodfellow et al. trained D with dropout.
  for every in (config.log_every, config.sample_every, config.checkpoint_every):
    assert every % config.steps_per_execution == 0


def test_tf_tutorial_config_is_the_tutorials_recipe():
  app_flags.FLAGS.unparse_flags()
  try:
    app_flags.FLAGS(["train",
                     f"--flagfile={os.path.join(REPO_ROOT, 'configs', 'tf_tutorial.cfg')}"])
    config = app_flags.config_from_flags()
  finally:
    app_flags.FLAGS.unparse_flags()
  assert config.architecture == "tf_tutorial" and config.dataset == "mnist"
  assert (config.latent_dim, config.batch_size, config.kernel_size) == (100, 256, 5)
  assert (config.g_filters, config.d_filters) == (64, 64)
  # Adam(1e-4) with Keras's default betas for both players; the tutorial's losses.
  assert (config.g_lr, config.d_lr, config.beta1, config.beta2) == (1e-4, 1e-4, 0.9, 0.999)
  assert config.loss == "non_saturating" and config.label_smoothing == 0.0
  assert config.update == "alternating" and config.d_steps == 1 and config.ema_decay == 0.0


def test_cifar10_config_is_a_colour_dcgan_with_dcgans_optimiser():
  config = _parse("cifar10.cfg")
  assert (config.dataset, config.architecture, config.model_name) == ("cifar10", "dcgan",
                                                                      "cifar10")
  assert config.split == "train" and config.image_size is None  # CIFAR-10's own 32x32.
  assert (config.g_lr, config.d_lr, config.beta1, config.batch_size) == (2e-4, 2e-4, 0.5, 64)
  assert (config.g_filters, config.d_filters, config.kernel_size) == (64, 64, 4)
  assert config.mixed_precision == "auto" and config.export and config.channels == 3
  text = open(os.path.join(REPO_ROOT, "configs", "cifar10.cfg")).read()
  # Its header documents the offline run on the CIFAR-10 JPEG folder.
  assert "--dataset=folder:../shared/images/cifar10_jpeg" in text


def test_cifar10_config_takes_the_jpeg_folder_instead_of_tfds():
  app_flags.FLAGS.unparse_flags()
  try:
    app_flags.FLAGS(["train", f"--flagfile={os.path.join(REPO_ROOT, 'configs', 'cifar10.cfg')}",
                     "--dataset=folder:../shared/images/cifar10_jpeg"])
    config = app_flags.config_from_flags()
  finally:
    app_flags.FLAGS.unparse_flags()
  assert config.dataset == "folder:../shared/images/cifar10_jpeg" and config.split == "train"
