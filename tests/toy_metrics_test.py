"""Toy metrics on synthetic points with known answers, and the toy_metrics command."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from tfgan_app import toy_data
from tfgan_app import toy_metrics
from conftest import HANG_TIMEOUT_S, REPO_ROOT

RING = toy_data.get("ring8")


def _on_modes(modes, num_samples=10_000, seed=0, distribution=RING):
  """Exact samples of the mixture restricted to `modes`, equal weights."""
  rng = np.random.default_rng(seed)
  chosen = rng.choice(modes, size=num_samples)
  noise = rng.standard_normal((num_samples, distribution.dim))
  return distribution.centres_array[chosen] + distribution.std * noise


def test_exact_samples_cover_every_mode_with_high_quality_and_near_zero_kl():
  for name in sorted(toy_data.DISTRIBUTIONS):
    distribution = toy_data.get(name)
    points = distribution.sample(10_000, np.random.default_rng(1))
    record = toy_metrics.measure(points, distribution)
    assert record["modes_covered"] == record["num_modes"] == distribution.num_modes
    # P(chi_D <= 3): 0.9973 in 1-D, 1 - exp(-4.5) = 0.9889 in 2-D.
    expected = 0.9973 if distribution.dim == 1 else 1 - math.exp(-4.5)
    assert record["high_quality_fraction"] == pytest.approx(expected, abs=0.005)
    # Not 0: finite-sample bias of about (occupied bins) / (2N), which shrinks with N.
    assert 0.0 <= record["kl"] < 0.03, name
    more = distribution.sample(100_000, np.random.default_rng(2))
    assert toy_metrics.histogram_kl(more, distribution) < 0.005, name


def test_seven_of_eight_modes():
  points = _on_modes(list(range(7)))
  assert toy_metrics.modes_covered(points, RING) == 7
  assert toy_metrics.high_quality_fraction(points, RING) > 0.98
  fractions = toy_metrics.mode_fractions(points, RING)
  assert fractions[7] == 0.0 and np.all(fractions[:7] > 0.13)
  # Half the modes: the histograms differ by a factor 2 where the samples are, KL = log 2.
  assert toy_metrics.histogram_kl(_on_modes([0, 2, 4, 6]), RING) == pytest.approx(
      math.log(2.0), abs=0.02)


def test_a_mode_needs_one_percent_of_the_samples():
  points = _on_modes([0], num_samples=9_950)
  stragglers = _on_modes([1], num_samples=50, seed=1)  # 0.5% of 10,000.
  assert toy_metrics.modes_covered(np.concatenate([points, stragglers]), RING) == 1
  more = _on_modes([1], num_samples=150, seed=2)
  assert toy_metrics.modes_covered(np.concatenate([points[:9_850], more]), RING) == 2


def test_uniform_noise_is_low_quality_with_a_large_kl():
  points = np.random.default_rng(3).uniform(-2.5, 2.5, size=(10_000, 2))
  # Eight discs of radius 0.06 cover 8 pi 0.06^2 / 25 = 0.36% of the square.
  assert toy_metrics.high_quality_fraction(points, RING) < 0.01
  assert toy_metrics.modes_covered(points, RING) == 0
  assert toy_metrics.histogram_kl(points, RING) > 5.0


def test_points_outside_the_histogram_box_count():
  far = np.full((100, 2), 50.0)
  # All mass in the outside bin, where the truth has ~1e-6 after smoothing.
  assert toy_metrics.histogram_kl(far, RING) > 10.0
  assert toy_metrics.high_quality_fraction(far, RING) == 0.0


def test_wrong_shape_is_refused():
  with pytest.raises(toy_metrics.ToyMetricsError, match=r"expected points \[N, 2\]"):
    toy_metrics.measure(np.zeros((10, 1)), RING)


def _run(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", "tfgan_app.toy_metrics", *args], cwd=REPO_ROOT,
                        env=env, capture_output=True, text=True, timeout=HANG_TIMEOUT_S)


def test_command_errors_in_one_line(tmp_path):
  result = _run(f"--saved_model={tmp_path}")
  assert result.returncode == 1
  assert "python -m tfgan_app.toy_metrics: error: no SavedModel" in result.stderr
  assert _run().returncode == 2
