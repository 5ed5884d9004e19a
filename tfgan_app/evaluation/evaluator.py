r"""Measures a generator: FID, IS, KID and precision/recall through TF-GAN, with a fixed protocol.

  python -m tfgan_app.evaluate --saved_model=runs/dcgan/export/dcgan/2000 \
      --classifier=/work/classifiers/mnist --metrics=fid,is,kid
  python -m tfgan_app.evaluate --workdir=runs/dcgan      # newest checkpoint, EMA generator
  # 10,000 samples of a 28x28 DCGAN on 2 busy CPU cores: about 22 s wall, 13 s once the real
  # statistics are cached. A 40-step generator scores FID ~408, a 3000-step one ~46-66.

Metrics (`--metrics`, registry in `tfgan_app.evaluation.metrics`): `fid` (Fréchet distance of
classifier features), `is` (classifier score of logits), `kid` (kernel distance of features, with
its standard error `kid_std`), `precision_recall` (Kynkäänniemi et al. 2019, k = 3).

Classifier (`--classifier`): a directory written by `python -m tfgan_app.classifier` (its
`features` signature feeds FID/KID/precision-recall, its `logits` IS), or `inception`, TF-GAN's
Inception v3 (`https://tfhub.dev/tensorflow/tfgan/eval/inception/1`, resolved by tensorflow_hub,
which honours TFHUB_CACHE_DIR), or a local directory holding that module. Default per dataset:
$TFGAN_APP_<DATASET>_CLASSIFIER (e.g. TFGAN_APP_MNIST_CLASSIFIER,
TFGAN_APP_FASHION_MNIST_CLASSIFIER) for grayscale datasets, `inception` for RGB ones.

Protocol: latents are numpy `default_rng(--seed).standard_normal`; the real images are the
first `num_real = min(--num_samples, split size)` images of `--split` (default test) in TFDS's
file order, centre-cropped and area-resized to the generator's size when the sizes differ.
Real activations are cached per (dataset, split, image size, classifier content hash,
num_real) under --cache_dir (default $TFGAN_APP_CACHE_DIR or ~/.cache/tfgan_app).

Output: a table, then as the last stdout line one JSON object with `fid`, `is`, `kid` (null
when not requested), the other requested values and the protocol; with --workdir it is also
appended to `<workdir>/metrics.jsonl`. Errors: one line on stderr, exit status 1 (2 for a bad
command line).

--dataset overrides the dataset recorded in the export or run.
"""

import dataclasses
import datetime
import os
import sys
import time
from typing import Callable, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfgan_app.common import atomic
from tfgan_app.data import datasets as data
from tfgan_app.evaluation import metrics as metrics_lib
# Re-exported: the evaluator's users reach the classifiers and the protocol through it.
from tfgan_app.evaluation.classifiers import (  # pylint: disable=g-multiple-import,unused-import
    DomainClassifier, InceptionClassifier, content_sha256, default_classifier,
    load_evaluation_classifier)
from tfgan_app.evaluation.protocol import (  # pylint: disable=g-multiple-import,unused-import
    CACHE_ENV, DEFAULT_METRICS, DEFAULT_NUM_SAMPLES, DEFAULT_SPLIT, GENERATION_BATCH_SIZE,
    INCEPTION, INCEPTION_HANDLE, INCEPTION_SIZE, LATENT_SAMPLING, METRICS_FILE, REQUIRED_KEYS,
    _CACHE_VERSION, EvaluationError, append_record, format_table)
from tfgan_app.exporting import contract
from tfgan_app.exporting import loader
from tfgan_app.runs import restore
from tfgan_app.runs import workdir as workdir_lib


# ---------------------------------------------------------------------------------------------
# Real-data statistics.


@dataclasses.dataclass(frozen=True)
class RealStats:
  """Classifier activations of real images and how they were obtained (part of the protocol)."""
  activations: metrics_lib.Activations
  dataset: str
  split: str
  num_real: int
  image_shape: tuple
  classifier_sha256: str
  resize: str
  cache_path: Optional[str] = None
  from_cache: bool = False


def default_cache_dir() -> str:
  return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache",
                                                   "tfgan_app")


def _cache_path(cache_dir, dataset, split, image_shape, classifier_sha256, num_real) -> str:
  safe_split = "".join(c if c.isalnum() else "_" for c in split)
  name = (f"real-{dataset}-{safe_split}-{'x'.join(map(str, image_shape))}-"
          f"{classifier_sha256[:16]}-{num_real}-v{_CACHE_VERSION}.npz")
  return os.path.join(cache_dir, "real_stats", name)


def real_statistics(classifier, dataset: str, split: str, image_shape: Sequence[int],
                    num_real: int, data_dir: Optional[str] = None,
                    cache_dir: Optional[str] = None) -> RealStats:
  """Features and logits of the first `num_real` images of a split, cached on disk.

  Args:
    classifier: a `DomainClassifier` or `InceptionClassifier`.
    dataset: TFDS dataset name.
    split: TFDS split (slices such as test[:50%] work).
    image_shape: [H, W, C] of the generator's images; real images are centre-cropped and
      area-resized to it when the dataset's native size differs.
    num_real: wanted number of real images; fewer if the split is smaller.
    data_dir: TFDS data directory (None: TFDS's default, which honours $TFDS_DATA_DIR).
    cache_dir: cache directory; None: `default_cache_dir()`; "" disables the cache.

  Raises:
    EvaluationError: the dataset or split is unavailable, or its images do not fit.
  """
  image_shape = tuple(int(d) for d in image_shape)
  try:
    # A folder's images are converted to the generator's channels; a TFDS dataset's must match.
    channels = image_shape[2] if data.is_folder(dataset) else None
    info = data.prepare(dataset, split, data_dir, image_size=image_shape[0], download=False,
                        channels=channels)
  except data.DatasetError as error:
    raise EvaluationError(f"real data: {error}") from error
  if info.image_shape != image_shape:
    raise EvaluationError(f"the generator makes {'x'.join(map(str, image_shape))} images but "
                          f"{dataset} gives {'x'.join(map(str, info.image_shape))} at that size "
                          "(channels differ); pass the generator's own --dataset")
  num_real = min(int(num_real), int(info.num_examples))
  if num_real < 2:
    raise EvaluationError(f"split {split!r} of {dataset} has {info.num_examples} images; need 2+")
  resize = ("none" if tuple(info.native_shape) == image_shape
            else f"centre crop, area resize to {image_shape[0]}x{image_shape[1]}")
  if classifier.resize != "none":
    resize = f"{resize}; classifier: {classifier.resize}"
  cache_dir = default_cache_dir() if cache_dir is None else cache_dir
  path = (_cache_path(cache_dir, data.cache_name(info), split, image_shape, classifier.sha256,
                     num_real)
          if cache_dir else None)
  common = dict(dataset=dataset, split=split, num_real=num_real, image_shape=image_shape,
                classifier_sha256=classifier.sha256, resize=resize, cache_path=path)
  if path and os.path.isfile(path):
    try:
      with np.load(path) as stored:
        activations = metrics_lib.Activations(features=stored["features"],
                                              logits=stored["logits"])
      if len(activations.features) == num_real:
        return RealStats(activations=activations, from_cache=True, **common)
    except (OSError, KeyError, ValueError):
      pass  # A damaged cache entry is recomputed and overwritten.
  images = data.load_uint8_images(info, data_dir, cache=False).take(num_real)
  features, logits = [], []
  for batch in images.batch(GENERATION_BATCH_SIZE):
    outputs = classifier.activations(data.to_unit_range(batch).numpy(), ("features", "logits"))
    features.append(outputs.features)
    logits.append(outputs.logits)
  activations = metrics_lib.Activations(features=np.concatenate(features),
                                        logits=np.concatenate(logits))
  if path:
    try:
      os.makedirs(os.path.dirname(path), exist_ok=True)
      with atomic.replacing(path, suffix=f".tmp-{os.getpid()}.npz") as staging:
        np.savez(staging, features=activations.features, logits=activations.logits)
    except OSError as error:  # A read-only cache costs time, not the result.
      print(f"warning: cannot write the real-data cache {path}: {error.strerror}",
            file=sys.stderr)
  return RealStats(activations=activations, **common)


# ---------------------------------------------------------------------------------------------
# Generated samples and the metrics.


def generated_activations(generate_fn: Callable, latent_dim: int, classifier, needs,
                          num_samples: int, seed: int,
                          batch_size: int = GENERATION_BATCH_SIZE) -> tuple:
  """Samples `num_samples` images and runs the classifier on them.

  Args:
    generate_fn: float32 latents [B, latent_dim] -> images [B, H, W, C], either uint8 in
      [0, 255] or float in [-1, 1].
    latent_dim, classifier, needs, num_samples, seed, batch_size: as in `evaluate_generator`.

  Returns:
    (`metrics.Activations`, image_shape (H, W, C)).

  Raises:
    EvaluationError: images the classifier cannot take.
  """
  latents = np.random.default_rng(seed).standard_normal((num_samples, latent_dim),
                                                        dtype=np.float32)
  features, logits, image_shape = [], [], None
  for images in loader.batches(generate_fn, latents, batch_size, convert=tf.constant):
    # images: [B, H, W, C]
    if image_shape is None:
      image_shape = tuple(int(d) for d in images.shape[1:])
      classifier.check_image_shape(image_shape)
    images = data.to_unit_range(images) if images.dtype == tf.uint8 else images
    outputs = classifier.activations(keras.ops.convert_to_numpy(images).astype(np.float32),
                                     needs)
    features.append(outputs.features)
    logits.append(outputs.logits)
  return (metrics_lib.Activations(
      features=np.concatenate(features) if "features" in needs else None,
      logits=np.concatenate(logits) if "logits" in needs else None), image_shape)


def evaluate_generator(generate_fn: Callable, latent_dim: int, real_stats: RealStats,
                       classifier, metrics: Sequence[str] = DEFAULT_METRICS,
                       num_samples: int = DEFAULT_NUM_SAMPLES, seed: int = 0,
                       batch_size: int = GENERATION_BATCH_SIZE) -> dict:
  """Runs the registered `metrics` on `num_samples` generated images.

  Args:
    generate_fn: float32 latents [B, latent_dim] -> images [B, H, W, C] (uint8 in [0, 255] or
      float in [-1, 1]); e.g. `lambda z: generator(z, training=False)` or an export's
      `serving_default` wrapped to return its `images`.
    latent_dim: the generator's latent size.
    real_stats: `real_statistics(...)` for the same classifier and image shape.
    classifier: a `DomainClassifier` / `InceptionClassifier` (`load_evaluation_classifier`).
    metrics: names in `metrics.REGISTRY`.
    num_samples: generated images (>= 2; > 3 for precision_recall).
    seed: latent seed (numpy `default_rng(seed).standard_normal`; independent of batch_size).
    batch_size: latents per generator call.

  Returns:
    A JSON-ready dict: `fid`, `is`, `kid` (None when not requested), the other requested
    values (`kid_std`, `precision`, `recall`), and the protocol: `classifier`,
    `classifier_sha256`, `num_real`, `num_generated`, `split`, `resize`, `seed`, `dataset`,
    `image_shape`, `latent_sampling`, `metrics`, `seconds`.

  Raises:
    EvaluationError: unknown metric, too few samples, mismatched classifier / real statistics.
  """
  start_time = time.perf_counter()
  for name in metrics:
    if name not in metrics_lib.REGISTRY:
      raise EvaluationError(f"unknown metric {name!r}; accepted: "
                            f"{', '.join(metrics_lib.REGISTRY)}")
  if num_samples < 2:
    raise EvaluationError(f"num_samples must be >= 2, got {num_samples}")
  if real_stats.classifier_sha256 != classifier.sha256:
    raise EvaluationError("the real statistics were computed with another classifier")
  needs = metrics_lib.needed_outputs(metrics)
  generated, image_shape = generated_activations(generate_fn, latent_dim, classifier, needs,
                                                 num_samples, seed, batch_size)
  if image_shape != tuple(real_stats.image_shape):
    raise EvaluationError(f"the generator makes {'x'.join(map(str, image_shape))} images but "
                          f"the real statistics are of "
                          f"{'x'.join(map(str, real_stats.image_shape))} images")
  record = {key: None for key in REQUIRED_KEYS}
  for name in metrics:
    try:
      record.update(metrics_lib.REGISTRY[name].compute(real_stats.activations, generated))
    except ValueError as error:
      raise EvaluationError(f"{name}: {error}") from error
  record.update({
      "metrics": list(metrics),
      "dataset": real_stats.dataset,
      "split": real_stats.split,
      "num_real": real_stats.num_real,
      "num_generated": int(num_samples),
      "image_shape": list(image_shape),
      "resize": real_stats.resize,
      "seed": int(seed),
      "latent_sampling": LATENT_SAMPLING,
      "classifier": classifier.path,
      "classifier_sha256": classifier.sha256,
      "seconds": round(time.perf_counter() - start_time, 2),
  })
  return record


# ---------------------------------------------------------------------------------------------
# Generators from exports and checkpoints.


@dataclasses.dataclass
class LoadedGenerator:
  generate_fn: Callable
  latent_dim: int
  image_shape: Optional[tuple]  # None when the export does not record it.
  dataset: Optional[str]
  source: dict  # Recorded in the JSON: where the generator came from.
  keep_alive: object = None  # The loaded SavedModel / GAN that generate_fn needs.


def load_saved_model_generator(path: str) -> LoadedGenerator:
  """A generator export version directory (`serving_default`: latents -> uint8 images).

  Raises:
    EvaluationError: not an export, or the wrong signature.
  """
  try:
    export = loader.load_export(path, loader.IMAGES)
  except loader.ExportLoadError as error:
    raise EvaluationError(str(error)) from error
  loaded, function, latent_dim = export.root, export.function, export.latent_dim
  # Exports from elsewhere may lack metadata; the dataset must then come from --dataset.
  metadata = export.metadata
  if metadata.get("latent_dim") not in (None, latent_dim):
    raise EvaluationError(f"{path}: metadata says latent_dim {metadata['latent_dim']} but the "
                          f"signature takes {latent_dim}; the export is inconsistent")

  # The export refuses batches larger than its limit (in its graph): split them.
  limit = loader.request_batch_size(2**31 - 1, metadata)

  def generate_fn(latents):
    if latents.shape[0] <= limit:
      return function(**{contract.LATENTS: latents})[contract.IMAGES]
    return tf.concat([function(**{contract.LATENTS: latents[start:start + limit]})[
        contract.IMAGES] for start in range(0, latents.shape[0], limit)], axis=0)

  shape = metadata.get("image_shape")
  return LoadedGenerator(generate_fn, latent_dim, tuple(shape) if shape else None,
                         metadata.get("dataset"),
                         {"saved_model": os.path.abspath(path), "step": metadata.get("step")},
                         keep_alive=loaded)


def load_workdir_generator(workdir: str) -> LoadedGenerator:
  """The sampling (EMA) generator of a training workdir's newest checkpoint.

  Raises:
    EvaluationError: not a workdir, no checkpoint, or a checkpoint that does not match the run.
  """
  try:
    run = restore.restore_run(workdir)
  except workdir_lib.ConfigError as error:
    raise EvaluationError(str(error)) from error
  model, config = run.model, run.config
  generator = model.sampling_generator
  generate_fn = tf.function(lambda latents: generator(latents, training=False))
  return LoadedGenerator(generate_fn, config.latent_dim, run.image_shape, config.dataset,
                         {"workdir": os.path.abspath(workdir), "checkpoint": run.checkpoint_path,
                          "step": int(model.step.numpy())}, keep_alive=model)


def evaluate(generator: LoadedGenerator, classifier_spec: Optional[str] = None,
             metrics: Sequence[str] = DEFAULT_METRICS, num_samples: int = DEFAULT_NUM_SAMPLES,
             split: str = DEFAULT_SPLIT, seed: int = 0, dataset: Optional[str] = None,
             data_dir: Optional[str] = None, cache_dir: Optional[str] = None) -> dict:
  """Evaluates a loaded generator end to end (what the command runs).

  Args:
    generator: `load_saved_model_generator(...)` or `load_workdir_generator(...)`.
    classifier_spec: see `load_evaluation_classifier`; None: `default_classifier(dataset)`.
    dataset: real dataset; None: the one the export or run records.
    Others: as in `evaluate_generator` and `real_statistics`.

  Returns:
    The `evaluate_generator` record plus `source` (saved_model or workdir/checkpoint, step),
    `real_stats_cached`, `timestamp` and `total_seconds`.

  Raises:
    EvaluationError: as described in the functions above.
  """
  start_time = time.perf_counter()
  dataset = dataset or generator.dataset
  if not dataset:
    raise EvaluationError("the export does not record its dataset; pass --dataset")
  # The image shape from one sample when the export does not record it.
  image_shape = generator.image_shape or tuple(
      generator.generate_fn(tf.zeros([1, generator.latent_dim])).shape[1:])
  spec = classifier_spec or default_classifier(dataset, image_shape[-1])
  classifier = load_evaluation_classifier(spec)
  classifier.check_image_shape(image_shape)
  if classifier.dataset and classifier.dataset != dataset:
    raise EvaluationError(f"the classifier at {classifier.path} was trained on "
                          f"{classifier.dataset}, the generator on {dataset}; pass a "
                          f"{dataset} classifier")
  real = real_statistics(classifier, dataset, split, image_shape, num_samples, data_dir,
                         cache_dir)
  record = evaluate_generator(generator.generate_fn, generator.latent_dim, real, classifier,
                              metrics, num_samples, seed)
  record["source"] = generator.source
  record["real_stats_cached"] = real.from_cache
  record["timestamp"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
      timespec="seconds")
  record["total_seconds"] = round(time.perf_counter() - start_time, 2)
  return record
