r"""Measures a generator: FID, IS, KID and precision/recall through TF-GAN, with a fixed protocol.

  python -m tfgan_app.evaluate --saved_model=runs/dcgan/export/dcgan/2000 \
      --classifier=/work/classifiers/mnist --metrics=fid,is,kid
  python -m tfgan_app.evaluate --workdir=runs/dcgan      # newest checkpoint, EMA generator
  # 10,000 samples of a 28x28 DCGAN on 2 busy CPU cores: about 22 s wall, 13 s once the real
  # statistics are cached. A 40-step generator scores FID ~408, a 3000-step one ~46-66.

Metrics (`--metrics`, registry in `tfgan_app.metrics`): `fid` (Fréchet distance of classifier
features), `is` (classifier score of logits), `kid` (kernel distance of features, with its
standard error `kid_std`), `precision_recall` (Kynkäänniemi et al. 2019, k = 3).

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

The flags --workdir, --split, --seed, --dataset and --data_dir are those of
`tfgan_app.flags` (shared with training; --split defaults to `test` here, and --dataset
overrides the dataset recorded in the export or run).
"""

import dataclasses
import datetime
import hashlib
import json
import os
import sys
import time
from typing import Callable, Optional, Sequence

from absl import app
from absl import flags
import keras
import numpy as np
import tensorflow as tf

from tfgan_app import cli
from tfgan_app import classifier as classifier_lib
from tfgan_app import data
from tfgan_app import export
from tfgan_app import metrics as metrics_lib

DEFAULT_METRICS = ("fid", "is", "kid")
DEFAULT_NUM_SAMPLES = 10_000
DEFAULT_SPLIT = "test"
GENERATION_BATCH_SIZE = 500
METRICS_FILE = "metrics.jsonl"
INCEPTION = "inception"
INCEPTION_HANDLE = "https://tfhub.dev/tensorflow/tfgan/eval/inception/1"
INCEPTION_SIZE = 299
CACHE_ENV = "TFGAN_APP_CACHE_DIR"
# Keys always present in the JSON record (null when the metric was not requested).
REQUIRED_KEYS = ("fid", "is", "kid")
# Latent distribution, recorded in the protocol.
LATENT_SAMPLING = "numpy.random.default_rng(seed).standard_normal, float32"
_CACHE_VERSION = 1


class EvaluationError(RuntimeError):
  """The generator cannot be evaluated as asked; the message says what is wrong and what to do."""


# ---------------------------------------------------------------------------------------------
# Classifiers.


def content_sha256(path: str) -> str:
  """sha256 over a SavedModel's graph file and every file under `variables/`, in name order.

  Identifies the classifier's weights and graph, independent of where it lives.

  Raises:
    EvaluationError: `path` holds no saved_model.pb / tfhub_module.pb.
  """
  digest = hashlib.sha256()
  graph = next((name for name in ("saved_model.pb", "tfhub_module.pb")
                if os.path.isfile(os.path.join(path, name))), None)
  if graph is None:
    raise EvaluationError(f"no SavedModel at {path} (no saved_model.pb)")
  files = [graph]
  variables = os.path.join(path, "variables")
  for root, _, names in os.walk(variables):
    files.extend(os.path.relpath(os.path.join(root, name), path) for name in names)
  for relative in [files[0]] + sorted(files[1:]):
    digest.update(relative.encode() + b"\0")
    with open(os.path.join(path, relative), "rb") as f:
      for chunk in iter(lambda: f.read(1 << 20), b""):
        digest.update(chunk)
  return digest.hexdigest()


class DomainClassifier:
  """The project's classifier (`tfgan_app.classifier`) behind the evaluator's interface.

  Attributes: path, sha256, image_shape (H, W, C), dataset (from classifier.json or None),
  resize ("none": images must already have the classifier's shape).
  """

  def __init__(self, path: str, batch_size: int = GENERATION_BATCH_SIZE):
    self._classifier = classifier_lib.load_classifier(path, batch_size)
    self.path = os.path.abspath(path)
    self.sha256 = content_sha256(path)
    self.image_shape = self._classifier.image_shape
    self.dataset = self._classifier.metadata.get("dataset")
    self.resize = "none"

  def check_image_shape(self, image_shape) -> None:
    """Raises EvaluationError unless images of `image_shape` [H, W, C] fit the classifier."""
    if tuple(image_shape) != tuple(self.image_shape):
      raise EvaluationError(
          f"the images are {'x'.join(map(str, image_shape))} but the classifier at {self.path} "
          f"takes {'x'.join(map(str, self.image_shape))}; use a classifier trained on the "
          "generator's dataset at its image size (python -m tfgan_app.classifier)")

  def activations(self, images: np.ndarray, needs) -> metrics_lib.Activations:
    """float32 [N, H, W, C] in [-1, 1] -> the `Activations` fields named in `needs`."""
    return metrics_lib.Activations(
        features=self._classifier.features(images) if "features" in needs else None,
        logits=self._classifier.logits(images) if "logits" in needs else None)


class InceptionClassifier:
  """TF-GAN's Inception v3 (TF-Hub module): `pool_3` features [N, 2048], logits [N, 1008].

  Images in [-1, 1] go back to [0, 255], are resized bilinearly to 299x299 and rescaled by
  `tfgan.eval.preprocess_image`; grayscale images are repeated to three channels.
  """

  def __init__(self, handle: str = INCEPTION_HANDLE, batch_size: int = 100):
    import tensorflow_hub as hub  # pylint: disable=import-outside-toplevel
    from tfgan_app.tfgan_compat import tfgan  # pylint: disable=import-outside-toplevel
    self._tfgan = tfgan
    try:
      local = handle if os.path.isdir(handle) else hub.resolve(handle)
      self._module = hub.load(local)
    except Exception as error:  # Network, missing cache, wrong format: one answer to the user.
      first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
      raise EvaluationError(
          f"cannot load TF-GAN's Inception module from {handle} ({first[:200]}); offline, "
          f"download {INCEPTION_HANDLE}?tf-hub-format=compressed elsewhere, unpack it and pass "
          "--classifier=<that directory>, or set TFHUB_CACHE_DIR to a cache that holds it") \
          from error
    self.path = local
    self.sha256 = content_sha256(local)
    self.image_shape = None  # Any size, 1 or 3 channels.
    self.dataset = None
    self.resize = f"bilinear to {INCEPTION_SIZE}x{INCEPTION_SIZE} (tfgan.eval.preprocess_image)"
    self.batch_size = batch_size

  def check_image_shape(self, image_shape) -> None:
    if image_shape[-1] not in (1, 3):
      raise EvaluationError(f"Inception takes 1- or 3-channel images, got {image_shape}")

  def activations(self, images: np.ndarray, needs) -> metrics_lib.Activations:
    features, logits = [], []
    for start in range(0, len(images), self.batch_size):
      batch = tf.constant(images[start:start + self.batch_size], tf.float32)
      if batch.shape[-1] == 1:
        batch = tf.repeat(batch, 3, axis=-1)
      batch = self._tfgan.eval.preprocess_image((batch + 1.0) * 127.5, INCEPTION_SIZE,
                                                INCEPTION_SIZE)
      outputs = self._module(batch)
      features.append(np.asarray(outputs["pool_3"]).reshape(len(batch), -1))
      logits.append(np.asarray(outputs["logits"]))
    return metrics_lib.Activations(
        features=np.concatenate(features) if "features" in needs else None,
        logits=np.concatenate(logits) if "logits" in needs else None)


def default_classifier(dataset: str, num_channels: int) -> str:
  """The classifier spec used when --classifier is not given (see the module docstring).

  Raises:
    EvaluationError: a grayscale dataset whose environment variable is not set.
  """
  if num_channels == 3:
    return INCEPTION
  variable = f"TFGAN_APP_{dataset.upper().replace('-', '_')}_CLASSIFIER"
  path = os.environ.get(variable)
  if not path:
    raise EvaluationError(
        f"no classifier for {dataset}: pass --classifier=DIR or set ${variable}; train one "
        f"with python -m tfgan_app.classifier --dataset={dataset} --out=DIR")
  return path


def load_evaluation_classifier(spec: str):
  """Loads `spec`: a tfgan_app classifier directory, `inception`, or an Inception directory.

  Returns:
    A `DomainClassifier` or an `InceptionClassifier`.

  Raises:
    EvaluationError: nothing usable at `spec` (the message says how to supply one).
  """
  if spec == INCEPTION:
    return InceptionClassifier(os.environ.get("TFGAN_APP_INCEPTION", INCEPTION_HANDLE))
  if not os.path.isdir(spec):
    raise EvaluationError(
        f"no classifier at --classifier={spec}: pass a directory written by python -m "
        "tfgan_app.classifier --dataset=mnist --out=DIR, or 'inception'")
  if os.path.isfile(os.path.join(spec, classifier_lib.METADATA_FILE)):
    try:
      return DomainClassifier(spec)
    except classifier_lib.ClassifierError as error:
      raise EvaluationError(str(error)) from error
  if os.path.isfile(os.path.join(spec, "tfhub_module.pb")):
    return InceptionClassifier(spec)
  try:
    return DomainClassifier(spec)
  except classifier_lib.ClassifierError as error:
    raise EvaluationError(f"{error}; or pass a directory holding TF-GAN's Inception module") \
        from error


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
    info = data.prepare(dataset, split, data_dir, image_size=image_shape[0], download=False)
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
  path = (_cache_path(cache_dir, dataset, split, image_shape, classifier.sha256, num_real)
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
      staging = f"{path}.tmp-{os.getpid()}.npz"
      np.savez(staging, features=activations.features, logits=activations.logits)
      os.replace(staging, path)
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
  for start in range(0, num_samples, batch_size):
    images = generate_fn(tf.constant(latents[start:start + batch_size]))  # [B, H, W, C]
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
  from tfgan_app import sample_quality  # pylint: disable=import-outside-toplevel
  try:
    loaded, function, latent_dim = sample_quality.load_generator(path)
  except sample_quality.SampleQualityError as error:
    raise EvaluationError(str(error)) from error
  metadata = {}
  try:
    metadata = export.read_metadata(path)
  except (OSError, ValueError):
    pass  # Exports from elsewhere may lack it; the dataset must then come from --dataset.
  if metadata.get("latent_dim") not in (None, latent_dim):
    raise EvaluationError(f"{path}: metadata says latent_dim {metadata['latent_dim']} but the "
                          f"signature takes {latent_dim}; the export is inconsistent")

  # The export refuses batches larger than its limit (in its graph): split them.
  limit = metadata.get(export.MAX_SAMPLES_PER_REQUEST)

  def generate_fn(latents):
    if not limit or latents.shape[0] <= limit:
      return function(**{export.LATENTS: latents})[export.IMAGES]
    return tf.concat([function(**{export.LATENTS: latents[start:start + limit]})[export.IMAGES]
                      for start in range(0, latents.shape[0], limit)], axis=0)

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
  from tfgan_app import train  # pylint: disable=import-outside-toplevel  (train imports us)
  try:
    model, config, image_shape, restored = train.restore_run(workdir)
  except train.ConfigError as error:
    raise EvaluationError(str(error)) from error
  generator = model.sampling_generator
  generate_fn = tf.function(lambda latents: generator(latents, training=False))
  return LoadedGenerator(generate_fn, config.latent_dim, image_shape, config.dataset,
                         {"workdir": os.path.abspath(workdir), "checkpoint": restored,
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


def append_record(path: str, record: dict) -> None:
  """Appends `record` as one JSON line to `path` (e.g. <workdir>/metrics.jsonl)."""
  with open(path, "a") as f:
    f.write(json.dumps(record, sort_keys=True) + "\n")


def format_table(record: dict) -> str:
  """A readable table of a record's metric values and its protocol."""
  rows = []
  for key, label in (("fid", "FID (lower is better)"), ("is", "IS (higher is better)"),
                     ("kid", "KID (lower is better)"), ("kid_std", "  KID standard error"),
                     ("precision", "precision (k=3)"), ("recall", "recall (k=3)")):
    if record.get(key) is not None:
      rows.append((label, f"{record[key]:.6g}"))
  source = record.get("source", {})
  rows += [("generator", source.get("saved_model") or source.get("checkpoint") or "?"),
           ("step", str(source.get("step"))),
           ("dataset / split", f"{record['dataset']} / {record['split']}"),
           ("real / generated", f"{record['num_real']} / {record['num_generated']}"),
           ("resize", record["resize"]),
           ("seed", str(record["seed"])),
           ("classifier", f"{record['classifier']} (sha256 {record['classifier_sha256'][:12]})")]
  width = max(len(label) for label, _ in rows)
  return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


# ---------------------------------------------------------------------------------------------
# During training.


class EvalCallback(keras.callbacks.Callback):
  """Runs the metrics on the GAN's `sampling_generator` (EMA when present) every N steps.

  Values go to TensorBoard as `eval/<key>` scalars at the GAN's global step and, as one JSON
  line per evaluation (the `evaluate_generator` record plus `step`), to `metrics_file`.
  Real statistics are computed (or read from the cache) once, at the start of training.
  """

  def __init__(self, every_steps: int, dataset: str, image_shape: Sequence[int],
               classifier=None, metrics: Sequence[str] = DEFAULT_METRICS,
               num_samples: int = DEFAULT_NUM_SAMPLES, seed: int = 0,
               split: str = DEFAULT_SPLIT, writer=None, metrics_file: Optional[str] = None,
               data_dir: Optional[str] = None, cache_dir: Optional[str] = None,
               real_stats: Optional[RealStats] = None, print_fn: Optional[Callable] = print):
    """Configures the evaluation; nothing is loaded until training begins.

    Args:
      every_steps: evaluate when the GAN's step (generator updates) reaches a multiple of
        this (> 0); also at the end of training if the last step was not evaluated.
      dataset: TFDS name of the real data (the training dataset).
      image_shape: [H, W, C] of the generator's images.
      classifier: a classifier spec (directory, `inception`, or None for
        `default_classifier(dataset, channels)`) or an already loaded `DomainClassifier` /
        `InceptionClassifier`.
      metrics: names in `metrics.REGISTRY`, e.g. ("fid", "is", "kid").
      num_samples: generated images per evaluation (and wanted real images); evaluation time
        grows linearly with it (10,000: about 20-30 s on 2 CPU cores for a 28x28 DCGAN).
      seed: latent seed; the same latents every evaluation, so changes reflect the weights.
      split: real split, e.g. "test".
      writer: a `tf.summary` writer, or None for no TensorBoard scalars.
      metrics_file: path of the JSONL file to append to (e.g. <workdir>/metrics.jsonl), or None.
      data_dir: TFDS data directory (None: TFDS's default).
      cache_dir: real-statistics cache (None: `default_cache_dir()`, "": no cache).
      real_stats: precomputed `RealStats` for `classifier` (skips loading the real data).
      print_fn: called with one summary line per evaluation; None for silence.

    Raises:
      ValueError: every_steps <= 0 or an unknown metric name (at construction, before training).
    """
    super().__init__()
    if every_steps <= 0:
      raise ValueError(f"every_steps must be > 0, got {every_steps}")
    for name in metrics:
      if name not in metrics_lib.REGISTRY:
        raise ValueError(f"unknown metric {name!r}; accepted: {', '.join(metrics_lib.REGISTRY)}")
    self.every_steps = int(every_steps)
    self.dataset = dataset
    self.image_shape = tuple(int(d) for d in image_shape)
    self.metrics = tuple(metrics)
    self.num_samples = int(num_samples)
    self.seed = int(seed)
    self.split = split
    self._classifier = classifier
    self._writer = writer
    self._metrics_file = metrics_file
    self._data_dir = data_dir
    self._cache_dir = cache_dir
    self._real_stats = real_stats
    self._print_fn = print_fn
    self._generate_fn = None
    self._last_evaluated = None
    self.history = []  # The records of this callback's evaluations.

  def _prepare(self):
    if self._classifier is None or isinstance(self._classifier, str):
      spec = self._classifier or default_classifier(self.dataset, self.image_shape[-1])
      self._classifier = load_evaluation_classifier(spec)
    self._classifier.check_image_shape(self.image_shape)
    if self._real_stats is None:
      self._real_stats = real_statistics(self._classifier, self.dataset, self.split,
                                         self.image_shape, self.num_samples, self._data_dir,
                                         self._cache_dir)

  def on_train_begin(self, logs=None):
    self._prepare()
    self._last_evaluated = int(self.model.step.numpy())  # Resumed runs: not again at once.

  def on_train_batch_end(self, batch, logs=None):
    step = int(self.model.step.numpy())
    if step // self.every_steps > self._last_evaluated // self.every_steps:
      self.evaluate_now(step)

  def on_train_end(self, logs=None):
    step = int(self.model.step.numpy())
    if step != self._last_evaluated:
      self.evaluate_now(step)

  def evaluate_now(self, step: Optional[int] = None) -> dict:
    """Evaluates the current sampling generator, logs and returns the record."""
    if self._real_stats is None:
      self._prepare()
    step = int(self.model.step.numpy()) if step is None else int(step)
    if self._generate_fn is None:
      generator = self.model.sampling_generator
      self._generate_fn = tf.function(lambda latents: generator(latents, training=False))
    record = evaluate_generator(self._generate_fn, int(self.model.latent_dim), self._real_stats,
                                self._classifier, self.metrics, self.num_samples, self.seed)
    record["step"] = step
    self._last_evaluated = step
    self.history.append(record)
    values = {key: record[key] for key in ("fid", "is", "kid", "kid_std", "precision", "recall")
              if record.get(key) is not None}
    if self._writer is not None:
      with self._writer.as_default():
        for key, value in values.items():
          tf.summary.scalar(f"eval/{key}", value, step=step)
      self._writer.flush()
    if self._metrics_file:
      append_record(self._metrics_file, record)
    if self._print_fn is not None:
      self._print_fn(f"eval step {step}: " + ", ".join(f"{key} {value:.4g}"
                                                       for key, value in values.items())
                     + f" ({record['seconds']:.1f} s)")
    return record


# ---------------------------------------------------------------------------------------------
# Command line.

_PROGRAM = "python -m tfgan_app.evaluate"


def define_flags() -> None:
  """Defines the command's own flags; only when run as the program.

  --workdir, --split, --seed, --dataset and --data_dir come from `tfgan_app.flags` (training
  defines them on the global FLAGS; defining them again would be an error).
  """
  from tfgan_app import flags as app_flags  # pylint: disable=import-outside-toplevel
  app_flags.FLAGS.set_default("split", DEFAULT_SPLIT)
  # The training help ("split to train on") would mislead here.
  app_flags.FLAGS["split"].help = "TFDS split of the real images to compare with, e.g. test."
  flags.DEFINE_string("saved_model", None,
                      "Generator export version directory, e.g. runs/dcgan/export/dcgan/2000. "
                      "Exactly one of --saved_model and --workdir.")
  flags.DEFINE_string("metrics", ",".join(DEFAULT_METRICS),
                      f"Comma-separated metrics: {', '.join(metrics_lib.REGISTRY)}.")
  flags.DEFINE_integer("num_samples", DEFAULT_NUM_SAMPLES,
                       "Generated images, and wanted real images (fewer if the split is "
                       "smaller); >= 4.", lower_bound=4)
  flags.DEFINE_string("classifier", None,
                      "Classifier directory (python -m tfgan_app.classifier), 'inception' "
                      f"({INCEPTION_HANDLE}; honours TFHUB_CACHE_DIR) or a local Inception "
                      "module directory. Default: $TFGAN_APP_<DATASET>_CLASSIFIER for grayscale "
                      "datasets, inception for RGB.")
  flags.DEFINE_string("cache_dir", None,
                      f"Real-statistics cache. Default: ${CACHE_ENV} or ~/.cache/tfgan_app; "
                      "'' disables it.")


def run(values) -> dict:
  """The command's work, given the parsed flag values. Raises EvaluationError."""
  if bool(values.saved_model) == bool(values.workdir):
    raise EvaluationError("pass exactly one of --saved_model=EXPORT_VERSION_DIR and "
                          "--workdir=TRAINING_WORKDIR")
  try:
    metric_names = metrics_lib.parse_metric_names(values.metrics)
  except ValueError as error:
    raise EvaluationError(f"--metrics: {error}") from error
  if values.saved_model:
    generator = load_saved_model_generator(values.saved_model)
  else:
    generator = load_workdir_generator(values.workdir)
  dataset = values.dataset if values["dataset"].present else None
  record = evaluate(generator, values.classifier, metric_names, values.num_samples,
                    values.split, values.seed, dataset, values.data_dir, values.cache_dir)
  return record


def main(argv):
  del argv  # Only --flags; stray arguments are refused by cli.flags_parser.
  values = flags.FLAGS
  try:
    record = run(values)
  except EvaluationError as error:
    print(f"{_PROGRAM}: error: {error}", file=sys.stderr)
    sys.exit(1)
  print(format_table(record))
  if values.workdir:
    try:
      append_record(os.path.join(values.workdir, METRICS_FILE), record)
    except OSError as error:
      print(f"{_PROGRAM}: error: cannot append to {values.workdir}/{METRICS_FILE}: "
            f"{error.strerror}", file=sys.stderr)
      print(json.dumps(record, sort_keys=True), flush=True)
      sys.exit(1)
  print(json.dumps(record, sort_keys=True), flush=True)


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=cli.flags_parser(_PROGRAM))
