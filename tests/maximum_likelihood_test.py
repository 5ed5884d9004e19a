"""EM for the Gaussian mixture: its numbers against numpy and TFP, and what fitting achieves."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfgan_app.common import config as config_lib
from tfgan_app.mixture import maximum_likelihood as ml
from tfgan_app.models import gmm


def test_component_log_densities_match_tfp():
  rng = np.random.default_rng(0)
  pixels = rng.uniform(-1, 1, size=(7, 5))
  means = rng.uniform(-1, 1, size=(3, 5))
  variances = rng.uniform(0.01, 0.5, size=(3, 5))
  got = ml.component_log_densities(tf.constant(pixels), tf.constant(means),
                                   tf.constant(variances)).numpy()
  normal = tfp.distributions.MultivariateNormalDiag(loc=means, scale_diag=np.sqrt(variances))
  expected = normal.log_prob(pixels[:, None, :]).numpy()  # [7, 3]
  np.testing.assert_allclose(got, expected, rtol=1e-10)


def _numpy_em_step(pixels, weights, means, variances):
  """One textbook EM step for a diagonal Gaussian mixture, with per-image loops."""
  num_images, num_components = len(pixels), len(weights)
  joint = np.zeros((num_images, num_components))
  for n in range(num_images):
    for k in range(num_components):
      joint[n, k] = weights[k] * np.prod(
          np.exp(-0.5 * (pixels[n] - means[k]) ** 2 / variances[k])
          / np.sqrt(2 * math.pi * variances[k]))
  log_likelihood = np.log(joint.sum(axis=1)).sum()
  responsibilities = joint / joint.sum(axis=1, keepdims=True)
  counts = responsibilities.sum(axis=0)
  new_means = responsibilities.T @ pixels / counts[:, None]
  new_variances = np.stack([
      (responsibilities[:, k:k + 1] * (pixels - new_means[k]) ** 2).sum(0) / counts[k]
      for k in range(num_components)])
  return log_likelihood, counts / num_images, new_means, new_variances


def test_one_em_step_matches_the_textbook_numbers():
  rng = np.random.default_rng(1)
  pixels = np.concatenate([rng.normal(-0.5, 0.2, size=(30, 4)),
                           rng.normal(0.4, 0.1, size=(20, 4))]).astype(np.float32)
  weights = np.array([0.3, 0.7])
  means = np.stack([pixels[3], pixels[40]]).astype(np.float32)
  variances = np.full((2, 4), 0.1, np.float32)
  center = tf.reduce_mean(tf.cast(pixels, tf.float64), axis=0)
  counts, sums, squares, log_likelihood = ml.expectation(
      tf.constant(pixels), center, np.log(weights).astype(np.float32), means, np.log(variances))
  new_logits, new_means, new_log_variances = ml.maximisation(
      counts, sums, squares, center, len(pixels), np.zeros(2, np.float32), means,
      np.log(variances))
  expected = _numpy_em_step(pixels.astype(np.float64), weights, means.astype(np.float64),
                            variances.astype(np.float64))
  assert float(log_likelihood) == pytest.approx(expected[0], rel=1e-6)
  np.testing.assert_allclose(np.exp(new_logits.numpy()), expected[1], rtol=1e-5)
  np.testing.assert_allclose(new_means.numpy(), expected[2], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.exp(new_log_variances.numpy()), expected[3], rtol=1e-5)


def test_em_never_lowers_the_likelihood_and_recovers_a_known_mixture():
  rng = np.random.default_rng(2)
  true_means = np.array([[-0.6, 0.2, 0.5], [0.5, -0.4, 0.0]])
  labels = rng.random(3000) < 0.35
  pixels = np.where(labels[:, None], rng.normal(true_means[0], 0.05, size=(3000, 3)),
                    rng.normal(true_means[1], 0.1, size=(3000, 3))).astype(np.float32)
  run = ml.build_run(config_lib.TrainConfig(architecture="gmm", gmm_components=2, seed=5),
                     (1, 3, 1))
  history = []

  class Record:  # The callback protocol `fit` drives.
    def set_model(self, model):
      self.model = model

    def on_train_begin(self, logs=None):
      pass

    def on_train_batch_end(self, batch, logs=None):
      history.append(logs["nll"])
      if len(history) == 6:
        self.model.stop_training = True  # What preemption.StopOnSignal does.

    def on_train_end(self, logs=None):
      pass

  ml.fit(run, tf.constant(pixels), train_steps=20, log_every=5, callbacks=[Record()])
  assert int(run.step.numpy()) == 6 and len(history) == 6  # Stopped when asked.
  assert all(later <= earlier + 1e-6 for earlier, later in zip(history, history[1:])), history
  run.stop_training = False
  logs = ml.fit(run, tf.constant(pixels), train_steps=20, log_every=5)
  assert int(run.step.numpy()) == 20 and logs["nll"] <= history[-1]
  order = np.argsort(run.mixture.means.numpy()[:, 0])
  np.testing.assert_allclose(run.mixture.means.numpy()[order], true_means, atol=0.02)
  np.testing.assert_allclose(tf.nn.softmax(run.mixture.logits).numpy()[order], [0.35, 0.65],
                             atol=0.03)
  np.testing.assert_allclose(np.exp(0.5 * run.mixture.log_variances.numpy()[order]),
                             [[0.05] * 3, [0.1] * 3], rtol=0.1)


def test_dequantized_pixels_are_in_range_and_reproducible():
  images = np.array([[[[0], [255]], [[128], [7]]]], np.uint8)  # [1, 2, 2, 1]
  pixels = ml.dequantized_pixels(images, seed=3, purpose=1).numpy()
  assert pixels.shape == (1, 4)
  lower = images.reshape(1, 4) / 127.5 - 1.0
  assert np.all(pixels >= lower - 1e-6) and np.all(pixels < lower + 1 / 127.5)
  np.testing.assert_array_equal(pixels, ml.dequantized_pixels(images, 3, 1).numpy())
  assert not np.array_equal(pixels, ml.dequantized_pixels(images, 3, 2).numpy())


def test_nll_is_on_the_pixel_scale_and_held_out_nll_uses_the_mixture():
  # The uniform density on [-1, 1]^D is the uniform one on [0, 255]^D: log2(255) bits per dim.
  num_pixels = 784
  nll = ml.nll_per_image(-num_pixels * math.log(2.0) * 10, 10, num_pixels)
  assert ml.bits_per_dim(nll, num_pixels) == pytest.approx(math.log2(255.0))
  mixture = gmm.build_gaussian_mixture(2, (1, 2, 1))
  points = tf.constant([[0.1, -0.2], [0.3, 0.3], [-0.5, 0.0]])
  log_prob = mixture.distribution().log_prob(points).numpy().sum()
  assert ml.held_out_nll(mixture, points, batch_size=2) == pytest.approx(
      -log_prob / 3 + 2 * math.log(127.5), rel=1e-6)
