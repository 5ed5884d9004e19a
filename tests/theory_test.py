"""The optimal-discriminator check: closed forms, V(D*) = -log 4 + 2 JSD, the command."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfgan_app import theory
from tfgan_app import toy_data
from conftest import HANG_TIMEOUT_S, REPO_ROOT

P_DATA = toy_data.get("gaussian1d")


def test_optimal_discriminator_closed_form():
  p_g = theory.generator_density(1.0, 3.0)
  x = np.array([0.0, 3.5, 4.0, 6.0])
  p = np.exp(-(x - 4.0) ** 2 / (2 * 0.25)) / (0.5 * math.sqrt(2 * math.pi))
  q = np.exp(-(x - 3.0) ** 2 / 2) / math.sqrt(2 * math.pi)
  np.testing.assert_allclose(theory.optimal_discriminator(x, P_DATA, p_g), p / (p + q),
                             rtol=1e-9, atol=1e-300)
  # Equal densities: D* = 1/2 everywhere.
  same = theory.generator_density(0.5, 4.0)
  np.testing.assert_allclose(theory.optimal_discriminator(x, P_DATA, same), 0.5)


def test_numeric_jsd_limits():
  assert theory.jsd_numeric(P_DATA, theory.generator_density(0.5, 4.0)) == pytest.approx(
      0.0, abs=1e-9)
  # Disjoint supports: log 2.
  assert theory.jsd_numeric(P_DATA, theory.generator_density(0.5, 40.0)) == pytest.approx(
      math.log(2.0), abs=1e-6)
  # Reflection symmetry: the JSD is symmetric and shift invariant.
  a = theory.jsd_numeric(P_DATA, theory.generator_density(1.0, 3.0))
  b = theory.jsd_numeric(P_DATA, theory.generator_density(1.0, 5.0))
  assert a == pytest.approx(b, rel=1e-6) and 0.1 < a < 0.4


def test_value_of_the_exact_optimal_discriminator_is_minus_log4_plus_2jsd():
  p_g = theory.generator_density(1.0, 3.0)

  def d_star_logits(points, training=False):
    del training
    x = points.numpy().astype(np.float64)
    return tf.constant(P_DATA.log_pdf(x) - p_g.log_pdf(x))[:, None]

  value = theory.value_by_quadrature(d_star_logits, P_DATA, p_g)
  assert (value + math.log(4.0)) / 2.0 == pytest.approx(theory.jsd_numeric(P_DATA, p_g),
                                                         abs=1e-7)
  # Any other D has a lower value (D* maximises V): here a D that is wrong by a constant logit.
  worse = theory.value_by_quadrature(lambda points, training=False: d_star_logits(points) + 0.5,
                                     P_DATA, p_g)
  assert worse < value - 1e-3
  monte_carlo = theory.value_by_monte_carlo(d_star_logits, P_DATA, p_g, 200_000, seed=0)
  assert monte_carlo == pytest.approx(value, abs=0.01)


def test_grid_is_the_union_of_three_std_intervals():
  points = theory.grid(P_DATA, theory.generator_density(1.0, 3.0))
  assert points[0] == pytest.approx(0.0) and points[-1] == pytest.approx(6.0)
  assert len(points) == theory.GRID_POINTS


def _run(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", "tfgan_app.theory", *args], cwd=REPO_ROOT,
                        env=env, capture_output=True, text=True, timeout=HANG_TIMEOUT_S)


def test_command_meets_the_bounds_and_writes_its_plot(tmp_path):
  # A faster schedule than the default (4000 steps of 2048), which also meets the bounds.
  result = _run(f"--out={tmp_path}", "--steps=1500", "--batch_size=1024",
                "--learning_rate=0.01")
  assert result.returncode == 0, result.stderr[-3000:]
  record = json.loads(result.stdout.strip().splitlines()[-1])
  assert {"d_star_max_error", "jsd_estimate", "jsd_numeric"} <= set(record)
  assert record["d_star_max_error"] < 0.05
  assert abs(record["jsd_estimate"] - record["jsd_numeric"]) < 0.02
  assert abs(record["jsd_estimate_monte_carlo"] - record["jsd_numeric"]) < 0.02
  # (V + log 4) / 2 bounds the JSD from below (up to quadrature error).
  assert record["jsd_estimate"] <= record["jsd_numeric"] + 1e-6
  assert record["jsd_numeric"] == pytest.approx(
      theory.jsd_numeric(P_DATA, theory.generator_density(1.0, 3.0)))
  png = tf.io.decode_png(tf.io.read_file(str(tmp_path / "theory.png")))
  assert png.shape[-1] == 3 and png.shape[1] > 600
  assert json.loads((tmp_path / "theory.json").read_text()) == record


@pytest.mark.parametrize("args,message", [
    (["--steps=10"], "--steps"),
    (["--hidden_units=64,x"], "not a comma-separated list"),
    (["--g_scale=0"], "--g_scale must be non-zero"),
])
def test_bad_flags_fail_in_one_line(tmp_path, capsys, args, message):
  # main() in process: the command's own parsing and exit status, without a TF start-up.
  assert theory.main(["theory", f"--out={tmp_path}", *args]) == 2
  error = capsys.readouterr().err
  assert error.startswith("python -m tfgan_app.theory: error:") and message in error
  assert len(error.strip().splitlines()) == 1
  assert not os.path.exists(tmp_path / "theory.png")
