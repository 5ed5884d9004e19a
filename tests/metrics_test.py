"""Metrics through TF-GAN agree with independent numpy/scipy maths; golden precision/recall."""

import numpy as np
import pytest

from conftest import numpy_frechet_distance, numpy_unbiased_mmd2
from tfgan_app.evaluation import metrics


def test_fid_matches_scipy():
  rng = np.random.default_rng(0)
  real = rng.normal(size=(600, 12))
  generated = rng.normal(size=(500, 12)) @ rng.normal(size=(12, 12)) * 0.5 + 0.3
  np.testing.assert_allclose(metrics.frechet_distance(real, generated),
                             numpy_frechet_distance(real, generated), rtol=1e-3)


def test_fid_of_a_sample_with_itself_is_zero():
  features = np.random.default_rng(1).normal(size=(400, 16)).astype(np.float32)
  assert abs(metrics.frechet_distance(features, features)) < 1e-6


@pytest.mark.parametrize("num_classes", [2, 10])
def test_is_of_confident_even_predictions_is_the_class_count(num_classes):
  labels = np.arange(100 * num_classes) % num_classes
  logits = 50.0 * np.eye(num_classes)[labels]  # Softmax is one-hot to ~1e-21.
  np.testing.assert_allclose(metrics.inception_score(logits), num_classes, rtol=1e-4)


def test_is_of_one_class_is_one():
  logits = np.tile([[30.0, 0.0, 0.0]], (50, 1))
  np.testing.assert_allclose(metrics.inception_score(logits), 1.0, rtol=1e-4)


def test_kid_matches_numpy_on_one_block():
  rng = np.random.default_rng(2)
  real, generated = rng.normal(size=(300, 8)), rng.normal(size=(200, 8)) + 0.5
  result = metrics.kernel_distance(real, generated, block_size=1024)
  np.testing.assert_allclose(result["kid"], numpy_unbiased_mmd2(real, generated), rtol=1e-6)
  assert result["kid_std"] is None  # One block.


def test_kid_is_about_zero_for_one_distribution_and_positive_otherwise():
  rng = np.random.default_rng(3)
  a, b = rng.normal(size=(2000, 16)), rng.normal(size=(2000, 16))
  same = metrics.kernel_distance(a, b, block_size=500)
  shifted = metrics.kernel_distance(a, b + 1.0, block_size=500)
  assert abs(same["kid"]) < max(4 * same["kid_std"], 1e-3)
  assert shifted["kid"] > 100 * abs(same["kid"]) and shifted["kid"] > 10 * shifted["kid_std"]


def test_precision_recall_identical_sets_are_perfect():
  features = np.random.default_rng(4).normal(size=(200, 4))
  assert metrics.precision_recall(features, features) == {"precision": 1.0, "recall": 1.0}


def test_precision_recall_disjoint_sets_are_zero():
  rng = np.random.default_rng(5)
  real = rng.normal(size=(100, 4))
  assert metrics.precision_recall(real, real + 100.0) == {"precision": 0.0, "recall": 0.0}


def test_precision_recall_golden_one_dimensional_case():
  # Real: 0..9 on a line; each real ball (k=3) reaches 2 or 3 (3 at the ends).
  real = np.arange(10.0)[:, None]
  # Generated: a collapsed mode at 4.0 (x5) plus one sample far outside.
  generated = np.array([[4.0]] * 5 + [[50.0]])
  result = metrics.precision_recall(real, generated, k=3)
  # Precision: the five samples at 4.0 lie in the real manifold, the one at 50 does not.
  assert result["precision"] == pytest.approx(5 / 6)
  # Generated radii (k=3): each 4.0 sample's 3rd neighbour is another 4.0 (radius 0); the 50
  # sample's is 4.0 (radius 46). Real points within: 4 (in the radius-0 balls) and every real
  # point within 46 of 50, i.e. 4..9. So recall = 6 / 10.
  assert result["recall"] == pytest.approx(6 / 10)


def test_knn_radii_golden():
  radii = metrics.knn_radii(np.arange(6.0)[:, None], k=2)  # Squared distances.
  np.testing.assert_allclose(radii, [4, 1, 1, 1, 1, 4])


def test_registry_and_names():
  assert set(metrics.REGISTRY) == {"fid", "is", "kid", "precision_recall"}
  assert metrics.parse_metric_names("fid, IS,fid,kid") == ("fid", "is", "kid")
  with pytest.raises(ValueError, match="accepted: fid, is, kid, precision_recall"):
    metrics.parse_metric_names("fid,swd")
  assert metrics.needed_outputs(["is"]) == {"logits"}


def test_bad_shapes_are_refused():
  with pytest.raises(ValueError, match="differ in width"):
    metrics.frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
  with pytest.raises(ValueError, match="NaN"):
    metrics.inception_score(np.array([[np.nan, 1.0], [0.0, 1.0]]))
  with pytest.raises(ValueError, match="need more than 3"):
    metrics.precision_recall(np.zeros((3, 2)), np.zeros((10, 2)))
