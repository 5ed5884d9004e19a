"""SNGAN's ResNet generator and discriminator (models/resnet.py): shapes, structure, skip
connections, refusals, FLOPs by hand, a tiny colour run through the train command with its
export and exact resume (serving does not depend on the architecture: colour_test), and the
class-conditional G and projection D with a tiny conditional run and its labelled export."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgan_app.exporting import contract
from tfgan_app.exporting import saved_model as export
from tfgan_app.models import registry as models
from tfgan_app.models import resnet
from tfgan_app.models import spectral_norm
from tfgan_app.performance import flops
from tfgan_app.runs.workdir import ConfigError
from tfgan_app.training import loop as train
from conftest import HANG_TIMEOUT_S, REPO_ROOT, straight_and_resumed_checkpoints, tiny_config

LATENT_DIM = 8
WIDTH = 8


def _build(size, channels, policy="float32"):
  keras.mixed_precision.set_global_policy(policy)
  try:
    keras.utils.set_random_seed(0)
    return models.build_models("resnet", LATENT_DIM, (size, size, channels), WIDTH, WIDTH)
  finally:
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("size,channels", [(32, 3), (32, 1), (64, 3), (64, 1)])
def test_shapes_and_ranges(size, channels):
  generator, discriminator = _build(size, channels)
  latents = tf.random.stateless_normal([5, LATENT_DIM], seed=[1, 2]) * 10.0
  images = generator(latents, training=False)
  assert images.shape == (5, size, size, channels) and images.dtype == tf.float32
  assert images.numpy().min() >= -1.0 and images.numpy().max() <= 1.0
  assert np.abs(images.numpy()).max() > 0.0  # Not a constant image.
  logits = discriminator(images, training=False)
  assert logits.shape == (5, 1) and logits.dtype == tf.float32
  features = discriminator.features(images, training=False)
  assert features.shape == (5, WIDTH)
  # The logit is one dense layer over the features (where a projection D would attach).
  np.testing.assert_allclose(discriminator.to_logit(features).numpy(), logits.numpy(),
                             rtol=1e-5, atol=1e-6)


def test_sizes_map_to_blocks():
  assert resnet.resnet_plan(32) == (4, 3)
  assert resnet.resnet_plan(48) == (6, 3)
  assert resnet.resnet_plan(64) == (4, 4)
  assert resnet.resnet_plan(128) == (4, 5)
  for size, g_blocks, d_down in ((32, 3, 2), (64, 4, 3)):
    generator, discriminator = _build(size, 3)
    assert generator.num_blocks == g_blocks
    # Down blocks to 8x8, then SNGAN's two blocks at 8x8.
    assert discriminator.num_down_blocks == d_down and discriminator.num_blocks == d_down + 2
    for index in range(discriminator.num_blocks):
      assert hasattr(discriminator, f"block{index}_shortcut") == (index < d_down)
    x = tf.zeros([1, size, size, 3])
    for index in range(discriminator.num_blocks):
      x = discriminator.block(x, index)
    assert x.shape == (1, 8, 8, WIDTH)


def _trainable_parameters(model):
  return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


def _conv_parameters(kernel, cin, cout):
  return kernel * kernel * cin * cout + cout


def test_parameter_counts_by_hand(tmp_path):
  generator, discriminator = _build(32, 3)
  z, g, d, c = LATENT_DIM, WIDTH, WIDTH, 3
  conv = _conv_parameters
  batch_norm = 2 * g  # gamma, beta
  g_block = 2 * batch_norm + 2 * conv(3, g, g) + conv(1, g, g)
  expected_g = (z * 16 * g + 16 * g) + 3 * g_block + batch_norm + conv(3, g, c)
  assert _trainable_parameters(generator) == expected_g
  expected_d = (conv(3, c, d) + conv(3, d, d) + conv(1, c, d)  # optimized block
                + conv(3, d, d) * 2 + conv(1, d, d)  # down block
                + 2 * 2 * conv(3, d, d)  # two blocks with identity shortcuts
                + d + 1)  # to_logit
  assert _trainable_parameters(discriminator) == expected_d
  # Every variable, BatchNorm statistics included, is in a checkpoint (layers as attributes).
  for model in (generator, discriminator):
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / model.name))
    names = [name for name, _ in tf.train.list_variables(path) if name.startswith("model/")]
    assert len(names) == len(model.variables)


def _zero_residual(block_conv):
  block_conv.kernel.assign(tf.zeros_like(block_conv.kernel))
  block_conv.bias.assign(tf.zeros_like(block_conv.bias))


def test_a_block_without_residual_is_its_shortcut():
  generator, discriminator = _build(32, 3)
  x = tf.random.stateless_normal([2, 4, 4, WIDTH], seed=[3, 4])
  _zero_residual(generator.block0_conv2)
  out = generator.up_block(x, 0).numpy()
  # Nearest-neighbour upsampling of the 1x1 shortcut: every 2x2 patch is one shortcut pixel.
  shortcut = (np.einsum("bhwc,cd->bhwd", x.numpy(), generator.block0_shortcut.kernel.numpy()[0, 0])
              + generator.block0_shortcut.bias.numpy())
  np.testing.assert_allclose(out, shortcut.repeat(2, axis=1).repeat(2, axis=2), rtol=1e-5,
                             atol=1e-5)
  # With the residual, the block is something else.
  generator.block0_conv2.kernel.assign(tf.ones_like(generator.block0_conv2.kernel))
  assert np.abs(generator.up_block(x, 0).numpy() - out).max() > 1e-3

  images = tf.random.stateless_uniform([2, 32, 32, 3], seed=[5, 6], minval=-1, maxval=1)
  _zero_residual(discriminator.block0_conv2)
  pooled = images.numpy().reshape(2, 16, 2, 16, 2, 3).mean(axis=(2, 4))
  expected = (np.einsum("bhwc,cd->bhwd", pooled,
                        discriminator.block0_shortcut.kernel.numpy()[0, 0])
              + discriminator.block0_shortcut.bias.numpy())
  np.testing.assert_allclose(discriminator.block(images, 0).numpy(), expected, rtol=1e-5,
                             atol=1e-5)
  # A block that keeps resolution and width has the identity as its shortcut.
  features = tf.random.stateless_normal([2, 8, 8, WIDTH], seed=[7, 8])
  _zero_residual(discriminator.block3_conv2)
  np.testing.assert_array_equal(discriminator.block(features, 3).numpy(), features.numpy())


def test_mixed_bfloat16_outputs_float32_and_finite_gradients():
  generator, discriminator = _build(32, 3, "mixed_bfloat16")
  assert generator.block0_conv1.compute_dtype == "bfloat16"
  latents = tf.random.stateless_normal([4, LATENT_DIM], seed=[3, 4])
  with tf.GradientTape(persistent=True) as tape:
    fake = generator(latents, training=True)
    logits = discriminator(fake, training=True)
    features = discriminator.features(fake, training=True)
    loss = tf.reduce_mean(tf.nn.softplus(-logits))
  assert fake.dtype == logits.dtype == features.dtype == tf.float32
  for model in (generator, discriminator):
    gradients = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in gradients)


@pytest.mark.parametrize("shape,message", [
    ((28, 28, 1), "base \\* 2\\*\\*n with base 4..7 and side >= 32 .*got 28x28"),
    ((16, 16, 3), "got 16x16"),
    ((36, 36, 3), "accepted: 32, 40, 48, 56, 64, .*got 36x36"),
    ((64, 32, 3), "makes square images .*got 64x32"),
    ((2,), "needs images \\[H, W, C\\]"),
])
def test_refuses_sizes_it_cannot_make(shape, message):
  with pytest.raises(ValueError, match=message):
    models.check_example_shape("resnet", shape)


def test_refuses_options_of_other_architectures():
  with pytest.raises(ValueError, match="--g_refine_blocks=1: --architecture=resnet has no such"):
    models.check_options("resnet", g_refine_blocks=1)
  with pytest.raises(ValueError, match="--minibatch_discrimination: --architecture=resnet"):
    models.build_discriminator("resnet", (32, 32, 3), 8, minibatch_kernels=4)
  models.check_options("dcgan", g_refine_blocks=1, minibatch_kernels=4)


def test_training_refuses_28x28_and_dcgan_options_before_it_starts(tmp_path, data_dir,
                                                                   colour_folder):
  with pytest.raises(ConfigError, match="resnet makes square images .*got 28x28"):
    train.train_and_export(tiny_config(tmp_path / "mnist", data_dir, architecture="resnet"))
  with pytest.raises(ConfigError, match="--minibatch_discrimination: --architecture=resnet"):
    train.train_and_export(_config(tmp_path / "mb", colour_folder,
                                   minibatch_discrimination=True))
  assert not os.path.exists(tmp_path / "mnist" / "checkpoints")
  assert not os.path.exists(tmp_path / "mb" / "checkpoints")


def _conv_flops(side, kernel, cin, cout):
  """2 x multiply-adds of a stride-1 'same' convolution with a side x side output."""
  return 2 * side * side * kernel * kernel * cin * cout


def test_flops_by_hand():
  generator, discriminator = _build(32, 3)
  z, g, d, c = LATENT_DIM, WIDTH, WIDTH, 3
  conv = _conv_flops
  g_forward = 2 * z * 16 * g + conv(32, 3, g, c)
  for side in (4, 8, 16):  # input side of each up block
    g_forward += 2 * conv(2 * side, 3, g, g) + conv(side, 1, g, g)  # shortcut before upsampling
  d_forward = (conv(32, 3, c, d) + conv(32, 3, d, d) + conv(16, 1, c, d)  # shortcut after pool
               + 2 * conv(16, 3, d, d) + conv(8, 1, d, d)
               + 2 * 2 * conv(8, 3, d, d) + 2 * d)
  counted = flops.training_flops(generator, discriminator, z, (32, 32, c), "alternating", 1)
  assert counted.generator.forward == g_forward
  assert counted.discriminator.forward == d_forward
  # D's first layer convolves the images: its input gradient only for the generator's loss.
  assert counted.discriminator.layer_flops[0] == conv(32, 3, c, d)
  assert counted.per_real_image > 0


def _colour_folder(root, count=24, size=32):
  """`count` smooth colour PNGs (a random gradient per image) in two class folders."""
  rng = np.random.default_rng(0)
  ramp = np.linspace(0.0, 1.0, size)
  for index in range(count):
    folder = os.path.join(root, "ab"[index % 2])
    os.makedirs(folder, exist_ok=True)
    low, high = rng.uniform(0, 255, (2, 3))
    image = low + (high - low) * (ramp[:, None, None] + ramp[None, :, None]) / 2
    tf.io.write_file(os.path.join(folder, f"{index:03d}.png"),
                     tf.io.encode_png(image.astype(np.uint8)))
  return root


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory):
  return _colour_folder(str(tmp_path_factory.mktemp("colour")))


def _config(workdir, folder, **overrides):
  values = dict(dataset=f"folder:{folder}", split="train", architecture="resnet",
                batch_size=8, train_steps=4, checkpoint_every=2, sample_every=2, log_every=2,
                model_name="resnet", loss="hinge", beta1=0.0, beta2=0.9)
  values.update(overrides)
  return tiny_config(workdir, None, **values)


def test_train_command_exports_a_colour_resnet(tmp_path, colour_folder):
  config = _config(tmp_path / "run", colour_folder, train_steps=3, checkpoint_every=3,
                   sample_every=3, log_every=1)
  flagfile = tmp_path / "resnet.cfg"
  flagfile.write_text(config.to_flagfile())
  result = subprocess.run([sys.executable, "-m", "tfgan_app.train", f"--flagfile={flagfile}"],
                          cwd=REPO_ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
                          capture_output=True, text=True, timeout=HANG_TIMEOUT_S, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  version = tmp_path / "run" / "export" / "resnet" / "3"
  metadata = export.read_metadata(str(version))
  assert metadata["image_shape"] == [32, 32, 3]
  outputs = tf.saved_model.load(str(version)).signatures[export.SAMPLE_SIGNATURE](
      num_samples=tf.constant(3, tf.int32), seed=tf.constant(5, tf.int64))
  local = outputs[export.IMAGES].numpy()
  assert local.shape == (3, 32, 32, 3) and local.dtype == np.uint8


def test_resume_reaches_the_weights_of_an_uninterrupted_run(tmp_path, colour_folder):
  straight = _config(tmp_path / "straight", colour_folder, export=False)
  expected, got = straight_and_resumed_checkpoints(straight)
  assert set(expected) == set(got)
  assert any("block2_bn2/moving_mean" in name for name in got)
  for name in expected:
    np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


def test_conditional_generator_has_class_tables_and_follows_the_label():
  keras.utils.set_random_seed(0)
  generator = models.build_generator("resnet", LATENT_DIM, (32, 32, 3), 4, num_classes=3)
  assert generator.num_classes == 3 and generator.get_config()["num_classes"] == 3
  # Every BatchNorm of G (two per up block, the output one) has [classes, g] scale and shift.
  tables = {v.path: v.shape for v in generator.variables if v.path.endswith(("gamma", "beta"))}
  names = [f"block{i}_bn{j}" for i in range(3) for j in (1, 2)] + ["output_bn"]
  assert sorted(tables) == sorted(f"generator/{n}/{p}" for n in names for p in ("gamma", "beta"))
  assert set(tables.values()) == {(3, 4)}
  for layer_name in names:  # Different tables per class (they start equal at 1 and 0).
    layer = getattr(generator, layer_name)
    layer.gamma.assign(tf.random.stateless_normal([3, 4], seed=[1, len(layer_name)]) + 1.0)
    layer.beta.assign(tf.random.stateless_normal([3, 4], seed=[2, len(layer_name)]))
  latents = tf.random.stateless_normal([2, LATENT_DIM], seed=[1, 2])
  images = [generator(latents, labels=tf.fill([2], y), training=False).numpy() for y in range(3)]
  assert images[0].shape == (2, 32, 32, 3) and np.abs(images[0]).max() <= 1.0
  assert not np.allclose(images[0], images[1]) and not np.allclose(images[1], images[2])
  with pytest.raises(ValueError, match="needs labels"):
    generator(latents, training=False)
  # Unconditional: plain BatchNorm with [g] scale and shift, no labels, nothing renamed.
  plain = models.build_generator("resnet", LATENT_DIM, (32, 32, 3), 4)
  assert plain.num_classes == 0 and plain.block0_bn1.gamma.shape == (4,)


def test_projection_discriminator_with_spectral_norm_is_head_plus_projection():
  d = models.build_discriminator("resnet", (32, 32, 3), 4, spectral_norm=True,
                                 conditioning="projection", num_classes=3)
  base = d.base
  assert type(base.to_logit).__name__ == "SpectralDense"
  images = tf.random.stateless_uniform([4, 32, 32, 3], seed=[3, 4], minval=-1, maxval=1)
  labels = np.array([0, 2, 1, 2], np.int32)
  phi = base.features(images).numpy()  # [4, 4]
  # The logit layer by hand: W / sigma(W) from the stored power-iteration vector, plus bias.
  kernel, _, _ = spectral_norm.power_iteration(base.to_logit.kernel,
                                               tf.convert_to_tensor(base.to_logit.spectral_u))
  head = phi @ kernel.numpy() + base.to_logit.bias.numpy()
  np.testing.assert_allclose(base.head(tf.constant(phi)).numpy(), head, rtol=1e-5, atol=1e-6)
  table = d.embedding.embeddings.numpy()  # V [3, 4], not spectrally normalised
  expected = head + np.sum(table[labels] * phi, axis=1, keepdims=True)
  np.testing.assert_allclose(d(images, labels=labels).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_conditional_resnet_trains_and_exports_with_labels(tmp_path, colour_folder):
  config = _config(tmp_path / "run", colour_folder, train_steps=2, checkpoint_every=2,
                   sample_every=2, g_filters=4, d_filters=4, conditioning="projection",
                   spectral_norm=True)
  result = train.train_and_export(config)
  assert result.step == 2 and np.isfinite(result.last_logs["d_loss"])
  loaded = tf.saved_model.load(str(tmp_path / "run" / "export" / "resnet" / "2"))
  serving = loaded.signatures[export.SERVING_SIGNATURE]
  assert {name: spec.dtype.name for name, spec in serving.structured_input_signature[1].items()
          } == contract.CONDITIONAL_SIGNATURE_INPUTS[export.SERVING_SIGNATURE]
  latents = tf.random.stateless_normal([2, LATENT_DIM], seed=[5, 6])
  by_class = [serving(latents=latents, labels=tf.fill([2], y))[export.IMAGES].numpy()
              for y in range(2)]
  assert by_class[0].shape == (2, 32, 32, 3) and by_class[0].dtype == np.uint8
  assert not np.array_equal(by_class[0], by_class[1])
