"""Minibatch discrimination: the layer's numbers against numpy, and what it lets D see."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgan_app.models import minibatch_discrimination as mbd
from tfgan_app.models import registry as models


def _numpy_minibatch_features(features, projection, num_kernels, kernel_dim):
  """Salimans et al. 2016 §3.2, written out with loops over pairs, j = i left out."""
  projected = (features @ projection).reshape(len(features), num_kernels, kernel_dim)
  closeness = np.zeros((len(features), num_kernels))
  for i in range(len(features)):
    for j in range(len(features)):
      if i != j:
        closeness[i] += np.exp(-np.abs(projected[i] - projected[j]).sum(axis=-1))
  return np.concatenate([features, closeness], axis=1)


def test_layer_matches_numpy():
  rng = np.random.default_rng(0)
  features = rng.normal(size=(6, 7)).astype(np.float32)
  layer = mbd.MinibatchDiscrimination(num_kernels=4, kernel_dim=3)
  layer(features)
  projection = rng.normal(scale=0.3, size=(7, 12)).astype(np.float32)
  layer.projection.assign(projection)
  got = layer(features).numpy()
  assert got.shape == (6, 7 + 4)
  expected = _numpy_minibatch_features(features.astype(np.float64),
                                       projection.astype(np.float64), 4, 3)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  # The distances are not all huge: the appended features carry real, non-zero values.
  assert 0.01 < expected[:, 7:].mean() < 5.0


def test_identical_batch_gives_n_minus_one_and_far_apart_batch_gives_zero():
  layer = mbd.MinibatchDiscrimination(num_kernels=5, kernel_dim=2)
  same = np.tile(np.random.default_rng(1).normal(size=(1, 8)).astype(np.float32), (4, 1))
  np.testing.assert_allclose(layer(same).numpy()[:, 8:], np.full((4, 5), 3.0), rtol=1e-6)
  far = (np.eye(4, 8) * 1e4).astype(np.float32)
  np.testing.assert_allclose(layer(far).numpy()[:, 8:], 0.0, atol=1e-6)
  # A single example has no neighbours.
  np.testing.assert_allclose(layer(same[:1]).numpy()[:, 8:], 0.0)


def test_gradients_flow_to_the_projection_and_the_features():
  layer = mbd.MinibatchDiscrimination(num_kernels=3, kernel_dim=2)
  features = tf.Variable(np.random.default_rng(2).normal(size=(5, 4)).astype(np.float32))
  with tf.GradientTape() as tape:
    total = tf.reduce_sum(layer(features)[:, 4:])
  projection_grad, features_grad = tape.gradient(total, [layer.projection, features])
  assert np.abs(projection_grad.numpy()).sum() > 0 and np.abs(features_grad.numpy()).sum() > 0


def test_identity_when_off_and_config_round_trip():
  assert isinstance(mbd.layer_or_identity(0), keras.layers.Identity)
  layer = mbd.layer_or_identity(6, 4)
  rebuilt = mbd.MinibatchDiscrimination.from_config(layer.get_config())
  assert (rebuilt.num_kernels, rebuilt.kernel_dim) == (6, 4)
  with pytest.raises(ValueError, match="num_kernels and kernel_dim must be >= 1"):
    mbd.MinibatchDiscrimination(num_kernels=-1)


def test_computes_in_float32_under_mixed_precision():
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    layer = mbd.MinibatchDiscrimination(num_kernels=3, kernel_dim=2)
    out = layer(tf.ones([4, 5], tf.bfloat16))
  finally:
    keras.mixed_precision.set_global_policy("float32")
  assert out.dtype == tf.float32 and layer.projection.dtype == "float32"
  np.testing.assert_allclose(out.numpy()[:, 5:], 3.0)


def _discriminator(minibatch_kernels):
  keras.utils.set_random_seed(4)
  return models.build_discriminator("dcgan", (28, 28, 1), filters=8,
                                    minibatch_kernels=minibatch_kernels, minibatch_kernel_dim=3)


def test_discriminator_sees_batch_diversity():
  # In inference mode (BatchNorm on its moving statistics) a plain D scores each image on its
  # own; with minibatch discrimination the score of one image depends on its batch.
  images = tf.random.stateless_uniform([8, 28, 28, 1], seed=[5, 5], minval=-1, maxval=1)
  identical = tf.repeat(images[:1], 8, axis=0)
  for kernels, batch_matters in ((0, False), (16, True)):
    discriminator = _discriminator(kernels)
    alone_in_diversity = discriminator(images, training=False).numpy()[0, 0]
    among_copies = discriminator(identical, training=False).numpy()[:, 0]
    np.testing.assert_allclose(among_copies, among_copies[0], rtol=1e-5)
    if batch_matters:
      assert abs(alone_in_diversity - among_copies[0]) > 1e-3
    else:
      assert alone_in_diversity == pytest.approx(among_copies[0], rel=1e-5, abs=1e-6)


def test_discriminator_features_are_the_last_hidden_layer():
  discriminator = _discriminator(16)
  images = tf.random.stateless_uniform([3, 28, 28, 1], seed=[6, 6], minval=-1, maxval=1)
  features = discriminator.features(images, training=False)
  assert features.shape == (3, 7 * 7 * 16)  # Two stride-2 blocks of 8 and 16 channels.
  logits = discriminator.to_logit(discriminator.minibatch(features))
  np.testing.assert_allclose(discriminator(images, training=False).numpy(), logits.numpy(),
                             rtol=1e-6)


def test_checkpoint_holds_the_projection(tmp_path):
  discriminator = _discriminator(16)
  path = tf.train.Checkpoint(model=discriminator).save(str(tmp_path / "d"))
  saved = [name for name, _ in tf.train.list_variables(path) if name.startswith("model/")]
  assert len(saved) == len(discriminator.variables)
  assert any("minibatch" in name for name in saved)


def test_judged_against_last_rows_compares_each_row_with_the_reference_rows_only():
  rng = np.random.default_rng(1)
  judged = rng.normal(size=(3, 7)).astype(np.float32)
  reference = rng.normal(size=(5, 7)).astype(np.float32)
  discriminator = models.build_discriminator("mlp", (7,), filters=0, hidden_units=(16,),
                                             dropout=0.0, minibatch_kernels=4,
                                             minibatch_kernel_dim=3)
  discriminator(reference)
  with mbd.judged_against_last_rows(discriminator, 5):
    got = discriminator(np.concatenate([judged, reference]), training=False).numpy()
  # Each judged row gets what it gets as one more member of the reference batch, and each
  # reference row what it gets in the reference batch alone.
  for i in range(3):
    alone = discriminator(np.concatenate([judged[i:i + 1], reference]), training=False).numpy()
    np.testing.assert_allclose(got[i], alone[0], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got[3:], discriminator(reference, training=False).numpy(),
                             rtol=1e-5, atol=1e-6)
  # Outside the block the whole batch counts again.
  layer = discriminator.minibatch
  assert layer.reference_rows is None
  whole = discriminator(np.concatenate([judged, reference]), training=False).numpy()
  assert not np.allclose(whole[:3], got[:3])
  with pytest.raises(ValueError, match="num_rows must be >= 1"):
    with mbd.judged_against_last_rows(discriminator, 0):
      pass
