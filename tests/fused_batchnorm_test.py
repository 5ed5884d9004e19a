"""FusedBatchNormalization computes what keras.layers.BatchNormalization computes."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgan_app.models import fused_batchnorm


def _pair(shape, policy, **kwargs):
  layers = (keras.layers.BatchNormalization(dtype=policy, **kwargs),
            fused_batchnorm.FusedBatchNormalization(dtype=policy, **kwargs))
  for layer in layers:
    layer.build(shape)
    layer.gamma.assign(np.linspace(0.5, 1.5, shape[-1]))
    layer.beta.assign(np.linspace(-1.0, 1.0, shape[-1]))
  return layers


def _train_call(layer, inputs):
  with tf.GradientTape() as tape:
    tape.watch(inputs)
    outputs = layer(inputs, training=True)
    loss = tf.reduce_sum(tf.cast(outputs, tf.float32) ** 3)
  grads = tape.gradient(loss, [inputs, layer.gamma, layer.beta])
  return [outputs] + grads + [layer.moving_mean, layer.moving_variance,
                              layer(inputs, training=False)]


@pytest.mark.parametrize("shape", [[8, 5, 5, 3], [16, 7]])
@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_training_and_inference_match_keras(shape, policy):
  keras_layer, fused_layer = _pair(shape, policy, momentum=0.9, epsilon=1e-5)
  inputs = tf.random.stateless_normal(shape, seed=[1, 2]) * 3.0 + 1.0
  names = ["outputs", "d_inputs", "d_gamma", "d_beta", "moving_mean", "moving_variance",
           "inference"]
  for _ in range(2):  # the second call starts from updated moving statistics
    expected, got = _train_call(keras_layer, inputs), _train_call(fused_layer, inputs)
  for name, want, have in zip(names, expected, got):
    assert have.dtype == want.dtype, name
    want = tf.cast(want, tf.float32).numpy()
    have = tf.cast(have, tf.float32).numpy()
    # Float32 sums in a different order; gradients are of a cubic loss (values in the 1000s).
    np.testing.assert_allclose(have, want, rtol=1e-4, atol=2e-3 * np.abs(want).max(),
                               err_msg=name)
  assert fused_layer(inputs, training=True).dtype == keras_layer(inputs, training=True).dtype


def test_moving_variance_is_the_biased_batch_variance():
  inputs = tf.constant([[0.0], [2.0]])  # biased variance 1, unbiased 2
  layer = fused_batchnorm.FusedBatchNormalization(momentum=0.0)
  layer(inputs, training=True)
  np.testing.assert_allclose(layer.moving_mean.numpy(), [1.0])
  np.testing.assert_allclose(layer.moving_variance.numpy(), [1.0], rtol=1e-6)


def test_synchronized_falls_back_to_keras():
  layer = fused_batchnorm.FusedBatchNormalization(synchronized=True)
  inputs = tf.random.stateless_normal([6, 4, 4, 2], seed=[3, 4])
  assert not layer._fused_applies(inputs, True, None)  # pylint: disable=protected-access
  plain = fused_batchnorm.FusedBatchNormalization()
  assert plain._fused_applies(inputs, True, None)  # pylint: disable=protected-access
  outputs = layer(inputs, training=True).numpy()
  np.testing.assert_allclose(outputs.mean(axis=(0, 1, 2)), [0.0, 0.0], atol=1e-5)


def test_checkpoints_load_across_keras_and_fused_layers(tmp_path):
  shape = [4, 3, 3, 2]
  keras_layer, fused_layer = _pair(shape, "float32")
  keras_layer(tf.random.stateless_normal(shape, seed=[5, 6]), training=True)
  path = tf.train.Checkpoint(layer=keras_layer).write(str(tmp_path / "bn"))
  tf.train.Checkpoint(layer=fused_layer).read(path).assert_consumed()
  for want, have in zip(keras_layer.weights, fused_layer.weights):
    np.testing.assert_array_equal(have.numpy(), want.numpy())
