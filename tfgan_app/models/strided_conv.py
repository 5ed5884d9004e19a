"""Strided convolutions whose weight gradient runs as a forward (dilated) convolution.

The weight gradient of a stride-s convolution,
  dW[i, j, c, o] = sum over b, h, w of  x[b, s*h + i, s*w + j, c] * dy[b, h, w, o]
(x zero-padded as the forward pass pads it), is itself a convolution: of x seen as a batch of
C images with B channels, by dy seen as an [H, W, B, O] filter dilated by s, with a k x k
output. TensorFlow's `Conv2DBackpropFilter` computes the same sum with oneDNN's
backward-weights kernels, which on the 2-core reference CPU (AVX512-BF16, no AMX) reach about
200 GFLOP per CPU-second in bfloat16 for configs/tf_tutorial.cfg's stride-2 layers, against
about 250 for the forward kernel on the rearranged problem: 26 -> 21 CPU ms per layer per
256 images. (Stride-1 layers gain nothing measurable, so they stay as they are.)

The layers keep Keras's variables and forward ops; only the gradient of the kernel is computed
differently (a `tf.custom_gradient`; the input gradient is TensorFlow's usual op). Cases other
than "same" padding, channels-last data, square kernels and strides, stride > 1, no dilation
and static spatial sizes fall back to Keras.
"""

import keras
from keras import layers
import tensorflow as tf


def _applies(layer, spatial) -> bool:
  return (layer.padding == "same" and layer.data_format == "channels_last"
          and len(set(layer.kernel_size)) == 1 and len(set(layer.strides)) == 1
          and layer.strides[0] > 1 and tuple(layer.dilation_rate) == (1, 1)
          and all(size is not None for size in spatial))


def filter_gradient(inputs: tf.Tensor, out_backprop: tf.Tensor, kernel_size: int,
                    stride: int) -> tf.Tensor:
  """d loss / d kernel [k, k, C, O] of conv2d(inputs [B, H, W, C], stride, "same").

  Args:
    inputs: the convolution's input [B, H, W, C].
    out_backprop: d loss / d output [B, H', W', O], H' = ceil(H / stride).
    kernel_size, stride: the convolution's (square) kernel side and stride.
  """
  height, width = inputs.shape[1], inputs.shape[2]
  out_height, out_width = out_backprop.shape[1], out_backprop.shape[2]
  pads = []
  for size, out_size in ((height, out_height), (width, out_width)):
    total = max((out_size - 1) * stride + kernel_size - size, 0)
    # Rows past the last window are never read: pad (or crop) to exactly what the windows span.
    span = (out_size - 1) * stride + kernel_size
    pads.append((total // 2, span - size - total // 2))
  (top, bottom), (left, right) = pads
  padded = tf.pad(inputs, [[0, 0], [top, max(bottom, 0)], [left, max(right, 0)], [0, 0]])
  padded = padded[:, :top + height + bottom, :left + width + right, :]
  images = tf.transpose(padded, [3, 1, 2, 0])  # [C, span, span, B]
  kernel = tf.transpose(out_backprop, [1, 2, 0, 3])  # [H', W', B, O]
  gradient = tf.nn.conv2d(images, kernel, strides=1, padding="VALID",
                          dilations=stride)  # [C, k, k, O]
  return tf.transpose(gradient, [1, 2, 0, 3])


def _conv(inputs, kernel, stride, kernel_size):
  @tf.custom_gradient
  def conv(x, k):
    def gradient(dy):
      dx = tf.nn.conv2d_transpose(dy, k, tf.shape(x), stride, "SAME")
      return dx, filter_gradient(x, dy, kernel_size, stride)
    return tf.nn.conv2d(x, k, stride, "SAME"), gradient
  # A tensor, not the variable: the custom gradient is the kernel's; the variable's read follows.
  return conv(inputs, tf.convert_to_tensor(kernel))


def _conv_transpose(inputs, kernel, output_shape, stride, kernel_size):
  # A transposed convolution is the input gradient of conv2d(outputs, kernel): its kernel
  # gradient is that convolution's, with the roles of input and output gradient swapped.
  @tf.custom_gradient
  def conv_transpose(x, k):
    def gradient(dy):
      dx = tf.nn.conv2d(dy, k, stride, "SAME")
      return dx, filter_gradient(dy, x, kernel_size, stride)
    return tf.nn.conv2d_transpose(x, k, output_shape, stride, "SAME"), gradient
  return conv_transpose(inputs, tf.convert_to_tensor(kernel))


@keras.saving.register_keras_serializable(package="tfgan_app")
class StridedConv2D(layers.Conv2D):
  """`keras.layers.Conv2D` with the kernel gradient as a forward convolution when strided."""

  def call(self, inputs, training=None):
    del training  # Taken like Dense's, so that a discriminator passes it to all its layers.
    return super().call(inputs)

  def convolution_op(self, inputs, kernel):
    if not _applies(self, inputs.shape[1:3]):
      return super().convolution_op(inputs, kernel)
    return _conv(inputs, kernel, self.strides[0], self.kernel_size[0])


@keras.saving.register_keras_serializable(package="tfgan_app")
class StridedConv2DTranspose(layers.Conv2DTranspose):
  """`keras.layers.Conv2DTranspose` with the kernel gradient as a forward convolution."""

  def call(self, inputs):
    if not _applies(self, inputs.shape[1:3]) or self.output_padding is not None:
      return super().call(inputs)
    stride = self.strides[0]
    batch = tf.shape(inputs)[0]
    output_shape = [batch, inputs.shape[1] * stride, inputs.shape[2] * stride, self.filters]
    outputs = _conv_transpose(inputs, self.kernel, output_shape, stride, self.kernel_size[0])
    if self.use_bias:
      outputs = outputs + tf.reshape(tf.cast(self.bias, outputs.dtype), [1, 1, 1, self.filters])
    if self.activation is not None:
      return self.activation(outputs)
    return outputs
