"""Sample-quality metrics over classifier activations: pure functions and their registry.

Every function takes numpy arrays of classifier outputs (features [N, D] of the penultimate
layer, or logits [N, K]) and returns plain Python floats. FID, IS and KID are computed by TF-GAN
(through `tfgan_app.common.tfgan_compat`); precision/recall, which TF-GAN lacks, is computed here.

`REGISTRY` maps the names users type (`--metrics=fid,is,kid,precision_recall`) to `Metric`s, so
the command line, the training callback and the tests all run the same code.
"""

import dataclasses
from typing import Callable, Dict, Optional

import numpy as np
import tensorflow as tf

from tfgan_app.common.tfgan_compat import tfgan

# Kynkäänniemi et al. 2019 use k = 3 nearest neighbours for the manifold radii.
DEFAULT_K = 3
# TF-GAN's KID block size: samples are split into ceil(N / 1024) blocks whose estimates are
# averaged; the spread over blocks gives `kid_std`.
KID_BLOCK_SIZE = 1024
# Rows of one distance block in the k-NN computations: 1000 x 10,000 float64 = 80 MB.
_DISTANCE_BLOCK_ROWS = 1000


def _matrix(values, name: str) -> np.ndarray:
  values = np.asarray(values, dtype=np.float64)
  if values.ndim != 2 or values.shape[0] < 2 or values.shape[1] < 1:
    raise ValueError(f"{name} must be [num_samples >= 2, dim >= 1], got shape "
                     f"{list(values.shape)}")
  if not np.all(np.isfinite(values)):
    raise ValueError(f"{name} holds NaN or Inf")
  return values


def _same_width(real: np.ndarray, generated: np.ndarray) -> None:
  if real.shape[1] != generated.shape[1]:
    raise ValueError(f"real and generated activations differ in width: {real.shape[1]} vs "
                     f"{generated.shape[1]}")


def frechet_distance(real_features, generated_features) -> float:
  """Fréchet distance between Gaussians fitted to two sets of features (FID; Heusel et al. 2017).

  FID = |mu_r - mu_g|^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2)), computed in float64 by TF-GAN's
  `frechet_classifier_distance_from_activations`.

  Args:
    real_features: [N_r, D] features of real images (N_r >= 2).
    generated_features: [N_g, D] features of generated images (N_g >= 2).

  Returns:
    The distance, >= 0 up to rounding; 0 for identical sets.

  Raises:
    ValueError: bad shapes or non-finite values.
  """
  real = _matrix(real_features, "real features")
  generated = _matrix(generated_features, "generated features")
  _same_width(real, generated)
  distance = tfgan.eval.frechet_classifier_distance_from_activations(
      tf.constant(real), tf.constant(generated))
  return float(distance)


def inception_score(generated_logits) -> float:
  """Classifier ("Inception") score exp(E_x KL(p(y|x) || p(y))) (Salimans et al. 2016).

  Computed by TF-GAN's `classifier_score_from_logits` over all samples at once (one split, not
  the ten splits of the original code, so the value does not depend on a split count). It lies
  in [1, K]: K when every prediction is confident and the classes are used evenly.

  Args:
    generated_logits: [N, K] classifier logits of generated images.

  Returns:
    The score.

  Raises:
    ValueError: bad shape or non-finite values.
  """
  logits = _matrix(generated_logits, "generated logits")
  return float(tfgan.eval.classifier_score_from_logits(tf.constant(logits)))


def kernel_distance(real_features, generated_features,
                    block_size: int = KID_BLOCK_SIZE) -> Dict[str, Optional[float]]:
  """Kernel distance, KID (Bińkowski et al. 2018): an unbiased MMD^2 with a cubic kernel.

  k(x, y) = (x.y / D + 1)^3, estimated by TF-GAN's
  `kernel_classifier_distance_and_std_from_activations` over blocks of at most `block_size`
  samples (which assumes both sets are in random order). Unbiased: about 0, possibly slightly
  negative, for two samples of one distribution.

  Args:
    real_features: [N_r, D] real features.
    generated_features: [N_g, D] generated features.
    block_size: the block size (larger: lower variance, quadratic cost).

  Returns:
    {"kid": estimate, "kid_std": standard error estimated from the blocks, None when all
    samples fit in one block}.

  Raises:
    ValueError: bad shapes or non-finite values.
  """
  real = _matrix(real_features, "real features")
  generated = _matrix(generated_features, "generated features")
  _same_width(real, generated)
  # TF-GAN needs tensors here (it calls .shape.assert_has_rank), not numpy arrays.
  kid, kid_std = tfgan.eval.kernel_classifier_distance_and_std_from_activations(
      tf.constant(real), tf.constant(generated), max_block_size=block_size)
  # One block (N <= block_size) leaves no spread to measure: TF-GAN gives NaN, we give None.
  kid_std = float(kid_std) if np.isfinite(float(kid_std)) else None
  return {"kid": float(kid), "kid_std": kid_std}


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """[len(a), len(b)] squared Euclidean distances, clipped at 0 against rounding."""
  squared = (np.sum(a * a, axis=1)[:, None] + np.sum(b * b, axis=1)[None, :]
             - 2.0 * a @ b.T)
  return np.maximum(squared, 0.0)


def knn_radii(features: np.ndarray, k: int = DEFAULT_K) -> np.ndarray:
  """Squared distance from each row to its k-th nearest other row: [N].

  Raises:
    ValueError: fewer than k + 1 rows.
  """
  if len(features) <= k:
    raise ValueError(f"k-NN radii with k={k} need more than {k} samples, got {len(features)}")
  radii = np.empty(len(features))
  for start in range(0, len(features), _DISTANCE_BLOCK_ROWS):
    block = _squared_distances(features[start:start + _DISTANCE_BLOCK_ROWS], features)
    # Index k, not k - 1: each row's nearest neighbour is itself at distance 0.
    radii[start:start + len(block)] = np.partition(block, k, axis=1)[:, k]
  return radii


def _fraction_inside(queries: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> float:
  """Fraction of `queries` within the ball of at least one centre (squared radii)."""
  inside = np.zeros(len(queries), dtype=bool)
  for start in range(0, len(queries), _DISTANCE_BLOCK_ROWS):
    block = _squared_distances(queries[start:start + _DISTANCE_BLOCK_ROWS], centres)
    inside[start:start + len(block)] = np.any(block <= radii[None, :], axis=1)
  return float(np.mean(inside))


def precision_recall(real_features, generated_features, k: int = DEFAULT_K) -> Dict[str, float]:
  """Improved precision and recall (Kynkäänniemi et al. 2019) on k-NN feature manifolds.

  Each sample's manifold ball reaches its k-th nearest neighbour in its own set. Precision is
  the fraction of generated samples inside the real manifold (the union of real balls): are
  the samples realistic? Recall is the fraction of real samples inside the generated manifold:
  does the generator cover the data? A point on a ball's boundary counts as inside.

  Args:
    real_features: [N_r, D] real features (N_r > k).
    generated_features: [N_g, D] generated features (N_g > k).
    k: neighbourhood size.

  Returns:
    {"precision": float in [0, 1], "recall": float in [0, 1]}.

  Raises:
    ValueError: bad shapes, non-finite values, or too few samples for k.
  """
  real = _matrix(real_features, "real features")
  generated = _matrix(generated_features, "generated features")
  _same_width(real, generated)
  if k < 1:
    raise ValueError(f"k must be >= 1, got {k}")
  return {"precision": _fraction_inside(generated, real, knn_radii(real, k)),
          "recall": _fraction_inside(real, generated, knn_radii(generated, k))}


@dataclasses.dataclass(frozen=True)
class Activations:
  """Classifier outputs of one set of images; a field is None when nothing needs it."""
  features: Optional[np.ndarray] = None  # [N, D]
  logits: Optional[np.ndarray] = None  # [N, K]


@dataclasses.dataclass(frozen=True)
class Metric:
  """A registered metric.

  compute(real, generated) -> {result key: float}; `real` is None for metrics that do not
  use real data. `needs` names the `Activations` fields it reads.
  """
  name: str
  compute: Callable[[Optional[Activations], Activations], Dict[str, float]]
  needs: tuple
  uses_real: bool
  description: str


REGISTRY: Dict[str, Metric] = {
    "fid": Metric("fid", lambda real, gen: {"fid": frechet_distance(real.features,
                                                                     gen.features)},
                  ("features",), True, "Fréchet distance of classifier features (lower: better)"),
    "is": Metric("is", lambda real, gen: {"is": inception_score(gen.logits)},
                 ("logits",), False, "classifier (Inception) score of logits (higher: better)"),
    "kid": Metric("kid", lambda real, gen: kernel_distance(real.features, gen.features),
                  ("features",), True, "kernel distance of classifier features (lower: better)"),
    "precision_recall": Metric(
        "precision_recall", lambda real, gen: precision_recall(real.features, gen.features),
        ("features",), True, "k-NN manifold precision and recall, k=3 (higher: better)"),
}


def parse_metric_names(text: str) -> tuple:
  """"fid, is" -> ("fid", "is"); order kept, duplicates dropped.

  Raises:
    ValueError: empty, or a name not in `REGISTRY`.
  """
  names = []
  for name in (part.strip().lower() for part in text.split(",")):
    if not name:
      continue
    if name not in REGISTRY:
      raise ValueError(f"unknown metric {name!r}; accepted: {', '.join(REGISTRY)}")
    if name not in names:
      names.append(name)
  if not names:
    raise ValueError(f"no metric given; accepted: {', '.join(REGISTRY)}")
  return tuple(names)


def needed_outputs(names) -> set:
  """The `Activations` fields that the metrics `names` read."""
  return {field for name in names for field in REGISTRY[name].needs}
