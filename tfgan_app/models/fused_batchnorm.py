"""Keras's BatchNormalization computed by TensorFlow's fused kernel while training.

Keras 3 normalises with a chain of element-wise ops in float32: under a bfloat16 policy it casts
the activations up, computes the moments, normalises, scales and casts back, and the backward
pass repeats the chain. TensorFlow's `FusedBatchNormV3` (oneDNN on the CPU) does the same in
one kernel each way, reading bfloat16 and accumulating in float32. Measured on the 2-core
reference CPU, BatchNorm + LeakyReLU forward and backward at batch 256 under mixed_bfloat16:
[7, 7, 128] 13.2 -> 5.9 CPU ms, [14, 14, 64] 29.0 -> 9.6, [12544] 26.2 -> 10.3
(configs/tf_tutorial.cfg's generator has one of each).

Same layer otherwise: the same variables (checkpoints load either way), the same moving-average
update with the biased batch variance (the kernel returns the unbiased one, which is converted
back), the same output in inference. Cases the fused kernel does not cover fall back to Keras:
inference, synchronized (cross-replica) statistics, renormalization, masks, a channel axis other
than the last, inputs of rank other than 2 or 4. Without scale or center (the normalisation of
`conditional_batchnorm`) the kernel gets gamma = 1 and beta = 0.
"""

import keras
from keras import layers
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfgan_app")
class FusedBatchNormalization(layers.BatchNormalization):
  """`keras.layers.BatchNormalization`, trained with the fused kernel (module docstring)."""

  def _fused_applies(self, inputs, training, mask) -> bool:
    rank = len(inputs.shape)
    axis = self.axis if self.axis >= 0 else rank + self.axis
    return bool(training and self.trainable and mask is None and not self.synchronized
                and not self.renorm and rank in (2, 4)
                and axis == rank - 1)

  def call(self, inputs, training=None, mask=None):
    if not self._fused_applies(inputs, training, mask):
      return super().call(inputs, training=training, mask=mask)
    channels = inputs.shape[-1]
    images = inputs if len(inputs.shape) == 4 else tf.reshape(inputs, [-1, 1, 1, channels])
    gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
    beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
    outputs, mean, unbiased_variance = tf.compat.v1.nn.fused_batch_norm(
        images, gamma, beta,
        epsilon=self.epsilon, data_format="NHWC", is_training=True)
    # Keras averages the biased batch variance; the kernel reports the unbiased one, n/(n-1)
    # times it (n values per channel; the kernel leaves n = 1 uncorrected).
    count = tf.cast(tf.size(images) // channels, tf.float32)
    variance = unbiased_variance * (tf.maximum(count - 1.0, 1.0) / count)
    mean, variance = tf.stop_gradient(mean), tf.stop_gradient(variance)
    self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
    self.moving_variance.assign(self.moving_variance * self.momentum
                                + variance * (1.0 - self.momentum))
    outputs = outputs if len(inputs.shape) == 4 else tf.reshape(outputs, tf.shape(inputs))
    return tf.cast(outputs, self.compute_dtype)
