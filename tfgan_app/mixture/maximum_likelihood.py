"""The maximum-likelihood baseline: a Gaussian mixture fitted to the images by EM.

  python -m tfgan_app.train --flagfile=configs/gmm_mnist.cfg --workdir=runs/gmm_mnist

Before GANs, generative models of images were fitted by maximum likelihood: choose the density
p_theta that maximises sum_i log p_theta(x_i), which minimises KL(p_data || p_theta) (Goodfellow
et al. 2014 §2; Goodfellow 2016, "NIPS 2016 Tutorial: GANs", §2). `--architecture=gmm` fits the
simplest such model, a mixture of `--gmm_components` Gaussians with diagonal covariances
(`tfgan_app.models.gmm`), through the same entry point, workdir layout, export and metrics as the
GANs. KL(p_data || p_theta) punishes missing any data, not making implausible samples, so the
fit spreads its mass: its samples are blurred prototypes with per-pixel noise, and its FID is
far worse than a GAN's, although it has a likelihood and a GAN has none.

Data: the training split's images, flattened, in [-1, 1], dequantised once with noise drawn
from --seed: x = (pixel + u) / 127.5 - 1, u ~ U[0, 1). Without it, pixels that never vary
within a component (MNIST's black border) would let its variance shrink to 0 and the
likelihood grow without bound; with it the continuous NLL is an upper bound on the NLL of the
discrete pixels (Theis, van den Oord & Bethge 2016), and variances stay above the noise's
(1/127.5)^2 / 12. Variances are also floored at `MIN_VARIANCE`.

EM (Dempster, Laird & Rubin 1977), in float64 over chunks of the split: the E-step computes
each image's responsibilities r_nk = w_k N(x_n; mu_k, s_k) / p(x_n) and accumulates sum_n r_nk,
sum_n r_nk x_n, sum_n r_nk x_n^2; the M-step sets w_k, mu_k, s_k to the responsibility-weighted
frequencies, means and variances. No step decreases the likelihood. One training step is one
M-step followed by the E-step of the new parameters, so step s logs the NLL of the parameters
after s steps. Start: the means are `--gmm_components` distinct training images chosen by
--seed, every variance the data's per-pixel variance, equal weights.

The E-step's component log-densities use the expanded quadratic form (two matrix products
[N, D] x [D, K]) rather than TFP's broadcasting `log_prob`, which would hold [N, K, D] values
(9 GB for MNIST with K = 50); tests check that both agree. TFP's `MixtureSameFamily.log_prob`
gives the held-out NLL.

Logged (TensorBoard and log lines, every --log_every steps): `nll`, the NLL in nats per image
of the dequantised training pixels on the 0..256 scale; `bits_per_dim` = nll / (D ln 2); and
`test_nll`, `test_bits_per_dim` on the dataset's `test` split (up to 10,000 images) when it
has one and --split is not it.
"""

import math
from typing import Optional

import numpy as np
import tensorflow as tf

from tfgan_app.data import datasets as data
from tfgan_app.models import gmm as gmm_lib

# Variance floor in [-1, 1] units (sklearn's reg_covar is 1e-6 too): a guard for components
# that own a handful of images; dequantisation already keeps variances above 5e-6.
MIN_VARIANCE = 1e-6
# Images per chunk of the E-step: [10000, 784] float64 is 63 MB.
CHUNK_SIZE = 10_000
# Held-out images for test_nll.
MAX_TEST_IMAGES = 10_000
TEST_SPLIT = "test"
# Seed purposes of the dequantisation noise and of the initial means.
TRAIN_NOISE, TEST_NOISE, _INITIAL_MEANS = 1, 2, 3
# Below this total responsibility a component keeps its parameters (its mean would be 0 / 0).
_EMPTY = 1e-10
# 0..256 pixel scale per [-1, 1] unit: the density's change of scale per dimension.
_PIXEL_SCALE = 127.5


class MixtureRun:
  """What a GMM run trains and checkpoints, with the attributes that the training callbacks,
  the export and the evaluation use on a `gan.GAN`: `sampling_generator`, `latent_dim`,
  `step`, `seed`, `stop_training`."""

  def __init__(self, mixture: gmm_lib.GaussianMixture, seed: int):
    self.mixture = mixture
    self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    self.seed = tf.Variable(seed, dtype=tf.int64, trainable=False, name="seed")
    self.stop_training = False  # Set by preemption.StopOnSignal.

  @property
  def sampling_generator(self) -> gmm_lib.GaussianMixture:
    return self.mixture

  @property
  def latent_dim(self) -> int:
    return self.mixture.latent_dim

  def checkpoint_objects(self):
    """(required, optional) objects of the run's checkpoint (`runs.checkpoints`)."""
    return dict(gmm=self.mixture, step=self.step, seed=self.seed), {}


def build_run(config, image_shape, policy=None) -> MixtureRun:
  """The mixture of `config` (--gmm_components, --seed) for images of `image_shape`; EM
  computes in float64 whatever the precision `policy`."""
  del policy
  return MixtureRun(gmm_lib.build_gaussian_mixture(config.gmm_components, image_shape),
                    config.seed)


def run_spec(config, image_shape) -> dict:
  """The mixture's fields that decide its checkpoint's structure (run_spec.json)."""
  return {"architecture": config.architecture, "dataset": config.dataset,
          "image_shape": list(image_shape), "latent_dim": config.latent_dim,
          "gmm_components": config.gmm_components}


def dequantized_pixels(images: np.ndarray, seed: int, purpose: int) -> tf.Tensor:
  """uint8 images [N, H, W, C] -> float32 [N, D] in [-1, 1], with U[0, 1) pixel noise from
  (seed, purpose)."""
  pixels = images.reshape(len(images), -1).astype(np.float32)
  noise = np.random.default_rng([seed, purpose]).random(pixels.shape, dtype=np.float32)
  return tf.constant((pixels + noise) / _PIXEL_SCALE - 1.0)


def load_pixels(info: data.ImageDatasetInfo, data_dir: Optional[str], seed: int, purpose: int,
                limit: Optional[int] = None) -> tf.Tensor:
  """A split's images as `dequantized_pixels`, in TFDS's file order (at most `limit`)."""
  images = data.load_uint8_images(info, data_dir, cache=False)
  if limit is not None:
    images = images.take(limit)
  batches = [batch.numpy() for batch in images.batch(CHUNK_SIZE)]
  return dequantized_pixels(np.concatenate(batches), seed, purpose)


def component_log_densities(pixels, means, variances) -> tf.Tensor:
  """log N(x_n; mu_k, diag(variances_k)) for every image n and component k: [N, K].

  sum_d (x_d - mu_d)^2 / v_d expands to x^2 . (1/v) - 2 x . (mu/v) + mu^2 . (1/v): two matrix
  products instead of an [N, K, D] tensor. Pass centred x and mu (the same shift for both) so
  that the three terms stay small and do not cancel.
  """
  precisions = 1.0 / variances  # [K, D]
  quadratic = (tf.matmul(pixels * pixels, precisions, transpose_b=True)
               - 2.0 * tf.matmul(pixels, means * precisions, transpose_b=True)
               + tf.reduce_sum(means * means * precisions, axis=1))  # [N, K]
  num_pixels = tf.cast(tf.shape(pixels)[1], pixels.dtype)
  log_normaliser = (tf.reduce_sum(tf.math.log(variances), axis=1)
                    + num_pixels * math.log(2.0 * math.pi))  # [K]
  return -0.5 * (quadratic + log_normaliser)


@tf.function
def expectation(pixels, center, logits, means, log_variances):
  """The E-step over all of `pixels` [N, D], in float64 chunks.

  Returns:
    (counts [K], sums [K, D], squares [K, D], log_likelihood): the sums over images of r_nk,
    r_nk (x_n - center), r_nk (x_n - center)^2, and of log p(x_n), all float64.
  """
  log_weights = tf.nn.log_softmax(tf.cast(logits, tf.float64))  # [K]
  centred_means = tf.cast(means, tf.float64) - center  # [K, D]
  variances = tf.exp(tf.cast(log_variances, tf.float64))  # [K, D]
  num_components, num_pixels = centred_means.shape
  counts = tf.zeros([num_components], tf.float64)
  sums = tf.zeros([num_components, num_pixels], tf.float64)
  squares = tf.zeros([num_components, num_pixels], tf.float64)
  log_likelihood = tf.constant(0.0, tf.float64)
  num_images = tf.shape(pixels)[0]
  for start in tf.range(0, num_images, CHUNK_SIZE):
    chunk = tf.cast(pixels[start:start + CHUNK_SIZE], tf.float64) - center  # [n, D]
    joint = component_log_densities(chunk, centred_means, variances) + log_weights  # [n, K]
    marginal = tf.reduce_logsumexp(joint, axis=1, keepdims=True)  # [n, 1]: log p(x_n)
    responsibilities = tf.exp(joint - marginal)  # [n, K]
    counts += tf.reduce_sum(responsibilities, axis=0)
    sums += tf.matmul(responsibilities, chunk, transpose_a=True)
    squares += tf.matmul(responsibilities, chunk * chunk, transpose_a=True)
    log_likelihood += tf.reduce_sum(marginal)
  return counts, sums, squares, log_likelihood


@tf.function
def maximisation(counts, sums, squares, center, num_images, logits, means, log_variances):
  """The M-step: new (logits [K], means [K, D], log_variances [K, D]), float32."""
  num_images = tf.cast(num_images, tf.float64)
  safe_counts = tf.maximum(counts, _EMPTY)[:, None]  # [K, 1]
  centred_means = sums / safe_counts
  variances = tf.maximum(squares / safe_counts - centred_means * centred_means, MIN_VARIANCE)
  empty = (counts < _EMPTY)[:, None]
  new_means = tf.where(empty, means, tf.cast(centred_means + center, tf.float32))
  new_log_variances = tf.where(empty, log_variances, tf.cast(tf.math.log(variances), tf.float32))
  new_logits = tf.cast(tf.math.log(tf.maximum(counts, _EMPTY) / num_images), tf.float32)
  return new_logits, new_means, new_log_variances


def initialize(mixture: gmm_lib.GaussianMixture, pixels: tf.Tensor, seed: int) -> None:
  """Means: distinct training images chosen by `seed`; variances: the data's; equal weights."""
  num_images = int(pixels.shape[0])
  chosen = np.random.default_rng([seed, _INITIAL_MEANS]).choice(
      num_images, mixture.num_components, replace=False)
  mixture.means.assign(tf.gather(pixels, np.sort(chosen)))
  variances = tf.math.reduce_variance(tf.cast(pixels, tf.float64), axis=0) + MIN_VARIANCE
  mixture.log_variances.assign(tf.cast(tf.tile(tf.math.log(variances)[None],
                                               [mixture.num_components, 1]), tf.float32))
  mixture.logits.assign(tf.zeros_like(mixture.logits))


def nll_per_image(log_likelihood_sum, num_images, num_pixels) -> float:
  """-log p per image in nats on the 0..256 pixel scale, from a sum of [-1, 1]-scale log p."""
  return -float(log_likelihood_sum) / num_images + num_pixels * math.log(_PIXEL_SCALE)


def bits_per_dim(nll: float, num_pixels: int) -> float:
  return nll / (num_pixels * math.log(2.0))


def held_out_nll(mixture: gmm_lib.GaussianMixture, pixels: tf.Tensor,
                 batch_size: int = 1000) -> float:
  """`nll_per_image` of `pixels` [N, D] under TFP's `MixtureSameFamily.log_prob`."""
  distribution = mixture.distribution()
  total = 0.0
  for start in range(0, int(pixels.shape[0]), batch_size):
    total += float(tf.reduce_sum(distribution.log_prob(pixels[start:start + batch_size])))
  return nll_per_image(total, int(pixels.shape[0]), mixture.num_pixels)


def fit(run: MixtureRun, train_pixels: tf.Tensor, train_steps: int, log_every: int,
        callbacks=(), test_pixels: Optional[tf.Tensor] = None) -> dict:
  """Runs EM steps until `run.step` reaches `train_steps` or a callback stops the run.

  A run at step 0 is initialised first (`initialize`); a restored one continues from its
  parameters, exactly as the uninterrupted run would (EM is deterministic).

  Args:
    run: the mixture, its step and seed (restored from a checkpoint or fresh).
    train_pixels: float32 [N, D] (`load_pixels`).
    train_steps: total EM steps of the run.
    log_every: steps between held-out evaluations (also at the last step).
    callbacks: Keras callbacks (`on_train_begin`, `on_train_batch_end(step, logs)`,
      `on_train_end`), given `run` as their model.
    test_pixels: float32 [M, D] held-out images, or None.

  Returns:
    The last step's logs: nll, bits_per_dim (and test_nll, test_bits_per_dim with test data).
  """
  mixture = run.mixture
  num_images, num_pixels = (int(d) for d in train_pixels.shape)
  if run.step.numpy() == 0:
    initialize(mixture, train_pixels, int(run.seed.numpy()))
  center = tf.reduce_mean(tf.cast(train_pixels, tf.float64), axis=0)  # [D]
  statistics = expectation(train_pixels, center, mixture.logits, mixture.means,
                           mixture.log_variances)
  for callback in callbacks:
    callback.set_model(run)
    callback.on_train_begin()
  logs = {}
  while int(run.step.numpy()) < train_steps and not run.stop_training:
    counts, sums, squares, _ = statistics
    for variable, value in zip(
        (mixture.logits, mixture.means, mixture.log_variances),
        maximisation(counts, sums, squares, center, num_images, mixture.logits, mixture.means,
                     mixture.log_variances)):
      variable.assign(value)
    statistics = expectation(train_pixels, center, mixture.logits, mixture.means,
                             mixture.log_variances)
    run.step.assign_add(1)
    step = int(run.step.numpy())
    nll = nll_per_image(statistics[3], num_images, num_pixels)
    logs = {"nll": nll, "bits_per_dim": bits_per_dim(nll, num_pixels)}
    if test_pixels is not None and (step % log_every == 0 or step == train_steps):
      test_nll = held_out_nll(mixture, test_pixels)
      logs.update(test_nll=test_nll, test_bits_per_dim=bits_per_dim(test_nll, num_pixels))
    for callback in callbacks:
      callback.on_train_batch_end(step - 1, logs)
  for callback in callbacks:
    callback.on_train_end(logs)
  return logs
