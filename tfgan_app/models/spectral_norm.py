"""Spectral normalisation of a layer's kernel (Miyato et al. 2018, arXiv:1802.05957).

The layer computes with W_SN = W / sigma(W), sigma(W) the largest singular value of the kernel
seen as a matrix W [fan_in, units] (a convolution kernel [k, k, C, F] as [k*k*C, F]), so that the
layer is 1-Lipschitz and so is a discriminator made of such layers and 1-Lipschitz activations.
sigma is estimated by power iteration with a persistent vector u [1, units] (the paper's
Algorithm 1), one iteration per forward pass:

  v = u W^T / ||u W^T||,   u' = v W / ||v W||,   sigma = v W u'^T.

u and v are constants for the gradient (stop_gradient, as in the authors' code), so the gradient
reaches the raw kernel through W and through sigma: d W_SN = (dW - (v dW u'^T) W_SN) / sigma.
A forward pass in training mode stores u' (the estimate sharpens as training goes); one in
inference mode computes the same from the stored u and stores nothing, so D's output is a
function of its weights and u alone.

The raw kernel stays the layer's trainable variable (checkpoints, optimizer slots and the layer
without normalisation keep their shapes); u is a non-trainable variable of the layer, so it is in
every checkpoint of the model and resume stays exact. Its start is a fixed-seed normal vector
(the seed a hash of the layer's name). Under tf.distribute, u is synchronised on read with
ONLY_FIRST_REPLICA aggregation: each replica updates its own copy without a cross-replica call
(which also works inside `tf.cond`, as lazy R1 calls D), every replica computes the same u from
the same mirrored weights, and a checkpoint stores the first replica's.

`keras.layers.SpectralNormalization` is not used: it writes W_SN into the wrapped layer's kernel
variable on every training call, which fails for mirrored variables in replica context and
leaves the normalised kernel, not the trained one, in the stored weights.

Under a mixed-precision policy the power iteration and W / sigma run in the variables' float32
(the kernel is not autocast); W_SN is cast to the layer's compute dtype.
"""

import contextlib
import zlib
from typing import Iterator, Tuple

import keras
from keras import layers
import tensorflow as tf

from tfgan_app.models import phase_conv
from tfgan_app.models import strided_conv

# Guards W / sigma against a kernel of zeros (sigma = 0); sigma of a trained layer is O(1).
_MIN_SIGMA = 1e-12

_enabled = True


@contextlib.contextmanager
def raw_kernels() -> Iterator[None]:
  """Within it, the layers trace with their raw kernels and no power iteration.

  `tfgan_app.performance.flops` counts FLOPs per example; the power iteration costs O(weights)
  per batch, like the optimizer's update, and is left out of the count the same way.
  """
  global _enabled
  previous, _enabled = _enabled, False
  try:
    yield
  finally:
    _enabled = previous


def power_iteration(kernel: tf.Tensor, u: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """One power-iteration step and the normalised kernel (module docstring).

  Args:
    kernel: W [..., units], float32.
    u: the current estimate [1, units] of W's top singular vector on its output (units) side.

  Returns:
    (W / sigma with W's shape, sigma [], u' [1, units]); u' carries no gradient.
  """
  units = kernel.shape[-1]
  matrix = tf.reshape(kernel, [-1, units])  # [fan_in, units]
  v = tf.math.l2_normalize(tf.matmul(u, matrix, transpose_b=True))  # [1, fan_in]
  new_u = tf.math.l2_normalize(tf.matmul(v, matrix))  # [1, units]
  v, new_u = tf.stop_gradient(v), tf.stop_gradient(new_u)
  sigma = tf.reshape(tf.matmul(tf.matmul(v, matrix), new_u, transpose_b=True), [])
  return kernel / tf.maximum(sigma, _MIN_SIGMA), sigma, new_u


class _SpectralNormalized:
  """Mixin for a Keras layer with a `kernel` [..., units] (Dense, Conv2D and their fast forms):
  the layer computes with kernel / sigma(kernel). Subclasses give `_apply_kernel`."""

  def add_weight(self, *args, **kwargs):
    # The kernel is read in float32 whatever the policy: Keras's autocasting would hand the
    # power iteration a bfloat16 kernel under a mixed policy. `call` casts W_SN itself.
    if kwargs.get("name") == "kernel":
      kwargs["autocast"] = False
    return super().add_weight(*args, **kwargs)

  def build(self, input_shape):
    super().build(input_shape)
    units = self.kernel.shape[-1]
    seed = zlib.crc32(self.name.encode("utf-8")) % 2**31
    # A layer attribute: Keras tracks it as a non-trainable weight, tf.train.Checkpoint saves it.
    self.spectral_u = keras.Variable(
        initializer=keras.initializers.RandomNormal(seed=seed), shape=(1, units),
        dtype="float32", trainable=False, autocast=False, aggregation="only_first_replica",
        synchronization="on_read", name="spectral_u")

  def normalized_kernel(self, training=False) -> tf.Tensor:
    """W / sigma(W) in float32 (the raw kernel within `raw_kernels()`); stores u' if training."""
    kernel = tf.cast(self.kernel, tf.float32)
    if not _enabled:
      return kernel
    normalized, _, new_u = power_iteration(kernel, tf.convert_to_tensor(self.spectral_u))
    if training:
      self.spectral_u.assign(new_u)
    return normalized

  def sigma(self) -> tf.Tensor:
    """The current estimate of sigma(W) (from the stored u, without storing)."""
    return power_iteration(tf.cast(self.kernel, tf.float32),
                           tf.convert_to_tensor(self.spectral_u))[1]

  def call(self, inputs, training=None):
    dtype = self.compute_dtype  # Keras has cast the inputs to it.
    kernel = tf.cast(self.normalized_kernel(bool(training)), dtype)
    outputs = self._apply_kernel(inputs, kernel)
    if self.bias is not None:
      outputs = outputs + self.bias  # [units] on the last (channel) axis
    if self.activation is not None:
      outputs = self.activation(outputs)
    return outputs


class _SpectralConv(_SpectralNormalized):
  """Convolutions, channels last (the bias is added on the last axis)."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    if self.data_format != "channels_last":
      raise ValueError(f"spectrally normalised convolutions take channels_last data, got "
                       f"{self.data_format}")

  def _apply_kernel(self, inputs, kernel):
    # The layer's own convolution op: the fast forms' custom kernel gradients flow into W_SN.
    return self.convolution_op(inputs, kernel)


@keras.saving.register_keras_serializable(package="tfgan_app")
class SpectralDense(_SpectralNormalized, layers.Dense):
  """`keras.layers.Dense` computed with kernel / sigma(kernel)."""

  def _apply_kernel(self, inputs, kernel):
    return keras.ops.matmul(inputs, kernel)


@keras.saving.register_keras_serializable(package="tfgan_app")
class SpectralConv2D(_SpectralConv, layers.Conv2D):
  """`keras.layers.Conv2D` computed with kernel / sigma(kernel)."""


@keras.saving.register_keras_serializable(package="tfgan_app")
class SpectralPhaseConv2D(_SpectralConv, phase_conv.PhaseConv2D):
  """`phase_conv.PhaseConv2D` computed with kernel / sigma(kernel)."""


@keras.saving.register_keras_serializable(package="tfgan_app")
class SpectralStridedConv2D(_SpectralConv, strided_conv.StridedConv2D):
  """`strided_conv.StridedConv2D` computed with kernel / sigma(kernel)."""


_NORMALIZED = {layers.Dense: SpectralDense, layers.Conv2D: SpectralConv2D,
               phase_conv.PhaseConv2D: SpectralPhaseConv2D,
               strided_conv.StridedConv2D: SpectralStridedConv2D}


def layer_class(base: type, spectral_norm: bool) -> type:
  """`base` itself, or its spectrally normalised form when `spectral_norm`.

  Raises:
    ValueError: `base` has no spectrally normalised form here.
  """
  if not spectral_norm:
    return base
  if base not in _NORMALIZED:
    raise ValueError(f"no spectrally normalised form of {base.__name__}; accepted: "
                     f"{', '.join(sorted(cls.__name__ for cls in _NORMALIZED))}")
  return _NORMALIZED[base]
