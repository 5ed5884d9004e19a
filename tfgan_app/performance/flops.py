"""Analytic FLOP counts of a GAN training step, from the layer shapes.

What is counted: the multiply-adds of dense layers and (transposed) convolutions, 2 FLOPs each,
read from the shapes of the MatMul / Conv2D / Conv2DBackpropInput ops of each model's forward
pass (so any architecture is counted the same way, whatever its Python code). Convolutions are
counted at their nominal size, zero padding included; layers that compute a convolution through
other ops (`models.phase_conv`) are traced as the convolution they compute. Backward: each layer's weight gradient
costs what its forward pass costs, and so does its input gradient; the input gradient of a
model's first layer is counted only when something needs it (a discriminator's first layer when
the generator's loss flows through it; never the generator's first layer, whose input is z).
Not counted: BatchNorm, activations, dropout, losses, Adam (all O(activations) or O(weights)
elementwise work), spectral normalisation's power iteration (O(weights) per batch).

Per update scheme, per training step of `d_steps` discriminator updates, with F = forward,
W = weight gradients, I = input gradients without the first layer, A = all input gradients:

  alternating:  d_steps * [G.F + 2 * (D.F + D.W + D.I)] + (G.F + G.W + G.I) + (D.F + D.A)
  simultaneous: (G.F + G.W + G.I) + 2 * (D.F + D.W + D.I) + D.A

The alternating generator step runs G forward again for its own latents; the simultaneous step
(the tutorial's) reuses one generator pass, but back-propagates through D on the fake batch twice,
once per player's loss. Dividing by `d_steps` gives FLOPs per real image.
"""

import dataclasses
from typing import List, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfgan_app.models import phase_conv
from tfgan_app.models import spectral_norm

# Op types that carry the multiply-adds of Dense, Conv2D and Conv2DTranspose layers.
_MATMUL_OPS = ("MatMul", "BatchMatMulV2", "BatchMatMulV3")
_CONV_OPS = ("Conv2D",)
_TRANSPOSED_CONV_OPS = ("Conv2DBackpropInput",)


@dataclasses.dataclass(frozen=True)
class ModelFlops:
  """Forward FLOPs per example of a model's dense and convolution layers, in graph order."""
  layer_flops: Sequence[int]

  @property
  def forward(self) -> int:
    return int(sum(self.layer_flops))

  @property
  def weight_gradients(self) -> int:
    return self.forward

  @property
  def input_gradients_after_first(self) -> int:
    return int(sum(self.layer_flops[1:]))

  @property
  def input_gradients_all(self) -> int:
    return self.forward


def _static_shape(tensor) -> List[int]:
  shape = tensor.shape.as_list()
  if any(d is None for d in shape):
    raise ValueError(f"op {tensor.op.name} has an unknown shape {shape}")
  return shape


def _op_flops(op) -> int:
  """2 x multiply-adds of one MatMul / Conv2D / Conv2DBackpropInput op; 0 for other ops."""
  if op.type in _MATMUL_OPS:
    a, b = _static_shape(op.inputs[0]), _static_shape(op.inputs[1])
    transpose_a = op.get_attr("transpose_a") if op.type == "MatMul" else op.get_attr("adj_x")
    rows, inner = (a[-1], a[-2]) if transpose_a else (a[-2], a[-1])
    transpose_b = op.get_attr("transpose_b") if op.type == "MatMul" else op.get_attr("adj_y")
    columns = b[-2] if transpose_b else b[-1]
    batch = int(np.prod(a[:-2])) if len(a) > 2 else 1
    return 2 * batch * rows * inner * columns
  if op.type in _CONV_OPS:
    kernel_h, kernel_w, in_channels, _ = _static_shape(op.inputs[1])
    return 2 * int(np.prod(_static_shape(op.outputs[0]))) * kernel_h * kernel_w * in_channels
  if op.type in _TRANSPOSED_CONV_OPS:
    # The forward pass of a transposed convolution: every input position (the op's
    # `out_backprop`) is multiplied by the whole kernel [kh, kw, out_channels, in_channels].
    kernel_h, kernel_w, out_channels, _ = _static_shape(op.inputs[1])
    return 2 * int(np.prod(_static_shape(op.inputs[2]))) * kernel_h * kernel_w * out_channels
  return 0


def _graph_ops(graph):
  """The graph's ops, then those of the functions it calls (in case a layer is a function)."""
  yield from graph.get_operations()
  for function in getattr(graph, "_functions", {}).values():
    inner = getattr(function, "graph", None)
    if inner is not None:
      yield from _graph_ops(inner)


def model_flops(model: keras.Model, input_shape: Sequence[int]) -> ModelFlops:
  """Forward FLOPs per example of `model` on inputs of `input_shape` (without the batch axis).

  The model is traced (not run) on a batch of one in training mode; a class-conditional one
  (`num_classes` > 0) with a label.
  """
  spec = tf.TensorSpec([1, *input_shape], tf.float32)
  labels = {"labels": tf.zeros([1], tf.int32)} if getattr(model, "num_classes", 0) else {}
  # The nominal convolutions, not their phase rearrangement; no power iteration (O(weights) per
  # batch, like Adam).
  with phase_conv.keras_ops(), spectral_norm.raw_kernels():
    graph = tf.function(lambda x: model(x, training=True, **labels)).get_concrete_function(
        spec).graph
  per_layer = [flops for flops in (_op_flops(op) for op in _graph_ops(graph)) if flops]
  if not per_layer:
    raise ValueError(f"model {model.name} has no dense or convolution layer to count")
  return ModelFlops(tuple(per_layer))


@dataclasses.dataclass(frozen=True)
class StepFlops:
  """FLOPs of one training step and per real image."""
  generator: ModelFlops
  discriminator: ModelFlops
  update: str
  d_steps: int

  @property
  def per_example_step(self) -> int:
    """FLOPs of one training step per example of the batch (all d_steps updates)."""
    g, d = self.generator, self.discriminator
    g_train = g.forward + g.weight_gradients + g.input_gradients_after_first
    d_train = d.forward + d.weight_gradients + d.input_gradients_after_first
    d_for_generator = d.forward + d.input_gradients_all
    if self.update == "simultaneous":
      return g_train + 2 * d_train + d.input_gradients_all
    if self.update == "alternating":
      return self.d_steps * (g.forward + 2 * d_train) + g_train + d_for_generator
    raise ValueError(f"unknown update {self.update!r}; accepted: alternating, simultaneous")

  @property
  def per_real_image(self) -> float:
    return self.per_example_step / self.d_steps

  @property
  def generator_forward(self) -> int:
    """FLOPs per generated image when sampling (the generator's forward pass)."""
    return self.generator.forward


def training_flops(generator: keras.Model, discriminator: keras.Model, latent_dim: int,
                   image_shape: Sequence[int], update: str, d_steps: int) -> StepFlops:
  """Counts a training step of these players (see the module docstring for what is counted)."""
  return StepFlops(generator=model_flops(generator, [latent_dim]),
                   discriminator=model_flops(discriminator, image_shape),
                   update=update, d_steps=d_steps)
