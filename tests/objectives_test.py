"""The adversarial objectives of --loss (gan/objectives.py): each D loss's divergence estimate
is exact at the optimal discriminator (golden values on two known distributions), a lower bound
for any other discriminator, and the GAN trains and logs it under each loss."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgan_app.gan import build as gan_build
from tfgan_app.gan import objectives
from conftest import tiny_config

# Two distributions on the points 0, 1, 2, and batches that hold them in exact proportion.
P_DATA = np.array([0.5, 0.25, 0.25])
P_G = np.array([0.25, 0.25, 0.5])
REAL_POINTS = np.array([0, 0, 1, 2])
FAKE_POINTS = np.array([0, 1, 2, 2])

_M = (P_DATA + P_G) / 2
TRUE = {
    "jsd": 0.5 * np.sum(P_DATA * np.log(P_DATA / _M)) + 0.5 * np.sum(P_G * np.log(P_G / _M)),
    "wasserstein": 0.5,  # sum_x |F_data(x) - F_g(x)| = 0.25 + 0.25.
    "total_variation": 0.25,  # 0.5 * (0.25 + 0 + 0.25).
    "triangular_discrimination": 2 * 0.25 ** 2 / 0.75,  # sum (p - q)^2 / (p + q).
}
# The optimal discriminator of each objective, per point.
OPTIMAL = {
    "non_saturating": np.log(P_DATA / P_G),  # logit of D* = p / (p + q).
    "minimax": np.log(P_DATA / P_G),
    "wasserstein": -np.arange(3.0),  # A 1-Lipschitz critic attaining W1.
    "hinge": np.sign(P_DATA - P_G),
    "least_squares": P_DATA / (P_DATA + P_G),
}


def _estimate(objective, outputs):
  real = tf.constant(outputs[REAL_POINTS][:, None], tf.float32)
  fake = tf.constant(outputs[FAKE_POINTS][:, None], tf.float32)
  per_example = objective.discriminator_loss(real, fake)
  terms = objective.estimate_terms(real, fake, per_example)
  return float(objective.estimate_from_mean(tf.reduce_mean(terms)))


@pytest.mark.parametrize("name", sorted(objectives.OBJECTIVES))
def test_estimate_is_the_divergence_at_the_optimal_discriminator(name):
  objective = objectives.get(name)
  assert _estimate(objective, OPTIMAL[name]) == pytest.approx(
      TRUE[objective.estimate_name], abs=1e-6)


@pytest.mark.parametrize("name", sorted(objectives.OBJECTIVES))
def test_estimate_is_a_lower_bound_for_other_discriminators(name):
  objective = objectives.get(name)
  rng = np.random.default_rng(len(name))
  for _ in range(50):
    if name == "wasserstein":  # Any 1-Lipschitz critic on the points.
      outputs = np.cumsum(rng.uniform(-1, 1, size=3))
    else:
      outputs = rng.normal(scale=2.0, size=3)
      if name == "least_squares":
        outputs = rng.uniform(-0.5, 1.5, size=3)
    assert _estimate(objective, outputs) <= TRUE[objective.estimate_name] + 1e-6


def test_each_loss_has_its_estimate_and_jsd_only_for_the_cross_entropy_losses():
  names = {name: objectives.get(name).estimate_name for name in objectives.OBJECTIVES}
  assert names == {"non_saturating": "jsd", "minimax": "jsd", "wasserstein": "wasserstein",
                   "hinge": "total_variation",
                   "least_squares": "triangular_discrimination"}
  # jsd at p_g = p_data (D* = 1/2 everywhere, logit 0) is 0, and log 2 at disjoint supports.
  objective = objectives.get("non_saturating")
  zeros = tf.zeros([4, 1])
  terms = objective.estimate_terms(zeros, zeros, objective.discriminator_loss(zeros, zeros))
  assert float(objective.estimate_from_mean(tf.reduce_mean(terms))) == pytest.approx(0, abs=1e-6)
  big = tf.fill([4, 1], 40.0)
  terms = objective.estimate_terms(big, -big, objective.discriminator_loss(big, -big))
  assert float(objective.estimate_from_mean(tf.reduce_mean(terms))) == pytest.approx(
      math.log(2.0), abs=1e-6)


def test_unknown_loss_and_label_smoothing_without_probabilities_are_refused():
  with pytest.raises(ValueError, match="unknown loss 'relativistic'; accepted: non_saturating, "
                                       "minimax, wasserstein, hinge, least_squares"):
    objectives.get("relativistic")
  with pytest.raises(ValueError, match="--label_smoothing=0.1 .* --loss=hinge has none"):
    objectives.get("hinge", label_smoothing=0.1)
  assert objectives.get("minimax", label_smoothing=0.1).name == "minimax"


@pytest.mark.parametrize("name", ["wasserstein", "hinge", "least_squares"])
def test_gan_trains_and_logs_the_objective_estimate(tmp_path, name):
  config = tiny_config(tmp_path, None, loss=name)
  keras.utils.set_random_seed(0)
  model = gan_build.build_gan(config, (28, 28, 1))
  real = (tf.random.stateless_uniform([16, 28, 28, 1], seed=[0, 9], minval=-1, maxval=1),)
  before = [v.numpy().copy() for v in model.discriminator.trainable_variables]
  logs = model.train_step(real)
  estimate_name = objectives.get(name).estimate_name
  assert set(logs) == {"d_loss", "g_loss", "d_real", "d_fake", estimate_name}
  assert all(np.isfinite(float(value)) for value in logs.values())
  # The estimate is the one D's loss implies (logged from the same discriminator step).
  d_loss = float(logs["d_loss"])
  expected = {"wasserstein": -d_loss, "total_variation": 1 - d_loss / 2,
              "triangular_discrimination": 2 - 8 * d_loss}[estimate_name]
  assert float(logs[estimate_name]) == pytest.approx(expected, rel=1e-5, abs=1e-6)
  # Raw scores, not probabilities: under these losses d_real - d_fake is the critic's gap.
  if name == "wasserstein":
    assert float(logs["d_real"]) - float(logs["d_fake"]) == pytest.approx(-d_loss, abs=1e-5)
  after = [v.numpy() for v in model.discriminator.trainable_variables]
  assert any(not np.array_equal(a, b) for a, b in zip(before, after))
