"""Dropout whose masks cost a third of Keras's under a bfloat16 policy.

Keras's `Dropout` draws one uniform number per unit in the layer's compute dtype and selects;
on the CPU a bfloat16 uniform costs 1.5x a float32 one, and in configs/tf_tutorial.cfg (whose
discriminator drops 9.6 million units per step) mask generation was the largest cost after the
convolutions (15% of the op time of a step, measured with the TensorFlow profiler). A keep/drop
decision needs far fewer random bits: here each one takes 16 bits of a random uint32, so one
Philox draw decides two units, and the mask is applied with a multiplication (whose gradient is
the same multiplication) instead of a select.

16 bits resolve the rate to 1/65536: a unit is dropped with probability
round(rate * 65536) / 65536 (0.300003 for 0.3), and kept units are scaled by the inverse of
the exact keep probability, so the expected output is the input. Everything else is Keras's:
the layer's `SeedGenerator` (checkpointed with the model, see `random_states`), `training`,
serialization. `noise_shape` and rate 1 fall back to Keras's implementation.
"""

import keras
from keras import layers
import tensorflow as tf

_LEVELS = 1 << 16  # Values of a 16-bit random number.


def drop_threshold(rate: float) -> int:
  """Units whose 16 random bits are below this are dropped."""
  return min(_LEVELS, max(0, round(rate * _LEVELS)))


def dropout(inputs: tf.Tensor, rate: float, seed: tf.Tensor) -> tf.Tensor:
  """`inputs` with units dropped with probability ~`rate`, the rest scaled to keep the mean.

  Args:
    inputs: any shape and floating dtype.
    rate: in [0, 1); resolved to a multiple of 1/65536.
    seed: int32 [2], a stateless-RNG seed (the same seed gives the same mask).
  """
  threshold = drop_threshold(rate)
  if threshold == 0:
    return inputs
  scale = _LEVELS / (_LEVELS - threshold)  # 1 / P(keep)
  size = tf.size(inputs)
  bits = tf.random.stateless_uniform([(size + 1) // 2], seed=seed, minval=None, maxval=None,
                                     dtype=tf.uint32)
  halves = tf.reshape(tf.bitcast(bits, tf.uint16), [-1])[:size]  # two decisions per draw
  keep = tf.reshape(halves >= threshold, tf.shape(inputs))
  return inputs * (tf.cast(keep, inputs.dtype) * tf.cast(scale, inputs.dtype))


@keras.saving.register_keras_serializable(package="tfgan_app")
class FastDropout(layers.Dropout):
  """`keras.layers.Dropout` with 16-bit masks (see the module docstring)."""

  def call(self, inputs, training=False):
    if not training or self.rate == 0:
      return inputs
    if self.noise_shape is not None or drop_threshold(self.rate) == _LEVELS:
      return super().call(inputs, training=training)
    seed = self.seed_generator.next()
    # Keras's TensorFlow backend maps its int64 seed state to the int32 seed that stateless ops
    # take the same way.
    seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
    return dropout(inputs, self.rate, seed)
