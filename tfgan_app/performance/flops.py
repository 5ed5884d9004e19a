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

Gradient penalties (`gan.penalties`: WGAN-GP, R1) differentiate D's input gradient. One penalty
pass per example costs P = (D.F - L) + D.A (a D forward on its batch and the input gradients of
every layer) + (D.W + D.I - 2 L) (weight and input gradients back through those forward ops) +
(D.W + D.A - L) (back through the input-gradient ops: each such op's weight and input gradients
cost what its layer's forward costs), with L the last layer's forward FLOPs: D's logit layer is
linear, so the penalty needs its gradient, never its value, nothing flows back through its
forward op, and the gradient arriving at its input-gradient op is a constant. (A test checks P
against the ops TensorFlow runs for the penalties' weight gradients.)
WGAN-GP adds P to every discriminator update, lazy R1 (--r1_every=N) P / N.

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
_FILTER_GRADIENT_OPS = ("Conv2DBackpropFilter",)


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

  @property
  def penalty_pass(self) -> int:
    """FLOPs per example of one gradient penalty on this model (the module docstring's P)."""
    last = int(self.layer_flops[-1])
    return (self.forward - last + self.input_gradients_all
            + self.weight_gradients + self.input_gradients_after_first - 2 * last
            + self.weight_gradients + self.input_gradients_all - last)


def _static_shape(tensor) -> List[int]:
  shape = tensor.shape.as_list()
  if any(d is None for d in shape):
    raise ValueError(f"op {tensor.op.name} has an unknown shape {shape}")
  return shape


def _op_flops(op) -> int:
  """2 x multiply-adds of one MatMul / Conv2D / Conv2DBackpropInput / Conv2DBackpropFilter op;
  0 for other ops."""
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
  if op.type in _FILTER_GRADIENT_OPS:
    # A convolution's weight gradient (in gradient graphs): every output position's gradient
    # times the receptive field, as the forward convolution.
    kernel_h, kernel_w, in_channels, _ = _static_shape(op.outputs[0])  # The kernel's shape.
    return 2 * int(np.prod(_static_shape(op.inputs[2]))) * kernel_h * kernel_w * in_channels
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
  gradient_penalty: bool = False  # WGAN-GP on every discriminator update.
  r1_every: int = 0  # R1 on every r1_every-th discriminator update; 0: no R1.

  @property
  def penalties_per_update(self) -> float:
    """FLOPs per example of the gradient penalties of one discriminator update, on average."""
    passes = float(self.gradient_penalty) + (1.0 / self.r1_every if self.r1_every else 0.0)
    return passes * self.discriminator.penalty_pass

  @property
  def per_example_step(self) -> float:
    """FLOPs of one training step per example of the batch (all d_steps updates, penalties
    included: lazy R1's on average)."""
    g, d = self.generator, self.discriminator
    g_train = g.forward + g.weight_gradients + g.input_gradients_after_first
    d_train = d.forward + d.weight_gradients + d.input_gradients_after_first
    d_for_generator = d.forward + d.input_gradients_all
    if self.update == "simultaneous":
      return g_train + 2 * d_train + d.input_gradients_all + self.penalties_per_update
    if self.update == "alternating":
      return (self.d_steps * (g.forward + 2 * d_train + self.penalties_per_update) + g_train
              + d_for_generator)
    raise ValueError(f"unknown update {self.update!r}; accepted: alternating, simultaneous")

  @property
  def per_real_image(self) -> float:
    return self.per_example_step / self.d_steps

  @property
  def generator_forward(self) -> int:
    """FLOPs per generated image when sampling (the generator's forward pass)."""
    return self.generator.forward


def training_flops(generator: keras.Model, discriminator: keras.Model, latent_dim: int,
                   image_shape: Sequence[int], update: str, d_steps: int,
                   gradient_penalty: bool = False, r1_every: int = 0) -> StepFlops:
  """Counts a training step of these players (see the module docstring for what is counted):
  with WGAN-GP when `gradient_penalty`, with R1 on every `r1_every`-th D update (0: none)."""
  return StepFlops(generator=model_flops(generator, [latent_dim]),
                   discriminator=model_flops(discriminator, image_shape),
                   update=update, d_steps=d_steps, gradient_penalty=bool(gradient_penalty),
                   r1_every=int(r1_every))


def config_training_flops(generator: keras.Model, discriminator: keras.Model, config,
                          image_shape: Sequence[int]) -> StepFlops:
  """`training_flops` of a run's `TrainConfig`: its update, D steps and penalties."""
  return training_flops(generator, discriminator, config.latent_dim, image_shape,
                        config.update, config.d_steps,
                        gradient_penalty=config.gradient_penalty > 0,
                        r1_every=config.r1_every if config.r1_gamma > 0 else 0)
