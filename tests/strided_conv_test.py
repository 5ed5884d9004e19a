"""Strided convolutions with the kernel gradient as a forward convolution: Keras's numbers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import values_and_gradients
from tfgan_app.models import strided_conv

# (kernel, stride, input channels, output channels, size)
CASES = [(5, 2, 64, 128, 14),  # configs/tf_tutorial.cfg's discriminator layer
         (5, 2, 3, 8, 16),
         (4, 2, 2, 5, 12),     # even kernel: asymmetric padding
         (3, 2, 4, 4, 9),      # odd size
         (5, 3, 2, 3, 10),
         (2, 3, 2, 3, 8)]      # stride > kernel: windows skip rows


def _compare(reference, layer, shape):
  reference.build(shape)
  layer.build(shape)
  for index, (want, have) in enumerate(zip(reference.weights, layer.weights)):
    value = 0.1 * tf.random.stateless_normal(want.shape, seed=[index, 2])
    want.assign(value)
    have.assign(value)
  inputs = tf.random.stateless_normal(shape, seed=[3, 4])
  for want, have in zip(values_and_gradients(reference, inputs),
                        values_and_gradients(layer, inputs)):
    assert want.shape == have.shape
    want, have = want.numpy(), have.numpy()
    np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("kernel, stride, channels, filters, size", CASES)
def test_conv_matches_keras(kernel, stride, channels, filters, size):
  _compare(keras.layers.Conv2D(filters, kernel, strides=stride, padding="same"),
           strided_conv.StridedConv2D(filters, kernel, strides=stride, padding="same"),
           [3, size, size, channels])


@pytest.mark.parametrize("kernel, stride, channels, filters, size", CASES)
def test_transposed_conv_matches_keras(kernel, stride, channels, filters, size):
  _compare(keras.layers.Conv2DTranspose(channels, kernel, strides=stride, padding="same",
                                        activation="tanh"),
           strided_conv.StridedConv2DTranspose(channels, kernel, strides=stride, padding="same",
                                               activation="tanh"),
           [3, size // stride + 1, size // stride + 1, filters])


def test_filter_gradient_is_tensorflows_backprop_filter():
  inputs = tf.random.stateless_normal([4, 14, 14, 6], seed=[5, 6])
  out_backprop = tf.random.stateless_normal([4, 7, 7, 5], seed=[7, 8])
  expected = tf.raw_ops.Conv2DBackpropFilter(input=inputs, filter_sizes=[5, 5, 6, 5],
                                             out_backprop=out_backprop, strides=[1, 2, 2, 1],
                                             padding="SAME")
  got = strided_conv.filter_gradient(inputs, out_backprop, kernel_size=5, stride=2)
  np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)


def test_mixed_bfloat16_gradients_reach_the_float32_kernel():
  layer = strided_conv.StridedConv2D(8, 5, strides=2, padding="same", dtype="mixed_bfloat16")
  inputs = tf.random.stateless_normal([2, 8, 8, 3], seed=[9, 10])
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(tf.cast(layer(inputs), tf.float32))
  kernel_gradient = tape.gradient(loss, layer.kernel)
  assert kernel_gradient.dtype == tf.float32 and kernel_gradient.shape == (5, 5, 3, 8)
  assert np.abs(kernel_gradient.numpy()).sum() > 0


def test_layers_round_trip_through_keras_serialization():
  for layer in (strided_conv.StridedConv2D(4, 5, strides=2, padding="same", name="a"),
                strided_conv.StridedConv2DTranspose(4, 5, strides=2, padding="same", name="b")):
    rebuilt = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(rebuilt) is type(layer) and rebuilt.strides == (2, 2)
