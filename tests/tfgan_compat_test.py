"""TF-GAN, imported through our TF 2.21 shim, agrees with independent numpy/scipy maths."""

import numpy as np
import scipy.linalg
import tensorflow as tf

from tfgan_app.common.tfgan_compat import tfgan


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def _numpy_frechet_distance(a, b):
  mu_a, mu_b = a.mean(0), b.mean(0)
  cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  sqrt_product = scipy.linalg.sqrtm(cov_a @ cov_b).real
  return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2.0 * sqrt_product))


def test_shim_imports_losses_and_eval():
  assert callable(tfgan.losses.wargs.minimax_discriminator_loss)
  assert callable(tfgan.eval.frechet_classifier_distance_from_activations)


def test_minimax_discriminator_loss_matches_numpy():
  rng = np.random.default_rng(0)
  real, fake = rng.normal(size=(32, 1)), rng.normal(size=(32, 1))
  expected = np.mean(-np.log(_sigmoid(real))) + np.mean(-np.log(1.0 - _sigmoid(fake)))
  got = tfgan.losses.wargs.minimax_discriminator_loss(
      tf.constant(real, tf.float32), tf.constant(fake, tf.float32), label_smoothing=0.0,
      add_summaries=False)
  np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)


def test_generator_losses_match_numpy():
  fake = np.random.default_rng(1).normal(size=(64, 1))
  non_saturating = tfgan.losses.wargs.modified_generator_loss(
      tf.constant(fake, tf.float32), add_summaries=False)
  minimax = tfgan.losses.wargs.minimax_generator_loss(
      tf.constant(fake, tf.float32), add_summaries=False)
  np.testing.assert_allclose(non_saturating.numpy(), np.mean(-np.log(_sigmoid(fake))),
                             rtol=1e-5)
  # TF-GAN feeds 1.0 as the real example's *logit*, which shifts the value by log sigmoid(1);
  # tfgan_app.losses removes the shift (see losses_test.py).
  np.testing.assert_allclose(minimax.numpy(),
                             np.mean(np.log(1.0 - _sigmoid(fake))) + np.log(_sigmoid(1.0)),
                             rtol=1e-5)


def test_frechet_distance_matches_scipy():
  rng = np.random.default_rng(2)
  a = rng.normal(size=(500, 16))
  b = rng.normal(size=(500, 16)) @ rng.normal(size=(16, 16)) * 0.5 + 0.3
  got = tfgan.eval.frechet_classifier_distance_from_activations(
      tf.constant(a, tf.float64), tf.constant(b, tf.float64))
  np.testing.assert_allclose(float(got), _numpy_frechet_distance(a, b), rtol=1e-3)


def test_frechet_distance_of_a_sample_with_itself_is_zero():
  a = np.random.default_rng(3).normal(size=(300, 8))
  got = tfgan.eval.frechet_classifier_distance_from_activations(
      tf.constant(a, tf.float64), tf.constant(a, tf.float64))
  assert abs(float(got)) < 1e-6
