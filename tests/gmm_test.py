"""The Gaussian mixture model: its density, and latents that map to exact samples of it."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgan_app.models import gmm

WEIGHTS = np.array([0.2, 0.5, 0.3])
MEANS = np.array([[-0.6, -0.6], [0.0, 0.5], [0.6, -0.3]])
STDDEVS = np.array([[0.05, 0.1], [0.08, 0.04], [0.02, 0.06]])


def _mixture():
  mixture = gmm.build_gaussian_mixture(3, (1, 2, 1))
  mixture.logits.assign(np.log(WEIGHTS).astype(np.float32))
  mixture.means.assign(MEANS.astype(np.float32))
  mixture.log_variances.assign(np.log(STDDEVS ** 2).astype(np.float32))
  return mixture


def test_latent_dim_is_pixels_plus_one_and_images_have_the_shape():
  assert gmm.latent_dim_for((28, 28, 1)) == 785
  mixture = gmm.build_gaussian_mixture(4, (28, 28, 1))
  assert mixture.latent_dim == 785
  images = mixture(tf.random.stateless_normal([5, 785], seed=[1, 1]) * 10.0)
  assert images.shape == (5, 28, 28, 1) and images.dtype == tf.float32
  assert images.numpy().min() >= -1.0 and images.numpy().max() <= 1.0


def test_the_first_latent_picks_components_by_their_cumulative_weights():
  # Phi(z_0) just inside each component's slice [0, .2), [.2, .7), [.7, 1).
  quantiles = tf.constant([0.01, 0.19, 0.21, 0.69, 0.71, 0.99])
  latents = tf.concat([tf.math.ndtri(quantiles)[:, None], tf.zeros([6, 2])], axis=1)
  np.testing.assert_array_equal(_mixture().components(latents).numpy(), [0, 0, 1, 1, 2, 2])


def test_standard_normal_latents_draw_exact_samples_of_the_mixture():
  mixture = _mixture()
  num_samples = 40_000
  latents = tf.random.stateless_normal([num_samples, 3], seed=[2, 3])
  samples = mixture(latents).numpy().reshape(num_samples, 2)
  # The components are far apart: each sample's nearest mean is its component.
  nearest = np.argmin(((samples[:, None, :] - MEANS[None]) ** 2).sum(-1), axis=1)
  frequencies = np.bincount(nearest, minlength=3) / num_samples
  np.testing.assert_allclose(frequencies, WEIGHTS, atol=0.01)  # 4 standard errors.
  for k in range(3):
    members = samples[nearest == k]
    np.testing.assert_allclose(members.mean(0), MEANS[k], atol=0.01)
    np.testing.assert_allclose(members.std(0), STDDEVS[k], rtol=0.05)
  # The very same map decides component and noise: the latents' coordinates 1.. are the noise.
  chosen = mixture.components(latents).numpy()
  np.testing.assert_array_equal(chosen, nearest)
  np.testing.assert_allclose(samples, MEANS[chosen] + STDDEVS[chosen] * latents.numpy()[:, 1:],
                             atol=1e-6)


def test_distribution_log_prob_matches_numpy():
  mixture = _mixture()
  points = np.array([[-0.55, -0.62], [0.1, 0.45], [0.3, 0.0]])
  component_logs = (-0.5 * (((points[:, None, :] - MEANS[None]) / STDDEVS[None]) ** 2).sum(-1)
                    - np.log(STDDEVS).sum(-1)[None] - math.log(2.0 * math.pi)
                    + np.log(WEIGHTS)[None])  # [3 points, 3 components]
  expected = np.log(np.exp(component_logs).sum(axis=1))
  got = mixture.distribution().log_prob(points.astype(np.float32)).numpy()
  np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_float32_under_mixed_precision_and_checkpoint_and_config(tmp_path):
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    mixture = gmm.build_gaussian_mixture(2, (2, 2, 1))
    images = mixture(tf.random.stateless_normal([3, 5], seed=[4, 4]))
  finally:
    keras.mixed_precision.set_global_policy("float32")
  assert images.dtype == tf.float32 and mixture.means.dtype == "float32"
  path = tf.train.Checkpoint(model=mixture).save(str(tmp_path / "gmm"))
  saved = [name for name, _ in tf.train.list_variables(path) if name.startswith("model/")]
  assert len(saved) == len(mixture.variables) == 3
  rebuilt = gmm.GaussianMixture.from_config(mixture.get_config())
  assert rebuilt.num_components == 2 and rebuilt.image_shape == (2, 2, 1)
  with pytest.raises(ValueError, match="num_components must be >= 1"):
    gmm.GaussianMixture(0, (2, 2, 1))
