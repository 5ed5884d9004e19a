"""Golden values of the GAN losses (closed forms computed by hand or in numpy)."""

import numpy as np
import pytest
import tensorflow as tf

from tfgan_app.gan import losses

REAL = tf.constant([[2.0], [-1.0]])
FAKE = tf.constant([[0.5], [-3.0]])


def test_minimax_discriminator_loss_golden():
  # -log(sigmoid(2)) - log(1 - sigmoid(0.5)) and -log(sigmoid(-1)) - log(1 - sigmoid(-3)).
  got = losses.minimax_discriminator_loss_per_example(REAL, FAKE).numpy()
  np.testing.assert_allclose(got, [1.1010050, 1.3618490], rtol=1e-6)


def test_non_saturating_generator_loss_golden():
  # -log(sigmoid(0.5)), -log(sigmoid(-3)).
  got = losses.non_saturating_generator_loss_per_example(FAKE).numpy()
  np.testing.assert_allclose(got, [0.4740770, 3.0485874], rtol=1e-6)


def test_minimax_generator_loss_golden():
  # log(1 - sigmoid(0.5)), log(1 - sigmoid(-3)).
  got = losses.minimax_generator_loss_per_example(FAKE).numpy()
  np.testing.assert_allclose(got, [-0.9740770, -0.0485874], rtol=1e-5)


def _cross_entropy(target, logits):
  probability = 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))
  return -(target * np.log(probability) + (1.0 - target) * np.log(1.0 - probability))


@pytest.mark.parametrize("smoothing", [0.1, 0.25, 0.6])
def test_label_smoothing_is_one_sided_with_real_target_one_minus_s(smoothing):
  # Salimans et al. 2016 §3.4: real targets 1 - s, fake targets 0.
  got = losses.minimax_discriminator_loss_per_example(REAL, FAKE, label_smoothing=smoothing)
  expected = (_cross_entropy(1.0 - smoothing, REAL.numpy().ravel())
              + _cross_entropy(0.0, FAKE.numpy().ravel()))
  np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
  # The fake term is untouched: changing only the fake logits changes the loss exactly as the
  # unsmoothed loss changes.
  other_fake = FAKE + 1.0
  delta_smoothed = (losses.minimax_discriminator_loss_per_example(
      REAL, other_fake, label_smoothing=smoothing) - got).numpy()
  delta_plain = (losses.minimax_discriminator_loss_per_example(REAL, other_fake)
                 - losses.minimax_discriminator_loss_per_example(REAL, FAKE)).numpy()
  np.testing.assert_allclose(delta_smoothed, delta_plain, rtol=1e-5)


def test_label_smoothing_is_off_by_default():
  # TF-GAN's own default smooths real labels by 0.25; ours must not.
  smoothed = losses.minimax_discriminator_loss_per_example(REAL, FAKE, label_smoothing=0.25)
  plain = losses.minimax_discriminator_loss_per_example(REAL, FAKE)
  assert not np.allclose(smoothed.numpy(), plain.numpy())


def test_global_batch_mean_divides_by_global_batch():
  per_example = tf.constant([1.0, 2.0, 3.0, 4.0])
  assert float(losses.global_batch_mean(per_example, 8)) == pytest.approx(10.0 / 8)


def test_feature_matching_loss_is_the_squared_distance_of_the_means():
  rng = np.random.default_rng(0)
  real, fake = rng.normal(size=(6, 5)), rng.normal(loc=0.3, size=(6, 5))
  expected = np.sum((real.mean(axis=0) - fake.mean(axis=0)) ** 2)
  got = losses.feature_matching_loss(tf.constant(real.mean(axis=0)),
                                     tf.constant(fake.mean(axis=0)))
  assert float(got) == pytest.approx(expected, rel=1e-6)
  assert float(losses.feature_matching_loss(tf.ones([3]), tf.ones([3]))) == 0.0


def test_wasserstein_losses_golden():
  # Critic: D(G(z)) - D(x) = 0.5 - 2, -3 - (-1); generator: -D(G(z)).
  np.testing.assert_allclose(
      losses.wasserstein_discriminator_loss_per_example(REAL, FAKE).numpy(), [-1.5, -2.0])
  np.testing.assert_allclose(losses.wasserstein_generator_loss_per_example(FAKE).numpy(),
                             [-0.5, 3.0])


def test_hinge_discriminator_loss_golden():
  # max(0, 1 - 2) + max(0, 1 + 0.5) = 1.5; max(0, 1 + 1) + max(0, 1 - 3) = 2.
  np.testing.assert_allclose(
      losses.hinge_discriminator_loss_per_example(REAL, FAKE).numpy(), [1.5, 2.0])


def test_least_squares_losses_golden():
  # D: (2 - 1)^2 / 2 + 0.5^2 / 2 = 0.625; (-1 - 1)^2 / 2 + (-3)^2 / 2 = 6.5.
  np.testing.assert_allclose(
      losses.least_squares_discriminator_loss_per_example(REAL, FAKE).numpy(), [0.625, 6.5])
  # G: (0.5 - 1)^2 / 2 = 0.125; (-3 - 1)^2 / 2 = 8.
  np.testing.assert_allclose(
      losses.least_squares_generator_loss_per_example(FAKE).numpy(), [0.125, 8.0])
