"""FastDropout: the drop rate, the scaling, determinism by seed, and Keras's behaviour kept."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgan_app.models import fast_dropout


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_drops_at_the_rate_and_keeps_the_mean(dtype):
  inputs = tf.ones([64, 14, 14, 64], dtype)  # 802,816 units
  outputs = fast_dropout.dropout(inputs, 0.3, tf.constant([4, 5], tf.int32))
  values = tf.cast(outputs, tf.float32).numpy()
  dropped = np.mean(values == 0)
  # Binomial standard deviation sqrt(0.3 * 0.7 / 802816) = 5e-4: 0.3 within 5 of them.
  assert abs(dropped - 0.3) < 2.5e-3
  kept = values[values != 0]
  scale = 65536 / (65536 - fast_dropout.drop_threshold(0.3))
  np.testing.assert_allclose(kept, np.float32(tf.cast(scale, dtype).numpy()), rtol=0)
  assert outputs.dtype == inputs.dtype and outputs.shape == inputs.shape
  # Mean preserved (float32: exactly in expectation; bfloat16 rounds the scale to 8 bits).
  assert abs(values.mean() - 1.0) < (0.01 if dtype == "float32" else 0.012)


def test_masks_differ_by_seed_and_repeat_by_seed():
  inputs = tf.ones([1001], tf.float32)  # odd: the last draw's second half goes unused
  first = fast_dropout.dropout(inputs, 0.5, tf.constant([1, 2], tf.int32)).numpy()
  again = fast_dropout.dropout(inputs, 0.5, tf.constant([1, 2], tf.int32)).numpy()
  other = fast_dropout.dropout(inputs, 0.5, tf.constant([1, 3], tf.int32)).numpy()
  np.testing.assert_array_equal(first, again)
  assert np.mean(first != other) > 0.3
  # Both halves of each 32-bit draw are used: neighbours are not copies of each other.
  assert np.mean(first[0:1000:2] != first[1:1001:2]) > 0.3


def test_gradient_is_the_mask():
  inputs = tf.random.normal([32, 50])
  seed = tf.constant([7, 8], tf.int32)
  with tf.GradientTape() as tape:
    tape.watch(inputs)
    outputs = fast_dropout.dropout(inputs, 0.25, seed)
  gradient = tape.gradient(outputs, inputs).numpy()
  mask = fast_dropout.dropout(tf.ones_like(inputs), 0.25, seed).numpy()
  np.testing.assert_allclose(gradient, mask, rtol=1e-6)
  np.testing.assert_allclose(outputs.numpy(), inputs.numpy() * mask, rtol=1e-6)


def test_threshold_resolves_the_rate_to_sixteen_bits():
  assert fast_dropout.drop_threshold(0.0) == 0
  assert fast_dropout.drop_threshold(0.3) == 19661  # 0.3 * 65536 = 19660.8
  assert fast_dropout.drop_threshold(0.5) == 32768
  assert fast_dropout.drop_threshold(1.0) == 65536


def test_layer_is_identity_outside_training_and_advances_its_seed_state():
  layer = fast_dropout.FastDropout(0.3, seed=11)
  inputs = tf.ones([8, 40])
  np.testing.assert_array_equal(layer(inputs, training=False).numpy(), inputs.numpy())
  state = layer.seed_generator.state.numpy().copy()
  first = layer(inputs, training=True).numpy()
  second = layer(inputs, training=True).numpy()
  assert not np.array_equal(state, layer.seed_generator.state.numpy())
  assert np.mean(first != second) > 0.2  # a new mask per call
  # The same seed state gives the same masks (what an exact resume relies on).
  replay = fast_dropout.FastDropout(0.3, seed=11)
  np.testing.assert_array_equal(replay(inputs, training=True).numpy(), first)


def test_layer_falls_back_to_keras_for_rate_one_and_noise_shape():
  inputs = tf.ones([4, 6, 5])
  np.testing.assert_array_equal(fast_dropout.FastDropout(1.0)(inputs, training=True).numpy(),
                                np.zeros([4, 6, 5]))
  shared = fast_dropout.FastDropout(0.5, noise_shape=(4, 1, 5), seed=3)(inputs, training=True)
  # noise_shape broadcasts one mask over axis 1, as Keras's Dropout does.
  values = shared.numpy()
  np.testing.assert_array_equal(values, np.broadcast_to(values[:, :1, :], values.shape))


def test_layer_round_trips_through_keras_serialization():
  layer = fast_dropout.FastDropout(0.25, name="drop")
  rebuilt = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
  assert isinstance(rebuilt, fast_dropout.FastDropout) and rebuilt.rate == 0.25
