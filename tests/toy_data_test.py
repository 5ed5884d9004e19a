"""Toy distributions: centres, per-mode statistics of both samplers, densities, the stream."""

import math

import numpy as np
import pytest
from scipy import integrate
import tensorflow as tf

from tfgan_app.toy import distributions as toy_data


def test_ring8_and_grid25_centres_match_the_issue():
  ring = toy_data.get("ring8")
  assert ring.std == 0.02 and ring.num_modes == 8 and ring.dim == 2
  np.testing.assert_allclose(ring.centres_array[0], [2.0, 0.0])
  np.testing.assert_allclose(np.linalg.norm(ring.centres_array, axis=1), 2.0)
  angles = np.sort(np.mod(np.arctan2(ring.centres_array[:, 1], ring.centres_array[:, 0]),
                          2 * np.pi))
  np.testing.assert_allclose(np.diff(angles), np.pi / 4, atol=1e-12)
  grid = toy_data.get("grid25")
  assert grid.std == 0.05 and grid.num_modes == 25
  assert sorted(map(tuple, grid.centres_array)) == [
      (x, y) for x in (-4.0, -2.0, 0.0, 2.0, 4.0) for y in (-4.0, -2.0, 0.0, 2.0, 4.0)]
  line = toy_data.get("gaussian1d")
  assert line.dim == 1 and line.num_modes == 1 and line.std == 0.5
  np.testing.assert_allclose(line.centres_array, [[4.0]])


def _per_mode_statistics(points, distribution):
  nearest = np.argmin(np.linalg.norm(points[:, None] - distribution.centres_array[None], axis=-1),
                      axis=1)
  return [(np.mean(nearest == k), (points[nearest == k] - centre).mean(axis=0),
           (points[nearest == k] - centre).std(axis=0))
          for k, centre in enumerate(distribution.centres_array)]


def _tf_sample(distribution, num_samples):
  return distribution.sample_tf(num_samples, tf.constant([3, 4], tf.int64)).numpy()


@pytest.mark.parametrize("name", sorted(toy_data.DISTRIBUTIONS))
@pytest.mark.parametrize("sampler", ["numpy", "tensorflow"])
def test_each_mode_has_its_weight_mean_and_std(name, sampler):
  distribution = toy_data.get(name)
  num_samples = 2_000 * distribution.num_modes
  points = (distribution.sample(num_samples, np.random.default_rng(0)) if sampler == "numpy"
            else _tf_sample(distribution, num_samples))
  assert points.shape == (num_samples, distribution.dim) and points.dtype == np.float32
  for weight, mean_offset, std in _per_mode_statistics(points.astype(np.float64), distribution):
    # 2,000 points per mode: weights within 5 binomial sigmas, means within 5 standard errors.
    expected = 1 / distribution.num_modes
    assert abs(weight - expected) <= 5 * math.sqrt(expected * (1 - expected) / num_samples)
    np.testing.assert_array_less(np.abs(mean_offset), 5 * distribution.std / math.sqrt(1_000))
    np.testing.assert_allclose(std, distribution.std, rtol=0.1)


@pytest.mark.parametrize("name", sorted(toy_data.DISTRIBUTIONS))
def test_density_integrates_to_one_and_matches_a_single_gaussian(name):
  distribution = toy_data.get(name)
  if distribution.dim == 1:
    total, _ = integrate.quad(lambda x: distribution.pdf(np.array([[x]]))[0], -10, 20,
                              points=[4.0], limit=200)
  else:
    # Each mode carries 1/K; grid cells are exact through the normal CDF.
    edges = [np.linspace(-6, 6, 601)] * 2
    total = distribution.box_probabilities(edges).sum()
  assert total == pytest.approx(1.0, abs=1e-6)
  centre = distribution.centres_array[0]
  peak = 1.0 / (distribution.num_modes * (2 * math.pi * distribution.std ** 2) ** (
      distribution.dim / 2))
  assert distribution.pdf(centre[None])[0] == pytest.approx(peak, rel=1e-6)
  np.testing.assert_allclose(distribution.log_pdf(centre[None]), math.log(peak), rtol=1e-9)


def test_box_probabilities_agree_with_a_histogram_of_samples():
  distribution = toy_data.get("ring8")
  edges = [np.linspace(1.9, 2.1, 9), np.linspace(-0.1, 0.1, 9)]  # Around the first centre.
  points = distribution.sample(400_000, np.random.default_rng(1))
  counts, _ = np.histogramdd(points, bins=edges)
  np.testing.assert_allclose(counts / len(points), distribution.box_probabilities(edges),
                             atol=2e-3)
  assert distribution.box_probabilities(edges).sum() == pytest.approx(1 / 8, abs=1e-4)


def test_unknown_name():
  assert toy_data.is_toy("ring8") and not toy_data.is_toy("mnist")
  with pytest.raises(ValueError, match="accepted: ring8, grid25, gaussian1d"):
    toy_data.get("ring9")


def test_stream_is_a_pure_function_of_seed_and_step():
  distribution = toy_data.get("ring8")
  full = [tuple(batch.numpy() for batch in element)
          for element in toy_data.make_train_dataset(distribution, 16, d_steps=2, seed=5).take(6)]
  assert len(full[0]) == 2 and full[0][0].shape == (16, 2) and full[0][0].dtype == np.float32
  assert not np.array_equal(full[0][0], full[0][1])  # Each D step gets its own batch.
  assert not np.array_equal(full[0][0], full[1][0])
  resumed = toy_data.make_train_dataset(distribution, 16, d_steps=2, seed=5, start_step=4)
  for offset, element in enumerate(resumed.take(2)):
    for got, expected in zip(element, full[4 + offset]):
      np.testing.assert_array_equal(got.numpy(), expected)
  other = next(iter(toy_data.make_train_dataset(distribution, 16, d_steps=2, seed=6)))
  assert not np.array_equal(other[0].numpy(), full[0][0])


def test_data_never_reuses_the_latents_random_numbers():
  # gan.latent_seed folds purposes 0..d_steps-1 and 2**20 into (seed, step); the data's seed
  # differs from all of them.
  from tfgan_app.gan import model as gan  # pylint: disable=import-outside-toplevel
  data_seed = toy_data.batch_seed(1, 7, 0).numpy()
  for purpose in (0, 1, 1 << 20):
    assert not np.array_equal(data_seed, gan.latent_seed(1, 7, purpose).numpy())
