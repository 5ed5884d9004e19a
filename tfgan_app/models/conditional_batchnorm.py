"""Class-conditional BatchNorm (de Vries et al. 2017, arXiv:1707.00683; the generators of SNGAN,
Miyato & Koyama 2018, arXiv:1802.05637, and BigGAN, Brock et al. 2019, arXiv:1809.11096).

    y = gamma[c] * (x - mu) / sqrt(sigma^2 + eps) + beta[c]

with mu, sigma^2 the batch statistics per channel while training (their moving averages in
inference), as in BatchNorm, and the affine part looked up per example from its class c:
gamma, beta are [num_classes, channels] tables initialised to 1 and 0, so that at the start
every class is plain BatchNorm. The normalisation is `fused_batchnorm.FusedBatchNormalization`
without its own scale and shift (the fused kernel while training, synchronized statistics under
--sync_batchnorm).
"""

import keras
from keras import layers

from tfgan_app.models import fused_batchnorm


@keras.saving.register_keras_serializable(package="tfgan_app")
class ConditionalBatchNormalization(layers.Layer):
  """BatchNorm over the last axis with a per-class scale and shift (module docstring).

  Called as `layer(x, labels, training=...)`, x [B, ..., C], labels int [B] in [0, num_classes).
  """

  def __init__(self, num_classes: int, momentum: float = 0.9, epsilon: float = 1e-5,
               synchronized: bool = False, **kwargs):
    super().__init__(**kwargs)
    if num_classes <= 0:
      raise ValueError(f"num_classes must be positive, got {num_classes}")
    self.num_classes = int(num_classes)
    self.momentum = float(momentum)
    self.epsilon = float(epsilon)
    self.synchronized = bool(synchronized)
    self.norm = fused_batchnorm.FusedBatchNormalization(
        momentum=self.momentum, epsilon=self.epsilon, synchronized=self.synchronized,
        center=False, scale=False, name="norm")

  def build(self, inputs_shape, labels_shape=None):
    del labels_shape
    channels = int(inputs_shape[-1])
    self.norm.build(inputs_shape)
    self.gamma = self.add_weight(shape=(self.num_classes, channels), initializer="ones",
                                 name="gamma")
    self.beta = self.add_weight(shape=(self.num_classes, channels), initializer="zeros",
                                name="beta")
    self.built = True

  def call(self, inputs, labels, training=None):
    x = self.norm(inputs, training=training)  # [B, ..., C]
    labels = keras.ops.cast(labels, "int32")
    # [B, 1, ..., 1, C]: one scale and shift per example, broadcast over its positions.
    shape = (-1,) + (1,) * (len(inputs.shape) - 2) + (inputs.shape[-1],)
    gamma = keras.ops.reshape(keras.ops.take(self.gamma, labels, axis=0), shape)
    beta = keras.ops.reshape(keras.ops.take(self.beta, labels, axis=0), shape)
    return x * keras.ops.cast(gamma, x.dtype) + keras.ops.cast(beta, x.dtype)

  def get_config(self):
    return {**super().get_config(), "num_classes": self.num_classes, "momentum": self.momentum,
            "epsilon": self.epsilon, "synchronized": self.synchronized}
