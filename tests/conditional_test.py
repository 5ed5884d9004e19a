"""Class-conditional GANs (--conditioning): conditional BatchNorm, projection and AC-GAN
discriminators, the generator's labels, labelled data, grids, resume, replicas, refusals."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgan_app.common.tfgan_compat import tfgan
from tfgan_app.data import datasets as data
from tfgan_app.gan import conditioning
from tfgan_app.gan import replicas
from tfgan_app.models import conditional_batchnorm
from tfgan_app.models import registry as models
from tfgan_app.runs import restore
from tfgan_app.runs import workdir as workdir_lib
from tfgan_app.training import callbacks as callbacks_lib
from tfgan_app.training import loop as train
from conftest import checkpoint_values, resume_with_field_left_out, run_script_ok, tiny_config

_EPS = 1e-5


def _latest_values(workdir):
  return checkpoint_values(tf.train.latest_checkpoint(
      os.path.join(str(workdir), workdir_lib.CHECKPOINT_DIR)))


@pytest.mark.parametrize("shape", [(6, 3), (4, 2, 2, 3)], ids=["dense", "conv"])
def test_conditional_batchnorm_scales_and_shifts_per_class(shape):
  rng = np.random.default_rng(0)
  x = rng.normal(size=shape).astype(np.float32)
  labels = np.array([0, 2, 1, 2, 0, 1][:shape[0]], np.int32)
  layer = conditional_batchnorm.ConditionalBatchNormalization(3)
  layer(x, labels)  # Builds gamma, beta [3, 3] at 1 and 0.
  gamma = np.array([[1.0, 2.0, 0.5], [-1.0, 0.0, 3.0], [0.2, 0.3, 0.4]], np.float32)
  beta = np.array([[0.0, 1.0, -1.0], [2.0, 0.5, 0.0], [-0.3, 0.0, 0.7]], np.float32)
  layer.gamma.assign(gamma)
  layer.beta.assign(beta)
  axes = tuple(range(len(shape) - 1))
  mean, variance = x.mean(axis=axes), x.var(axis=axes)
  per_example = (-1,) + (1,) * (len(shape) - 2) + (3,)
  expected = ((x - mean) / np.sqrt(variance + _EPS) * gamma[labels].reshape(per_example)
              + beta[labels].reshape(per_example))
  np.testing.assert_allclose(layer(x, labels, training=True).numpy(), expected, atol=1e-5)
  # Inference: the moving averages, one training step away from (0, 1) at momentum 0.9.
  moving_mean, moving_variance = 0.1 * mean, 0.9 + 0.1 * variance
  expected = ((x - moving_mean) / np.sqrt(moving_variance + _EPS)
              * gamma[labels].reshape(per_example) + beta[labels].reshape(per_example))
  np.testing.assert_allclose(layer(x, labels, training=False).numpy(), expected, atol=1e-5)


def test_conditional_batchnorm_starts_as_plain_batchnorm():
  x = np.random.default_rng(1).normal(size=(8, 4)).astype(np.float32)
  conditional = conditional_batchnorm.ConditionalBatchNormalization(5)
  plain = keras.layers.BatchNormalization(momentum=0.9, epsilon=_EPS)
  np.testing.assert_allclose(conditional(x, np.arange(8) % 5, training=True).numpy(),
                             plain(x, training=True).numpy(), atol=1e-5)


def test_conditional_generators_follow_the_label():
  for architecture in ("dcgan", "mlp"):
    generator = models.build_generator(architecture, 4, (28, 28, 1), 8, num_classes=3,
                                       hidden_units=(16,))
    assert generator.num_classes == 3
    weights = generator.get_weights()
    # Make the classes differ (dcgan's class tables start equal at 1 and 0).
    generator.set_weights([w + np.random.default_rng(i).normal(0, 0.3, w.shape)
                           for i, w in enumerate(weights)])
    latents = tf.random.stateless_normal([2, 4], seed=[1, 2])
    images = [generator(latents, labels=tf.fill([2], y), training=False).numpy()
              for y in range(3)]
    assert images[0].shape == (2, 28, 28, 1) and images[0].dtype == np.float32
    assert np.abs(images[0]).max() <= 1.0
    assert not np.allclose(images[0], images[1]) and not np.allclose(images[1], images[2])
    with pytest.raises(ValueError, match="needs labels"):
      generator(latents, training=False)
  unconditional = models.build_generator("dcgan", 4, (28, 28, 1), 8)
  assert unconditional.num_classes == 0


def test_projection_logit_equals_hand_computation():
  d = models.build_discriminator("mlp", (5,), 8, hidden_units=(4,), dropout=0.0,
                                 conditioning="projection", num_classes=3)
  rng = np.random.default_rng(2)
  d.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in d.get_weights()])
  base = d.base
  w0, b0 = (v.numpy() for v in base.hidden0.weights)
  w1, b1 = (v.numpy() for v in base.to_logit.weights)
  table = d.embedding.embeddings.numpy()  # V [3, 4]
  x = rng.normal(size=(6, 5)).astype(np.float32)
  y = np.array([0, 1, 2, 2, 1, 0], np.int32)
  pre = x @ w0 + b0
  phi = np.where(pre > 0, pre, 0.2 * pre)  # LeakyReLU(0.2)
  expected = phi @ w1 + b1 + np.sum(table[y] * phi, axis=1, keepdims=True)
  np.testing.assert_allclose(d(x, labels=y).numpy(), expected, rtol=1e-5, atol=1e-5)
  logits, classes = d.outputs(x, y)
  assert classes is None and logits.shape == (6, 1)


def test_acgan_head_and_losses_match_the_closed_form_and_tfgan():
  d = models.build_discriminator("dcgan", (28, 28, 1), 8, conditioning="acgan", num_classes=10)
  images = tf.random.stateless_uniform([3, 28, 28, 1], seed=[3, 4], minval=-1, maxval=1)
  logits, classes = d.outputs(images, tf.constant([1, 2, 3]))
  assert logits.shape == (3, 1) and classes.shape == (3, 10)
  np.testing.assert_allclose(d(images).numpy(), logits.numpy())  # The logit ignores y.

  real = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]], np.float32)
  fake = np.array([[0.0, 3.0, 1.0], [-2.0, 1.0, 0.0]], np.float32)
  y_real, y_fake = np.array([0, 2]), np.array([1, 2])

  def cross_entropy(logits, labels):
    return np.log(np.exp(logits).sum(axis=1)) - logits[np.arange(len(labels)), labels]

  got = conditioning.acgan_discriminator_loss_per_example(real, y_real, fake, y_fake).numpy()
  np.testing.assert_allclose(got, cross_entropy(real, y_real) + cross_entropy(fake, y_fake),
                             rtol=1e-6)
  # Golden values: CE([2, 0, -1], 0) = log(e^2 + 1 + e^-1) - 2 = 0.1698...
  np.testing.assert_allclose(got[0], 0.16984602 + 0.16984602, rtol=1e-5)
  # TF-GAN's losses (mean over the batch, one label set for real and generated images).
  onehot = tf.one_hot(y_fake, 3)
  tfgan_d = tfgan.losses.wargs.acgan_discriminator_loss(real, fake, onehot, add_summaries=False)
  ours = conditioning.acgan_discriminator_loss_per_example(real, y_fake, fake, y_fake)
  np.testing.assert_allclose(float(tfgan_d), float(tf.reduce_mean(ours)), rtol=1e-5)
  tfgan_g = tfgan.losses.wargs.acgan_generator_loss(fake, onehot, add_summaries=False)
  np.testing.assert_allclose(
      float(tfgan_g),
      float(tf.reduce_mean(conditioning.classification_loss_per_example(fake, y_fake))),
      rtol=1e-5)


def test_generator_labels_are_stateless_uniform_and_sliced_per_replica():
  draw = lambda step, purpose, size=4000: replicas.replica_labels(
      5, step, purpose, size, size, 10).numpy()
  first = draw(7, 0)
  np.testing.assert_array_equal(first, draw(7, 0))
  assert not np.array_equal(first, draw(8, 0)) and not np.array_equal(first, draw(7, 1))
  assert first.dtype == np.int32 and first.min() == 0 and first.max() == 9
  counts = np.bincount(first, minlength=10)
  assert counts.min() > 300 and counts.max() < 500  # 400 expected per class.
  run_script_ok("""
import numpy as np
from tfgan_app.gan import replicas
from tfgan_app.hardware import distribute
strategy = distribute.build_strategy("mirrored", num_cpu_replicas=2)
per_replica = strategy.run(lambda: replicas.replica_labels(3, 7, 0, 8, 4, 10))
a, b = (x.numpy() for x in strategy.experimental_local_results(per_replica))
np.testing.assert_array_equal(np.concatenate([a, b]), replicas.replica_labels(3, 7, 0, 8, 8, 10))
print("ok")
""")


def test_labelled_stream_keeps_labels_with_their_images():
  values = np.arange(40, dtype=np.uint8)
  images = tf.data.Dataset.from_tensor_slices(
      (np.broadcast_to(values[:, None, None, None], (40, 2, 2, 1)).copy(),
       (values % 7).astype(np.int32)))
  stream = data.make_train_dataset(images, 40, 8, d_steps=2, seed=1, random_flip=True)
  for element in stream.take(3):
    assert len(element) == 2
    for batch_images, labels in element:
      pixels = np.round((batch_images.numpy()[:, 0, 0, 0] + 1.0) * 127.5).astype(int)
      np.testing.assert_array_equal(labels.numpy(), pixels % 7)


def test_tfds_class_names_come_from_the_label_feature(data_dir):
  info = data.prepare("mnist", "train[:100]", data_dir, download=False, labels=True)
  assert info.class_names == tuple(str(d) for d in range(10))
  assert data.prepare("mnist", "train[:100]", data_dir, download=False).class_names is None
  first = next(iter(data.load_uint8_images(info, data_dir, cache="none", labels=True)))
  assert first[0].shape == (28, 28, 1) and first[1].dtype == tf.int32


def test_class_rows_one_per_class_capped():
  classes, columns = callbacks_lib.class_rows(10, 100)
  np.testing.assert_array_equal(classes, np.arange(10))
  assert columns == 10
  classes, columns = callbacks_lib.class_rows(100, 64)
  assert len(classes) == callbacks_lib.MAX_CLASS_ROWS and classes[0] == 0 and classes[-1] == 99
  assert columns == 4 and len(set(classes.tolist())) == len(classes)


@pytest.mark.parametrize("conditioning_kind", ["projection", "acgan"])
def test_resume_reaches_the_uninterrupted_weights_and_writes_class_grids(
    tmp_path, data_dir, conditioning_kind):
  straight = tiny_config(tmp_path / "straight", data_dir, export=False, num_sample_images=6,
                         conditioning=conditioning_kind, d_steps=2)
  result = train.train_and_export(straight)
  assert result.step == 4
  if conditioning_kind == "acgan":
    assert {"d_class_loss", "g_class_loss", "real_class_accuracy"} <= set(result.last_logs)
  spec = json.loads((tmp_path / "straight" / "run_spec.json").read_text())
  assert spec["conditioning"] == conditioning_kind and spec["num_classes"] == 10
  assert spec[workdir_lib.CLASS_NAMES_KEY] == [str(d) for d in range(10)]
  grid = tf.io.decode_png(tf.io.read_file(str(tmp_path / "straight" / "samples" /
                                              "step_0000004.png")))
  assert grid.shape == (10 * 29 - 1, 1 * 29 - 1, 1)  # ceil(6 / 10) = 1 column, 10 rows.
  resumed = straight.with_updates(workdir=str(tmp_path / "resumed"), train_steps=2)
  train.train_and_export(resumed)
  assert train.train_and_export(resumed.with_updates(train_steps=4)).step == 4
  expected, got = _latest_values(tmp_path / "straight"), _latest_values(tmp_path / "resumed")
  assert set(expected) == set(got)
  for name in expected:
    np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
  other = "acgan" if conditioning_kind == "projection" else "none"
  with pytest.raises(workdir_lib.ConfigError, match="conditioning"):
    train.train_and_export(resumed.with_updates(train_steps=6, conditioning=other))


def test_unconditional_workdirs_from_before_conditioning_still_resume(tmp_path, data_dir):
  spec = resume_with_field_left_out(tiny_config(tmp_path / "run", data_dir), "conditioning")
  assert spec["conditioning"] == "none" and "num_classes" not in spec


@pytest.mark.parametrize("overrides, message", [
    (dict(dataset="ring8", architecture="mlp"), "toy distribution of points without labels"),
    (dict(architecture="tf_tutorial"), "needs a class-conditional architecture"),
    (dict(update="simultaneous"), "--update=alternating only"),
    (dict(g_objective="feature_matching"), "learn nothing about the class"),
    (dict(gradient_penalty=10.0), "cannot use --gradient_penalty"),
    (dict(architecture="gmm"), "applies to GANs"),
    (dict(num_classes=7), "has 10 classes"),
], ids=["toy", "tf_tutorial", "simultaneous", "feature_matching", "wgan_gp", "gmm",
        "num_classes"])
def test_unworkable_combinations_are_refused_before_training(tmp_path, data_dir, overrides,
                                                             message):
  config = tiny_config(tmp_path / "run", data_dir, conditioning="projection", **overrides)
  with pytest.raises((workdir_lib.ConfigError, data.DatasetError), match=message):
    train.train_and_export(config)
  assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_a_folder_without_class_folders_is_refused(tmp_path, data_dir):
  folder = tmp_path / "flat"
  folder.mkdir()
  for index in range(3):
    pixels = tf.fill([8, 8, 1], tf.constant(index * 40, tf.uint8))
    tf.io.write_file(str(folder / f"{index}.png"), tf.io.encode_png(pixels))
  config = tiny_config(tmp_path / "run", data_dir, dataset=f"folder:{folder}",
                       split="train", conditioning="acgan")
  with pytest.raises(workdir_lib.ConfigError, match="has no class subdirectories"):
    train.train_and_export(config)


@pytest.mark.parametrize("overrides", [
    dict(architecture="mlp", conditioning="acgan", g_units="16", d_units="16"),
    dict(conditioning="projection", minibatch_discrimination=True, minibatch_kernels=4,
         ema_decay=0.9, diffaugment="translation"),
], ids=["mlp_acgan", "dcgan_projection_minibatch_ema_diffaugment"])
def test_conditional_runs_train_with_other_options(tmp_path, data_dir, overrides):
  config = tiny_config(tmp_path / "run", data_dir, train_steps=2, export=False, **overrides)
  result = train.train_and_export(config)
  assert result.step == 2 and np.isfinite(result.last_logs["d_loss"])
  model = restore.restore_run(str(tmp_path / "run")).model
  assert model.sampling_generator.num_classes == 10  # Rebuilt from run_spec.json.
  images = model.sampling_generator(tf.zeros([3, 8]), labels=tf.constant([0, 4, 9]),
                                    training=False)
  assert images.shape == (3, 28, 28, 1)
