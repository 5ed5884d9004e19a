"""Analytic FLOP counts against hand computations."""

import keras
from keras import layers
import pytest

from tfgan_app.models import registry as models
from tfgan_app.performance import flops
from tfgan_app.performance import tutorial_baseline


def _tiny_model():
  # Dense 4 -> 2*2*3, transposed conv 3 -> 2 channels (3x3, stride 2: 2x2 -> 4x4), conv 2 -> 5
  # channels (3x3, stride 2: 4x4 -> 2x2).
  model = keras.Sequential([
      keras.Input((4,)), layers.Dense(12), layers.Reshape((2, 2, 3)),
      layers.Conv2DTranspose(2, 3, strides=2, padding="same"), layers.ReLU(),
      layers.Conv2D(5, 3, strides=2, padding="same")])
  return model


def test_layer_flops_by_hand():
  counted = flops.model_flops(_tiny_model(), [4])
  dense = 2 * 4 * 12
  transposed = 2 * (2 * 2 * 3) * (3 * 3 * 2)  # every input position times the whole kernel
  conv = 2 * (2 * 2 * 5) * (3 * 3 * 2)  # every output position times its receptive field
  assert list(counted.layer_flops) == [dense, transposed, conv]
  assert counted.forward == dense + transposed + conv
  assert counted.input_gradients_after_first == transposed + conv


def test_update_schemes_by_hand():
  g = flops.ModelFlops((10, 100))
  d = flops.ModelFlops((7, 30))
  g_train = 110 + 110 + 100
  d_train = 37 + 37 + 30
  simultaneous = flops.StepFlops(g, d, "simultaneous", 1)
  assert simultaneous.per_real_image == g_train + 2 * d_train + 37
  alternating = flops.StepFlops(g, d, "alternating", 2)
  assert alternating.per_example_step == 2 * (110 + 2 * d_train) + g_train + (37 + 37)
  assert alternating.per_real_image == alternating.per_example_step / 2
  with pytest.raises(ValueError, match="accepted: alternating, simultaneous"):
    flops.StepFlops(g, d, "sometimes", 1).per_real_image


def test_penalties_by_hand():
  d = flops.ModelFlops((7, 30, 5))
  # Forward and input gradients of all (the linear last layer's value is not needed), then
  # weight gradients and input gradients but the first's back through the forward ops but the
  # last one, weight gradients and input gradients but the last's back through the
  # input-gradient ops.
  assert d.penalty_pass == 37 + 42 + (37 + 30) + (42 + 37)
  g = flops.ModelFlops((10, 100))
  plain = flops.StepFlops(g, d, "alternating", 2)
  with_both = flops.StepFlops(g, d, "alternating", 2, gradient_penalty=True, r1_every=4)
  assert with_both.per_example_step - plain.per_example_step == 2 * 1.25 * d.penalty_pass
  simultaneous = flops.StepFlops(g, d, "simultaneous", 1)
  lazy_r1 = flops.StepFlops(g, d, "simultaneous", 1, r1_every=16)
  assert lazy_r1.per_example_step - simultaneous.per_example_step == d.penalty_pass / 16


def test_penalty_pass_matches_the_ops_of_a_traced_penalty_gradient():
  # The analytic P against every MatMul and convolution that the weight gradient of R1 and of
  # WGAN-GP on a plain convolutional D computes, one example. (Gradient functions build both
  # gradients of an op; those that no output needs are pruned before running, and left out.)
  from tfgan_app.gan import penalties  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  discriminator = keras.Sequential([
      keras.Input((8, 8, 1)), layers.Conv2D(4, 3, strides=2, padding="same"), layers.LeakyReLU(),
      layers.Conv2D(6, 3, strides=2, padding="same"), layers.LeakyReLU(), layers.Flatten(),
      layers.Dense(1)])
  images = tf.TensorSpec([1, 8, 8, 1], tf.float32)

  def traced(penalty):
    def weight_gradients(real, fake):
      with tf.GradientTape() as tape:
        value = tf.reduce_sum(penalty(real, fake))
      return tape.gradient(value, discriminator.trainable_variables)
    graph = tf.function(weight_gradients).get_concrete_function(images, images).graph
    needed, pending = set(), [tensor.op for tensor in graph.outputs]
    while pending:
      op = pending.pop()
      if op not in needed:
        needed.add(op)
        pending.extend([tensor.op for tensor in op.inputs] + list(op.control_inputs))
    return sum(flops._op_flops(op) for op in needed)  # pylint: disable=protected-access

  expected = flops.model_flops(discriminator, (8, 8, 1)).penalty_pass
  assert traced(lambda real, fake: penalties.r1_penalty_per_example(discriminator, real)) == (
      expected)
  assert traced(lambda real, fake: penalties.wasserstein_gradient_penalty_per_example(
      discriminator, real, fake, tf.fill([1, 1], 0.3))) == expected


def test_the_tutorials_step_costs_0_45_gflop_per_image():
  # By hand: G forward 2 * (100*12544 + 7*7*256*128*25 + 7*7*128*64*25 + 14*14*64*25)
  # = 103.5 MFLOP; D forward 2 * (14*14*64*25 + 7*7*64*128*25 + 6272) = 20.7 MFLOP.
  g_forward = 2 * (100 * 12544 + 7 * 7 * 256 * 128 * 25 + 7 * 7 * 128 * 64 * 25 + 14 * 14 * 64 * 25)
  d_forward = 2 * (14 * 14 * 64 * 25 + 7 * 7 * 64 * 128 * 25 + 6272)
  loop = tutorial_baseline.TutorialLoop()
  counted = flops.training_flops(loop.generator, loop.discriminator, 100, (28, 28, 1),
                                 "simultaneous", 1)
  assert counted.generator.forward == g_forward and counted.discriminator.forward == d_forward
  assert counted.per_real_image == pytest.approx(0.4517e9, rel=1e-3)
  # Our tf_tutorial architecture is the same network; the alternating update costs 27% more.
  generator, discriminator = models.build_models("tf_tutorial", 100, (28, 28, 1), 64, 64,
                                                 kernel_size=5)
  ours = flops.training_flops(generator, discriminator, 100, (28, 28, 1), "alternating", 1)
  assert ours.generator.forward == g_forward
  assert ours.per_real_image / counted.per_real_image == pytest.approx(1.275, abs=0.01)
