"""Phase convolutions compute what Keras's strided convolutions compute, gradients included."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import values_and_gradients
from tfgan_app.models import phase_conv

# (kernel, stride, image channels, feature channels, image size, bias)
CASES = [(5, 2, 1, 64, 28, True),   # configs/tf_tutorial.cfg's image layers
         (5, 2, 3, 8, 16, False),
         (4, 2, 3, 16, 32, True),   # configs/cifar10.cfg's RGB image layers, fewer filters
         (4, 2, 3, 8, 64, True),    # RGB at 64 and 128 px
         (4, 2, 3, 4, 128, True),
         (4, 2, 2, 5, 12, True),    # even kernel: asymmetric padding
         (3, 2, 1, 4, 10, True),
         (5, 3, 2, 3, 9, True),     # stride 3
         (4, 4, 1, 2, 8, False)]    # kernel = stride: no padding


def _same_weights(reference, layer, shape):
  reference.build(shape)
  layer.build(shape)
  for index, (want, have) in enumerate(zip(reference.weights, layer.weights)):
    value = 0.1 * tf.random.stateless_normal(want.shape, seed=[index, 1])  # tanh unsaturated
    want.assign(value)
    have.assign(value)


def _assert_close(expected, got):
  for want, have in zip(expected, got):
    assert want.shape == have.shape
    want, have = want.numpy(), have.numpy()
    np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("kernel, stride, image_channels, channels, size, bias", CASES)
def test_conv_matches_keras(kernel, stride, image_channels, channels, size, bias):
  reference = keras.layers.Conv2D(channels, kernel, strides=stride, padding="same",
                                  use_bias=bias)
  layer = phase_conv.PhaseConv2D(channels, kernel, strides=stride, padding="same", use_bias=bias)
  shape = [3, size, size, image_channels]
  _same_weights(reference, layer, shape)
  inputs = tf.random.stateless_normal(shape, seed=[7, 8])
  _assert_close(values_and_gradients(reference, inputs), values_and_gradients(layer, inputs))


@pytest.mark.parametrize("kernel, stride, image_channels, channels, size, bias", CASES)
def test_transposed_conv_matches_keras(kernel, stride, image_channels, channels, size, bias):
  reference = keras.layers.Conv2DTranspose(image_channels, kernel, strides=stride,
                                           padding="same", use_bias=bias, activation="tanh")
  layer = phase_conv.PhaseConv2DTranspose(image_channels, kernel, strides=stride,
                                          padding="same", use_bias=bias, activation="tanh")
  shape = [3, size // stride, size // stride, channels]
  _same_weights(reference, layer, shape)
  inputs = tf.random.stateless_normal(shape, seed=[9, 10])
  _assert_close(values_and_gradients(reference, inputs), values_and_gradients(layer, inputs))


def test_regrouped_taps_cover_every_kernel_tap_once():
  for kernel, stride in [(5, 2), (4, 2), (3, 2), (5, 3), (4, 4)]:
    for transpose in (False, True):
      taps, _, _ = phase_conv._phase_taps(kernel, stride, transpose)  # pylint: disable=protected-access
      used = sorted(taps[taps >= 0].tolist())
      assert used == list(range(kernel)), (kernel, stride, transpose)


def test_falls_back_to_keras_where_phases_do_not_apply():
  # Odd size for a stride-2 "same" convolution, and "valid" padding: Keras's own result.
  for size, padding in [(9, "same"), (8, "valid")]:
    reference = keras.layers.Conv2D(4, 3, strides=2, padding=padding)
    layer = phase_conv.PhaseConv2D(4, 3, strides=2, padding=padding)
    shape = [2, size, size, 1]
    _same_weights(reference, layer, shape)
    inputs = tf.random.stateless_normal(shape, seed=[1, 1])
    np.testing.assert_allclose(layer(inputs).numpy(), reference(inputs).numpy(), rtol=1e-5,
                               atol=1e-6)


def test_layers_round_trip_through_keras_serialization():
  for layer in (phase_conv.PhaseConv2D(4, 5, strides=2, padding="same", name="a"),
                phase_conv.PhaseConv2DTranspose(1, 5, strides=2, padding="same", name="b")):
    rebuilt = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(rebuilt) is type(layer) and rebuilt.strides == (2, 2)
