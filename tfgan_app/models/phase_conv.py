"""Strided convolutions with a single-channel side, computed over their stride x stride phases.

A stride-s convolution of a one-channel image, and the stride-s transposed convolution that
draws one, leave the CPU's convolution kernels with nothing to vectorise over: TensorFlow runs
the transposed form (also the input gradient of the forward one) at 15-16 GFLOP per CPU-second
on the 2-core reference CPU, against 350-500 for the model's other layers. In
configs/tf_tutorial.cfg the generator's 64 -> 1 output layer and the input gradient of the
discriminator's 1 -> 64 first layer cost 10 and 11 CPU ms per 256 images for 0.16 GFLOP each.

Both are exact rearrangements of a stride-1 convolution (Dumoulin & Visin 2016, "A guide to
convolution arithmetic"; the sub-pixel view of Shi et al. 2016):
- conv, stride s: `space_to_depth(s)` turns the image into s*s phase channels at the output's
  resolution; output = a stride-1 convolution of those with the kernel's taps regrouped by phase.
- transposed conv, stride s: a stride-1 convolution of the input to s*s*filters phase channels,
  then `depth_to_space(s)` interleaves them into the s-times larger output.
The regrouped kernel (taps of the layer's own kernel, zeros where a phase has none) is gathered
in the graph on every call, so the layers keep Keras's variables, checkpoints and gradients;
only the kernel TensorFlow runs changes. Cases other than "same" padding, channels-last data,
no dilation and (for the convolution) sizes divisible by the stride fall back to Keras.
`keras_ops()` switches the rearrangement off while tracing, so that `tfgan_app.performance.flops`
counts the layers at their nominal size, like the Keras layers they compute.
"""

import contextlib
from typing import Iterator, List, Tuple

import keras
from keras import layers
import numpy as np
import tensorflow as tf


_enabled = True


@contextlib.contextmanager
def keras_ops() -> Iterator[None]:
  """Within it, the layers trace Keras's own strided (transposed) convolution ops."""
  global _enabled
  previous, _enabled = _enabled, False
  try:
    yield
  finally:
    _enabled = previous


def _phase_taps(kernel_size: int, stride: int, transpose: bool) -> Tuple[np.ndarray, int, int]:
  """Which tap of the kernel each phase applies at each window offset.

  With "same" padding on sizes divisible by the stride, the padding before is
  p = (kernel_size - stride) // 2, and
    conv:       out[m]         = sum_a sum_e in[s*(m + e) + a] * w[s*e + a + p]
    transposed: out[s*m + a]   = sum_e in[m + e] * w[a + p - s*e]
  for phases a in [0, s) and window offsets e. Returns (taps [s, window], first e, last e),
  with -1 where a phase has no tap at that offset.
  """
  pad = max(kernel_size - stride, 0) // 2

  def tap(phase, offset):
    index = (phase + pad - stride * offset) if transpose else (stride * offset + phase + pad)
    return index if 0 <= index < kernel_size else -1

  offsets = [e for e in range(-kernel_size, kernel_size + 1)
             if any(tap(a, e) >= 0 for a in range(stride))]
  first, last = min(offsets), max(offsets)
  taps = np.array([[tap(a, e) for e in range(first, last + 1)] for a in range(stride)])
  return taps, first, last


def _regroup(kernel: tf.Tensor, taps: np.ndarray) -> tf.Tensor:
  """[k, k, A, B] -> [s, window, s, window, A, B]: kernel[taps[ay, dy], taps[ax, dx]] or 0."""
  size = kernel.shape[0]
  padded = tf.pad(kernel, [[0, 1], [0, 1], [0, 0], [0, 0]])  # index `size` is a zero tap
  index = np.where(taps < 0, size, taps)  # [s, window]
  rows = tf.gather(padded, index, axis=0)  # [s, window, k + 1, A, B]
  return tf.gather(rows, index, axis=2)  # [s, window, s, window, A, B]


def _applies(layer, spatial: List[int]) -> bool:
  square = (len(set(layer.kernel_size)) == 1 and len(set(layer.strides)) == 1)
  return (_enabled and square and layer.padding == "same" and layer.data_format == "channels_last"
          and tuple(layer.dilation_rate) == (1, 1) and layer.strides[0] > 1
          and all(size is not None for size in spatial))


@keras.saving.register_keras_serializable(package="tfgan_app")
class PhaseConv2D(layers.Conv2D):
  """`keras.layers.Conv2D`, computed on the input's space_to_depth phases when strided."""

  def call(self, inputs, training=None):
    del training  # Taken like Dense's, so that a discriminator passes it to all its layers.
    return super().call(inputs)

  def convolution_op(self, inputs, kernel):
    stride = self.strides[0]
    spatial = list(inputs.shape[1:3])
    if not _applies(self, spatial) or any(size % stride for size in spatial):
      return super().convolution_op(inputs, kernel)
    taps, first, last = _phase_taps(self.kernel_size[0], stride, transpose=False)
    window = taps.shape[1]
    channels = kernel.shape[2]
    grouped = tf.transpose(_regroup(kernel, taps), [1, 3, 0, 2, 4, 5])  # [w, w, s, s, C, F]
    grouped = tf.reshape(grouped, [window, window, stride * stride * channels, self.filters])
    phases = tf.nn.space_to_depth(inputs, stride)  # [B, H/s, W/s, s*s*C]
    phases = tf.pad(phases, [[0, 0], [-first, last], [-first, last], [0, 0]])
    return tf.nn.conv2d(phases, grouped, 1, "VALID")


@keras.saving.register_keras_serializable(package="tfgan_app")
class PhaseConv2DTranspose(layers.Conv2DTranspose):
  """`keras.layers.Conv2DTranspose`, computed as phase channels and depth_to_space."""

  def call(self, inputs):
    stride = self.strides[0]
    if not _applies(self, list(inputs.shape[1:3])) or self.output_padding is not None:
      return super().call(inputs)
    taps, first, last = _phase_taps(self.kernel_size[0], stride, transpose=True)
    window = taps.shape[1]
    channels = inputs.shape[-1]
    grouped = tf.transpose(_regroup(self.kernel, taps), [1, 3, 5, 0, 2, 4])  # [w, w, C, s, s, F]
    grouped = tf.reshape(grouped, [window, window, channels, stride * stride * self.filters])
    padded = tf.pad(inputs, [[0, 0], [-first, last], [-first, last], [0, 0]])
    phases = tf.nn.conv2d(padded, grouped, 1, "VALID")  # [B, H, W, s*s*F]
    outputs = tf.nn.depth_to_space(phases, stride)  # [B, s*H, s*W, F]
    if self.use_bias:
      outputs = outputs + tf.reshape(tf.cast(self.bias, outputs.dtype), [1, 1, 1, self.filters])
    if self.activation is not None:
      return self.activation(outputs)
    return outputs
