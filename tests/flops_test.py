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
