r"""The optimal discriminator, measured (Goodfellow et al. 2014, Proposition 1 and Theorem 1).

  python -m tfgan_app.theory [--out=runs/theory]
  # 21 s on 2 busy CPU cores (68 s when very busy); writes <out>/theory.png and theory.json

For a fixed generator the discriminator that maximises V(D, G) = E_data log D(x) +
E_g log(1 - D(x)) is D*(x) = p_data(x) / (p_data(x) + p_g(x)), and V(D*, G) = -log 4 +
2 JSD(p_data || p_g). This command checks both on a 1-D problem whose densities are known:

  p_data  the `gaussian1d` toy distribution, N(4, 0.5^2) (tfgan_app/toy_data.py);
  G       fixed, G(z) = g_scale * z + g_shift with z ~ N(0, 1), so p_g = N(g_shift, g_scale^2)
          (defaults: N(3, 1)).

D is the MLP discriminator of `--architecture=mlp` (no dropout), trained with the project's
discriminator loss (TF-GAN's minimax loss, tfgan_app/losses.py) on fresh samples of both
densities every step, with Adam whose learning rate decays linearly to 0 over the second half
of --steps. Then:

  d_star_max_error  max |D(x) - D*(x)| over the grid: 1,001 evenly spaced points on the union of
                    mean +- 3 std of p_data and of p_g, where each density is at least 1.1% of
                    its peak (outside it D* is fixed by almost no samples).
  jsd_estimate      (V + log 4) / 2 with V = V(D, G) of the trained D, integrated against the
                    known densities by the trapezoidal rule on 20,001 points over both means
                    +- 10 std (no Monte Carlo noise). A lower bound of the JSD, tight at D*.
  jsd_numeric       JSD(p_data || p_g) from the densities alone, by scipy.integrate.quad.

Extra keys: jsd_gap (jsd_numeric - jsd_estimate), jsd_estimate_monte_carlo (the same V from
1,000,000 fresh samples per density), d_loss_final (D's loss over the last 100 steps) and
d_loss_optimal (-V(D*, G) = log 4 - 2 JSD), the grid and the settings. The last stdout line is
that JSON object. Errors: one line on stderr, exit status 2 for a bad command line.
"""

import json
import math
import os
import time

import keras
import numpy as np
from scipy import integrate
import tensorflow as tf

from tfgan_app.common import images as images_lib
from tfgan_app.common import plots
from tfgan_app.gan import losses
from tfgan_app.gan import schedules
from tfgan_app.models import mlp
from tfgan_app.toy import distributions as toy_data

GRID_POINTS = 1_001
GRID_STDS = 3.0
QUADRATURE_POINTS = 20_001
QUADRATURE_STDS = 10.0
MONTE_CARLO_SAMPLES = 1_000_000
_LOSS_WINDOW = 100


def generator_density(g_scale: float, g_shift: float) -> toy_data.GaussianMixture:
  """p_g of G(z) = g_scale * z + g_shift, z ~ N(0, 1): N(g_shift, g_scale^2)."""
  return toy_data.GaussianMixture("generator", ((float(g_shift),),), std=abs(float(g_scale)),
                                  histogram_bin_width=abs(float(g_scale)) / 2)


def optimal_discriminator(x: np.ndarray, p_data, p_g) -> np.ndarray:
  """D*(x) = p_data / (p_data + p_g) = sigmoid(log p_data - log p_g), [N]."""
  points = np.asarray(x, np.float64)[:, None]
  return 1.0 / (1.0 + np.exp(p_g.log_pdf(points) - p_data.log_pdf(points)))


def jsd_numeric(p_data, p_g) -> float:
  """JSD(p_data || p_g) in nats by adaptive quadrature of the closed-form densities."""

  def integrand(x):
    point = np.array([[x]])
    log_p, log_q = p_data.log_pdf(point)[0], p_g.log_pdf(point)[0]
    log_m = np.logaddexp(log_p, log_q) - math.log(2.0)
    return 0.5 * math.exp(log_p) * (log_p - log_m) + 0.5 * math.exp(log_q) * (log_q - log_m)

  breakpoints = sorted(c[0] for c in p_data.centres + p_g.centres)
  low, high = _span([p_data, p_g], QUADRATURE_STDS)
  value, _ = integrate.quad(integrand, low, high, points=breakpoints, limit=200,
                            epsabs=1e-10, epsrel=1e-10)
  return float(value)


def _span(densities, stds: float):
  low = min(d.centres_array.min() - stds * d.std for d in densities)
  high = max(d.centres_array.max() + stds * d.std for d in densities)
  return float(low), float(high)


def grid(p_data, p_g) -> np.ndarray:
  """The points where D is compared with D* (see the module docstring)."""
  low, high = _span([p_data, p_g], GRID_STDS)
  return np.linspace(low, high, GRID_POINTS)


def _logits(discriminator, x: np.ndarray) -> np.ndarray:
  outputs = discriminator(tf.constant(np.asarray(x, np.float32)[:, None]), training=False)
  return keras.ops.convert_to_numpy(outputs)[:, 0].astype(np.float64)


def value_by_quadrature(discriminator, p_data, p_g) -> float:
  """V(D, G) = int p_data log D + int p_g log(1 - D), trapezoidal rule."""
  x = np.linspace(*_span([p_data, p_g], QUADRATURE_STDS), QUADRATURE_POINTS)
  logits = _logits(discriminator, x)
  log_d = -np.logaddexp(0.0, -logits)  # log sigmoid(l)
  log_not_d = -np.logaddexp(0.0, logits)  # log sigmoid(-l) = log(1 - D)
  integrand = p_data.pdf(x[:, None]) * log_d + p_g.pdf(x[:, None]) * log_not_d
  return float(integrate.trapezoid(integrand, x))


def value_by_monte_carlo(discriminator, p_data, p_g, num_samples: int, seed: int) -> float:
  """V(D, G) from `num_samples` fresh samples of each density."""
  rng = np.random.default_rng(seed)
  real = _logits(discriminator, p_data.sample(num_samples, rng)[:, 0])
  fake = _logits(discriminator, p_g.sample(num_samples, rng)[:, 0])
  return float(np.mean(-np.logaddexp(0.0, -real)) + np.mean(-np.logaddexp(0.0, fake)))


def train_discriminator(p_data, g_scale: float, g_shift: float, steps: int, batch_size: int,
                        learning_rate: float, hidden_units, seed: int):
  """Trains D against the fixed generator; returns (D, mean loss over the last 100 steps)."""
  keras.utils.set_random_seed(seed)
  discriminator = mlp.Discriminator((1,), hidden_units=hidden_units, dropout=0.0,
                                    name="discriminator")
  discriminator(keras.ops.zeros((1, 1)))
  optimizer = keras.optimizers.Adam(
      schedules.LinearDecayToZero(learning_rate, steps, decay_start=0.5), beta_1=0.9)
  optimizer.build(discriminator.trainable_variables)

  @tf.function
  def step(index):
    key = tf.stack([tf.constant(seed, tf.int64), tf.cast(index, tf.int64)])
    real = p_data.sample_tf(batch_size, tf.random.experimental.stateless_fold_in(key, 0))
    latents = tf.random.stateless_normal(
        [batch_size, 1], seed=tf.random.experimental.stateless_fold_in(key, 1))
    fake = g_scale * latents + g_shift  # G(z), [B, 1]
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(losses.minimax_discriminator_loss_per_example(
          discriminator(real, training=True), discriminator(fake, training=True)))
    grads = tape.gradient(loss, discriminator.trainable_variables)
    optimizer.apply(grads, discriminator.trainable_variables)
    return loss

  recent = []
  for index in range(steps):
    loss = step(tf.constant(index, tf.int64))
    if index >= steps - _LOSS_WINDOW:
      recent.append(float(loss))
  return discriminator, float(np.mean(recent))


def plot(path: str, discriminator, p_data, p_g, record: dict) -> None:
  """D vs D* and both densities (scaled to peak 1) on the grid widened by 1 std, as a PNG."""
  low, high = _span([p_data, p_g], GRID_STDS + 1.0)
  x = np.linspace(low, high, 1_024)
  density_data, density_g = p_data.pdf(x[:, None]), p_g.pdf(x[:, None])
  peak = max(density_data.max(), density_g.max())
  picture = plots.curves(
      x, [(density_data / peak, plots.GREEN, "p_data"), (density_g / peak, plots.RED, "p_g"),
          (optimal_discriminator(x, p_data, p_g), plots.BLACK, "D*"),
          (1.0 / (1.0 + np.exp(-_logits(discriminator, x))), plots.BLUE, "trained D")],
      title=(f"x in [{low:.2f}, {high:.2f}]; max|D-D*| {record['d_star_max_error']:.4f}; "
             f"JSD {record['jsd_estimate']:.4f} (D) vs {record['jsd_numeric']:.4f}"),
      y_range=(0.0, 1.05), width=640, height=360)
  images_lib.write_png(path, picture)


def run(out: str, steps: int = 4_000, batch_size: int = 2_048, learning_rate: float = 3e-3,
        hidden_units=(64, 64, 64), g_scale: float = 1.0, g_shift: float = 3.0, seed: int = 0,
        monte_carlo_samples: int = MONTE_CARLO_SAMPLES) -> dict:
  """Trains D against the fixed generator, measures it, writes the plot; returns the record."""
  start = time.perf_counter()
  p_data = toy_data.get("gaussian1d")
  p_g = generator_density(g_scale, g_shift)
  discriminator, d_loss = train_discriminator(p_data, g_scale, g_shift, steps, batch_size,
                                              learning_rate, hidden_units, seed)
  points = grid(p_data, p_g)
  trained = 1.0 / (1.0 + np.exp(-_logits(discriminator, points)))
  errors = np.abs(trained - optimal_discriminator(points, p_data, p_g))
  value = value_by_quadrature(discriminator, p_data, p_g)
  exact = jsd_numeric(p_data, p_g)
  estimate = (value + math.log(4.0)) / 2.0
  monte_carlo = (value_by_monte_carlo(discriminator, p_data, p_g, monte_carlo_samples, seed + 1)
                 + math.log(4.0)) / 2.0
  record = {
      "d_star_max_error": float(errors.max()),
      "d_star_max_error_at": float(points[int(np.argmax(errors))]),
      "jsd_estimate": estimate,
      "jsd_numeric": exact,
      "jsd_gap": exact - estimate,
      "jsd_estimate_monte_carlo": monte_carlo,
      "d_loss_final": d_loss,
      "d_loss_optimal": math.log(4.0) - 2.0 * exact,
      "grid": {"low": float(points[0]), "high": float(points[-1]), "points": GRID_POINTS},
      "p_data": "N(4, 0.5^2) (gaussian1d)",
      "p_g": f"N({g_shift:g}, {abs(g_scale):g}^2) (G(z) = {g_scale:g} z + {g_shift:g})",
      "steps": steps, "batch_size": batch_size, "learning_rate": learning_rate,
      "hidden_units": list(hidden_units), "seed": seed,
  }
  os.makedirs(out, exist_ok=True)
  record["plot"] = os.path.join(out, "theory.png")
  plot(record["plot"], discriminator, p_data, p_g, record)
  record["seconds"] = round(time.perf_counter() - start, 2)
  with open(os.path.join(out, "theory.json"), "w") as f:
    json.dump(record, f, indent=2, sort_keys=True)
  return record
