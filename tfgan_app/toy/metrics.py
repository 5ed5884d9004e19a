r"""Metrics of generated points against a toy distribution's known density, and their command.

  python -m tfgan_app.toy_metrics --saved_model=runs/ring8/export/ring8/<step> \
      [--num_samples=10000] [--seed=0]
  # prints a table and, as the last line, one JSON object; a few seconds

Metrics (each over N generated points x_1..x_N; sigma is the distribution's standard deviation):
  modes_covered           number of modes k with at least 1% of the points within
                          3 sigma (Euclidean distance) of centre c_k.
  high_quality_fraction   fraction of points within 3 sigma of some centre.
  kl                      KL(sample histogram || true histogram) in nats. The histogram grid is
                          the centres' bounding box widened by 6 sigma per side, in square bins
                          of side `histogram_bin_width` (2 sigma in 2-D, sigma/2 in 1-D), plus
                          one bin for everything outside the box. The true bin probabilities
                          are exact (normal CDFs), mixed with 0.1% of uniform mass over the B
                          bins, (1 - 0.001) q + 0.001 / B, so that points where the truth has no
                          mass cost a finite amount; the sample histogram is not smoothed
                          (0 log 0 = 0). Exact samples do not score 0 but about
                          (occupied bins) / (2N): at N = 10,000, 0.008 for ring8, 0.020 for
                          grid25, 0.001 for gaussian1d; at N = 100,000 all below 0.004.

The generator comes from an export of a toy run (`serving_default`: `latents` float32
[N, latent_dim] -> `samples` float32 [N, D]); the distribution is the `dataset` its metadata
records, or --dataset. Latents are numpy `default_rng(--seed).standard_normal`, float32.
Errors: one line on stderr, exit status 1 (2 for a bad command line).
"""

import os
from typing import Optional

import numpy as np

from tfgan_app.exporting import loader
from tfgan_app.toy import distributions as toy_data

MODE_RADIUS_STDS = 3.0
MIN_MODE_FRACTION = 0.01
HISTOGRAM_MARGIN_STDS = 6.0
TRUTH_SMOOTHING = 1e-3  # Fraction of uniform mass mixed into the true histogram.
DEFAULT_NUM_SAMPLES = loader.DEFAULT_NUM_SAMPLES
GENERATION_BATCH_SIZE = 5_000


class ToyMetricsError(RuntimeError):
  """The points cannot be measured (wrong shape, not a toy export, unknown distribution)."""


def _check(points: np.ndarray, distribution: toy_data.GaussianMixture) -> np.ndarray:
  points = np.asarray(points, np.float64)
  if points.ndim != 2 or points.shape[1] != distribution.dim or not len(points):
    raise ToyMetricsError(f"expected points [N, {distribution.dim}] for {distribution.name}, "
                          f"got shape {points.shape}")
  return points


def mode_distances(points: np.ndarray, distribution: toy_data.GaussianMixture) -> np.ndarray:
  """Euclidean distance of every point to every centre, [N, K]."""
  points = _check(points, distribution)
  return np.linalg.norm(points[:, None, :] - distribution.centres_array[None], axis=-1)


def mode_fractions(points: np.ndarray, distribution: toy_data.GaussianMixture) -> np.ndarray:
  """Fraction of the points within 3 sigma of each centre, [K]."""
  near = mode_distances(points, distribution) <= MODE_RADIUS_STDS * distribution.std
  return near.mean(axis=0)


def modes_covered(points: np.ndarray, distribution: toy_data.GaussianMixture) -> int:
  """Modes with at least 1% of the points within 3 sigma of their centre."""
  return int(np.sum(mode_fractions(points, distribution) >= MIN_MODE_FRACTION))


def high_quality_fraction(points: np.ndarray, distribution: toy_data.GaussianMixture) -> float:
  """Fraction of the points within 3 sigma of the nearest centre."""
  nearest = mode_distances(points, distribution).min(axis=1)
  return float(np.mean(nearest <= MODE_RADIUS_STDS * distribution.std))


def histogram_edges(distribution: toy_data.GaussianMixture):
  """The KL histogram's bin edges per coordinate (see the module docstring)."""
  low, high = distribution.bounding_box(HISTOGRAM_MARGIN_STDS)
  width = distribution.histogram_bin_width
  return [low_d + width * np.arange(int(np.ceil((high_d - low_d) / width)) + 1)
          for low_d, high_d in zip(low, high)]


def histogram_kl(points: np.ndarray, distribution: toy_data.GaussianMixture) -> float:
  """KL(sample histogram || true histogram) in nats (see the module docstring)."""
  points = _check(points, distribution)
  edges = histogram_edges(distribution)
  counts, _ = np.histogramdd(points, bins=edges)
  inside = counts.sum()
  sample = np.append(counts.ravel(), len(points) - inside) / len(points)
  truth = distribution.box_probabilities(edges).ravel()
  truth = np.append(truth, max(0.0, 1.0 - truth.sum()))
  truth = (1.0 - TRUTH_SMOOTHING) * truth + TRUTH_SMOOTHING / truth.size
  used = sample > 0
  return float(np.sum(sample[used] * np.log(sample[used] / truth[used])))


def measure(points: np.ndarray, distribution: toy_data.GaussianMixture) -> dict:
  """All the metrics of `points` against `distribution`, as a JSON-ready dict."""
  points = _check(points, distribution)
  return {"dataset": distribution.name,
          "modes_covered": modes_covered(points, distribution),
          "num_modes": distribution.num_modes,
          "high_quality_fraction": high_quality_fraction(points, distribution),
          "kl": histogram_kl(points, distribution),
          "num_samples": int(len(points))}


# ---------------------------------------------------------------------------------------------
# Exports.


def load_point_generator(saved_model: str) -> loader.LoadedExport:
  """Loads a toy export (`root` keeps the variables alive: the function does not).

  Raises:
    ToyMetricsError: not a SavedModel, or no `latents` -> `samples` serving signature.
  """
  try:
    return loader.load_export(saved_model, loader.POINTS)
  except loader.ExportLoadError as error:
    raise ToyMetricsError(str(error)) from error


def measure_export(saved_model: str, num_samples: int = DEFAULT_NUM_SAMPLES, seed: int = 0,
                   dataset: Optional[str] = None) -> dict:
  """Generates `num_samples` points with a toy export and measures them.

  A class-conditional export is asked for class i mod num_classes for sample i (the
  distribution as a whole is what is measured).

  Returns:
    `measure(...)` plus `saved_model`, `step` and `seed`.

  Raises:
    ToyMetricsError: see `load_point_generator`; no dataset known; unknown dataset.
  """
  export = load_point_generator(saved_model)
  latent_dim, metadata = export.latent_dim, export.metadata
  name = dataset or metadata.get("dataset")
  if not name:
    raise ToyMetricsError(f"{saved_model} does not record its dataset; pass --dataset")
  try:
    distribution = toy_data.get(name)
  except ValueError as error:
    raise ToyMetricsError(str(error)) from error
  latents = np.random.default_rng(seed).standard_normal(
      (num_samples, latent_dim)).astype(np.float32)
  labels = (np.arange(num_samples) % export.num_classes).astype(np.int32) \
      if export.num_classes else None
  points = np.concatenate([
      outputs.numpy() for outputs in loader.batches(
          export.generate, latents, loader.request_batch_size(GENERATION_BATCH_SIZE, metadata),
          labels=labels)])
  del export  # Kept alive until here: the signature function does not hold the variables.
  record = measure(points, distribution)
  record.update(saved_model=os.path.abspath(saved_model), step=metadata.get("step"), seed=seed)
  return record


def format_table(record: dict) -> str:
  rows = [("dataset", record["dataset"]),
          ("modes covered", f"{record['modes_covered']} / {record['num_modes']}"),
          ("high-quality fraction", f"{record['high_quality_fraction']:.4f}"),
          ("KL(samples || truth)", f"{record['kl']:.4f} nats"),
          ("samples", str(record["num_samples"]))]
  width = max(len(label) for label, _ in rows)
  return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)
