"""Toy distributions with known densities: mixtures of isotropic Gaussians in 1-D and 2-D.

  ring8       8 Gaussians, std 0.02, centres evenly spaced on the circle of radius 2, the first
              at (2, 0) (the mode-collapse benchmark of Metz et al. 2017, "Unrolled GANs").
  grid25      25 Gaussians, std 0.05, centres on the grid {-4, -2, 0, 2, 4}^2.
  gaussian1d  one Gaussian N(4, 0.5^2) in 1-D (the target of the classic 1-D GAN demos): the
              generator starts near 0 and must move its mass there.

All components have equal weight. Each distribution samples in numpy (for metrics and tests) and
with TensorFlow's stateless RNG (for training), and gives its density and the exact probability
of any axis-aligned box (for histogram KL). `make_train_dataset` is the training stream: a pure
function of (seed, step), like `data.make_train_dataset` for images, so a resumed run draws
exactly the batches the uninterrupted run would have drawn.
"""

import dataclasses
import math
from typing import Sequence, Tuple

import numpy as np
from scipy import special
import tensorflow as tf

# Steps the stream can run for; effectively unbounded.
_MAX_STEPS = 1 << 62
# Folded into the (seed, step) key of the data, so that real points never reuse the random
# numbers of the latents, which gan.latent_seed draws from (seed, step) folded with purposes
# 0..d_steps-1 and 2**20.
_DATA_PURPOSE = 1 << 40


@dataclasses.dataclass(frozen=True)
class GaussianMixture:
  """An equal-weight mixture of isotropic Gaussians with a common standard deviation.

  Attributes:
    name: the --dataset name.
    centres: K centres of dimension D (tuples, so the dataclass stays hashable).
    std: the standard deviation of every component, per coordinate.
    histogram_bin_width: bin side of the histograms behind the KL metric (toy_metrics).
  """
  name: str
  centres: Tuple[Tuple[float, ...], ...]
  std: float
  histogram_bin_width: float

  @property
  def centres_array(self) -> np.ndarray:
    return np.asarray(self.centres, np.float64)  # [K, D]

  @property
  def num_modes(self) -> int:
    return len(self.centres)

  @property
  def dim(self) -> int:
    return len(self.centres[0])

  @property
  def sample_shape(self) -> Tuple[int]:
    return (self.dim,)

  def sample(self, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """float32 [num_samples, D] drawn with a numpy Generator."""
    modes = rng.integers(0, self.num_modes, size=num_samples)
    noise = rng.standard_normal((num_samples, self.dim))
    return (self.centres_array[modes] + self.std * noise).astype(np.float32)

  def sample_tf(self, num_samples: int, seed: tf.Tensor) -> tf.Tensor:
    """float32 [num_samples, D] from TensorFlow's stateless RNG with `seed` (shape [2])."""
    mode_seed = tf.random.experimental.stateless_fold_in(seed, 0)
    noise_seed = tf.random.experimental.stateless_fold_in(seed, 1)
    modes = tf.random.stateless_uniform([num_samples], seed=mode_seed, minval=0,
                                        maxval=self.num_modes, dtype=tf.int32)
    noise = tf.random.stateless_normal([num_samples, self.dim], seed=noise_seed)
    centres = tf.constant(self.centres_array, tf.float32)
    return tf.gather(centres, modes) + self.std * noise  # [N, D]

  def log_pdf(self, points: np.ndarray) -> np.ndarray:
    """Log density at float [N, D] points, [N] float64."""
    points = np.asarray(points, np.float64).reshape(-1, self.dim)
    squared = np.sum((points[:, None, :] - self.centres_array[None]) ** 2, axis=-1)  # [N, K]
    log_component = (-0.5 * squared / self.std ** 2
                     - self.dim * math.log(self.std * math.sqrt(2.0 * math.pi)))
    return special.logsumexp(log_component, axis=1) - math.log(self.num_modes)

  def pdf(self, points: np.ndarray) -> np.ndarray:
    """Density at float [N, D] points, [N] float64."""
    return np.exp(self.log_pdf(points))

  def box_probabilities(self, edges: Sequence[np.ndarray]) -> np.ndarray:
    """Exact probability of each cell of a histogram grid.

    An isotropic Gaussian factorises over coordinates, so a cell's mass is a product of
    differences of the normal CDF per coordinate, averaged over the components.

    Args:
      edges: D increasing arrays of bin edges, one per coordinate (as numpy.histogramdd).

    Returns:
      float64 [bins_1, ..., bins_D], summing to the mass inside the grid (<= 1).
    """
    if len(edges) != self.dim:
      raise ValueError(f"{self.name} is {self.dim}-D; got edges for {len(edges)} coordinates")
    total = 0.0
    for centre in self.centres_array:
      cell = np.ones(())
      for axis, axis_edges in enumerate(edges):
        cdf = special.ndtr((np.asarray(axis_edges, np.float64) - centre[axis]) / self.std)
        cell = np.multiply.outer(cell, np.diff(cdf))
      total = total + cell
    return total / self.num_modes

  def bounding_box(self, margin_stds: float) -> Tuple[np.ndarray, np.ndarray]:
    """(low [D], high [D]): the centres' bounding box widened by `margin_stds` std."""
    centres = self.centres_array
    return (centres.min(axis=0) - margin_stds * self.std,
            centres.max(axis=0) + margin_stds * self.std)


def _ring(num_modes: int, radius: float):
  angles = 2.0 * np.pi * np.arange(num_modes) / num_modes
  return tuple((float(radius * np.cos(a)), float(radius * np.sin(a))) for a in angles)


def _grid(values):
  return tuple((float(x), float(y)) for x in values for y in values)


# Histogram bins: 2 std wide in 2-D (about 9 bins carry each mode's mass, few enough that 10,000
# samples fill them: the KL of exact samples stays near 0), std / 2 in 1-D (24 bins over +-6 std).
DISTRIBUTIONS = {
    "ring8": GaussianMixture("ring8", _ring(8, 2.0), std=0.02, histogram_bin_width=0.04),
    "grid25": GaussianMixture("grid25", _grid((-4.0, -2.0, 0.0, 2.0, 4.0)), std=0.05,
                              histogram_bin_width=0.1),
    "gaussian1d": GaussianMixture("gaussian1d", ((4.0,),), std=0.5, histogram_bin_width=0.25),
}


def is_toy(name: str) -> bool:
  return name in DISTRIBUTIONS


def get(name: str) -> GaussianMixture:
  """The distribution called `name`; ValueError naming the accepted ones otherwise."""
  try:
    return DISTRIBUTIONS[name]
  except KeyError:
    raise ValueError(f"unknown toy distribution {name!r}; accepted: "
                     f"{', '.join(DISTRIBUTIONS)}") from None


def batch_seed(seed, step, index) -> tf.Tensor:
  """The stateless seed pair of real batch `index` of training step `step`."""
  key = tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])
  key = tf.random.experimental.stateless_fold_in(key, tf.constant(_DATA_PURPOSE, tf.int64))
  return tf.random.experimental.stateless_fold_in(key, tf.cast(index, tf.int64))


def make_train_dataset(distribution: GaussianMixture, batch_size: int, d_steps: int = 1,
                       seed: int = 0, start_step: int = 0) -> tf.data.Dataset:
  """The training stream from `start_step` on: fresh samples every step.

  Args:
    distribution: what to sample.
    batch_size: global batch size.
    d_steps: discriminator updates per training step; each gets its own batch.
    seed: data seed.
    start_step: training step of the first element (resume).

  Returns:
    A dataset whose element s is a tuple of `d_steps` float32 batches [batch_size, D], batch i
    drawn from the stateless seed `batch_seed(seed, start_step + s, i)`.
  """

  def batches(step):
    return tuple(distribution.sample_tf(batch_size, batch_seed(seed, step, index))
                 for index in range(d_steps))

  stream = tf.data.Dataset.range(start_step, _MAX_STEPS)
  stream = stream.map(batches, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  options = tf.data.Options()
  options.deterministic = True
  # As for images (data.py): every worker reads the whole stream and keeps its share of each
  # global batch.
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  return stream.with_options(options).prefetch(tf.data.AUTOTUNE)
