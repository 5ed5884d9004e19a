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
which honours TFHUB_CACHE_DIR), or a local copy: that module's directory, or a SavedModel
directory or `.keras` file with its interface. Inception's input is reached by
`--resize_method` (`tfgan_app.evaluation.inception`): `clean` (clean-fid's PIL bicubic, the
default) or `tf_bilinear` (TF-GAN's legacy protocol); the record's `resize_method` says which.
Default per dataset: $TFGAN_APP_<DATASET>_CLASSIFIER when set (e.g. TFGAN_APP_MNIST_CLASSIFIER,
TFGAN_APP_CIFAR10_CLASSIFIER; for folder:PATH the folder's name, e.g.
TFGAN_APP_CIFAR10_JPEG_CLASSIFIER), else `inception` for RGB datasets.

Protocol: latents are numpy `default_rng(--seed).standard_normal`; the real images are the
first `num_real = min(--num_samples, split size)` images of `--split` (default test) in TFDS's
file order, centre-cropped and area-resized to the generator's size when the sizes differ.
Real activations are cached per (dataset, split, image size, classifier content hash, resize
method, num_real) under --cache_dir (default $TFGAN_APP_CACHE_DIR or ~/.cache/tfgan_app).
`--reference=FILE` reads them from a reference statistics file instead
(`tfgan_app.evaluation.reference`).

Output: a table, then as the last stdout line one JSON object with `fid`, `is`, `kid` (null
when not requested), the other requested values and the protocol; with --workdir it is also
appended to `<workdir>/metrics.jsonl`. Errors: one line on stderr, exit status 1 (2 for a bad
command line).

--dataset overrides the dataset recorded in the export or run.

Class-conditional generators (exports with `num_classes`, or runs of a conditional model): sample
i asks for class i mod num_classes, and the record adds `label_accuracy` (with a domain
classifier of the same classes) and the intra-class FID (with real labels, i.e. not with
--reference): `tfgan_app.evaluation.conditional`.
"""

import dataclasses
import datetime
import os
import time
from typing import Callable, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfgan_app.data import datasets as data
from tfgan_app.evaluation import classifier as classifier_lib
from tfgan_app.evaluation import conditional
from tfgan_app.evaluation import metrics as metrics_lib
from tfgan_app.evaluation import reference as reference_lib
# Re-exported: the evaluator's users reach the classifiers and the protocol through it.
from tfgan_app.evaluation.classifiers import (  # pylint: disable=g-multiple-import,unused-import
    DomainClassifier, InceptionClassifier, content_sha256, default_classifier,
    load_evaluation_classifier)
from tfgan_app.evaluation.protocol import (  # pylint: disable=g-multiple-import,unused-import
    CACHE_ENV, DEFAULT_METRICS, DEFAULT_NUM_SAMPLES, DEFAULT_RESIZE_METHOD, DEFAULT_SPLIT,
    GENERATION_BATCH_SIZE, INCEPTION, INCEPTION_HANDLE, INCEPTION_SIZE, LATENT_SAMPLING,
    METRICS_FILE, REQUIRED_KEYS, RESIZE_METHODS, _CACHE_VERSION, EvaluationError, append_record)
from tfgan_app.evaluation import protocol
from tfgan_app.evaluation.real_stats import (  # pylint: disable=g-multiple-import,unused-import
    RealStats, default_cache_dir, real_statistics)
from tfgan_app.exporting import contract
from tfgan_app.exporting import loader
from tfgan_app.runs import restore
from tfgan_app.runs import workdir as workdir_lib


# ---------------------------------------------------------------------------------------------
# Generated samples and the metrics.


def generated_activations(generate_fn: Callable, latent_dim: int, classifier, needs,
                          num_samples: int, seed: int,
                          batch_size: int = GENERATION_BATCH_SIZE, num_classes: int = 0) -> tuple:
  """Samples `num_samples` images and runs the classifier on them.

  Args:
    generate_fn: float32 latents [B, latent_dim] (and int32 labels [B] when num_classes > 0) ->
      images [B, H, W, C], either uint8 in [0, 255] or float in [-1, 1].
    latent_dim, classifier, needs, num_samples, seed, batch_size, num_classes: as in
      `evaluate_generator`.

  Returns:
    (`metrics.Activations`, image_shape (H, W, C)).

  Raises:
    EvaluationError: images the classifier cannot take.
  """
  latents = np.random.default_rng(seed).standard_normal((num_samples, latent_dim),
                                                        dtype=np.float32)
  features, logits, image_shape = [], [], None
  labels = conditional.sample_labels(num_samples, num_classes) if num_classes else None
  for images in loader.batches(generate_fn, latents, batch_size, tf.constant, labels):
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
                       batch_size: int = GENERATION_BATCH_SIZE, num_classes: int = 0,
                       real_labels: Optional[np.ndarray] = None) -> dict:
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
    num_classes: > 0 for a class-conditional `generate_fn(latents, labels)`: sample i asks for
      class i mod num_classes, and the record adds `conditional.KEYS` (label accuracy with a
      domain classifier; intra-class FID when `real_labels`, the labels of the real
      statistics' images, are given), `num_classes` and `label_sampling`.

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
  if real_stats.resize_method != classifier.resize_method:
    raise EvaluationError(f"the real statistics were computed with --resize_method="
                          f"{real_stats.resize_method}, the generated images use "
                          f"{classifier.resize_method}")
  needs = metrics_lib.needed_outputs(metrics)
  domain = isinstance(classifier, DomainClassifier)  # Inception's classes are not the data's.
  if num_classes:
    needs |= {"logits"} if domain else set()
    needs |= {"features"} if real_labels is not None else set()
  generated, image_shape = generated_activations(generate_fn, latent_dim, classifier, needs,
                                                 num_samples, seed, batch_size, num_classes)
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
  if num_classes:
    record.update(conditional.class_metrics(
        generated if domain else dataclasses.replace(generated, logits=None),
        conditional.sample_labels(num_samples, num_classes), num_classes,
        real_stats.activations.features, real_labels))
  record.update({
      "metrics": list(metrics),
      "dataset": real_stats.dataset,
      "split": real_stats.split,
      "num_real": real_stats.num_real,
      "num_generated": int(num_samples),
      "image_shape": list(image_shape),
      "resize": real_stats.resize,
      "resize_method": real_stats.resize_method,
      "seed": int(seed),
      "latent_sampling": LATENT_SAMPLING,
      "classifier": classifier.path,
      "classifier_sha256": classifier.sha256,
      "seconds": round(time.perf_counter() - start_time, 2),
  })
  return record


def format_table(record: dict) -> str:
  """`protocol.format_table`, with a conditional generator's label accuracy and intra-class FID."""
  return protocol.format_table(record, conditional.format_lines(record,
                                                                record.get("class_names")))


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
  num_classes: int = 0  # > 0: class-conditional, generate_fn(latents, labels).
  class_names: Optional[list] = None


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

  def generate_fn(latents, labels=None):
    pieces = []
    for start in range(0, latents.shape[0], limit):
      inputs = {contract.LATENTS: latents[start:start + limit]}
      if labels is not None:
        inputs[contract.LABELS] = labels[start:start + limit]
      pieces.append(function(**inputs)[contract.IMAGES])
    return pieces[0] if len(pieces) == 1 else tf.concat(pieces, axis=0)

  shape = metadata.get("image_shape")
  return LoadedGenerator(generate_fn, latent_dim, tuple(shape) if shape else None,
                         metadata.get("dataset"),
                         {"saved_model": os.path.abspath(path), "step": metadata.get("step")},
                         keep_alive=loaded, num_classes=export.num_classes,
                         class_names=metadata.get(contract.CLASS_NAMES_KEY))


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
  num_classes = int(getattr(generator, "num_classes", 0) or 0)
  generate_fn = tf.function(lambda latents, labels=None: generator(
      latents, training=False, **({"labels": labels} if num_classes else {})))
  return LoadedGenerator(generate_fn, config.latent_dim, run.image_shape, config.dataset,
                         {"workdir": os.path.abspath(workdir), "checkpoint": run.checkpoint_path,
                          "step": int(model.step.numpy())}, keep_alive=model,
                         num_classes=num_classes,
                         class_names=workdir_lib.recorded_class_names(workdir))


def evaluate(generator: LoadedGenerator, classifier_spec: Optional[str] = None,
             metrics: Sequence[str] = DEFAULT_METRICS, num_samples: int = DEFAULT_NUM_SAMPLES,
             split: str = DEFAULT_SPLIT, seed: int = 0, dataset: Optional[str] = None,
             data_dir: Optional[str] = None, cache_dir: Optional[str] = None,
             resize_method: Optional[str] = None, reference: Optional[str] = None) -> dict:
  """Evaluates a loaded generator end to end (what the command runs).

  Args:
    generator: `load_saved_model_generator(...)` or `load_workdir_generator(...)`.
    classifier_spec: see `load_evaluation_classifier`; None: `default_classifier(dataset)`.
    dataset: real dataset; None: the one the export or run records (or the reference's).
    resize_method: Inception's resize protocol (`load_evaluation_classifier`).
    reference: a reference statistics file (`reference.write_reference`) read instead of
      computing the real statistics; it must match the classifier, resize method and image
      size. The record's dataset, split and num_real are then the reference's.
    Others: as in `evaluate_generator` and `real_statistics`.

  Returns:
    The `evaluate_generator` record plus `source` (saved_model or workdir/checkpoint, step),
    `real_stats_cached`, `reference` (path, sha256; None without one), `timestamp` and
    `total_seconds`.

  Raises:
    EvaluationError: as described in the functions above.
  """
  start_time = time.perf_counter()
  header = reference_lib.read_header(reference) if reference else None
  dataset = dataset or generator.dataset or (header or {}).get("dataset")
  if not dataset:
    raise EvaluationError("the export does not record its dataset; pass --dataset")
  # The image shape from one sample when the export does not record it.
  one_label = [tf.zeros([1], tf.int32)] if generator.num_classes else []
  image_shape = generator.image_shape or tuple(
      generator.generate_fn(tf.zeros([1, generator.latent_dim]), *one_label).shape[1:])
  spec = classifier_spec or default_classifier(dataset, image_shape[-1])
  classifier = load_evaluation_classifier(spec, resize_method)
  classifier.check_image_shape(image_shape)
  if reference:
    real = reference_lib.read_reference(reference, classifier, image_shape)
  else:
    if classifier.dataset and classifier.dataset != classifier_lib.recorded_dataset(dataset):
      raise EvaluationError(f"the classifier at {classifier.path} was trained on "
                            f"{classifier.dataset}, the generator on {dataset}; pass a "
                            f"{dataset} classifier")
    real = real_statistics(classifier, dataset, split, image_shape, num_samples, data_dir,
                           cache_dir)
  # A reference file holds no labels: no intra-class FID then.
  labels = (conditional.real_labels(dataset, split, real.num_real, image_shape, data_dir)
            if generator.num_classes and not reference else None)
  record = evaluate_generator(generator.generate_fn, generator.latent_dim, real, classifier,
                              metrics, num_samples, seed, num_classes=generator.num_classes,
                              real_labels=labels)
  if generator.num_classes:
    record["class_names"] = generator.class_names
  record["source"] = generator.source
  record["real_stats_cached"] = real.from_cache
  record["reference"] = ({"path": real.reference["path"], "sha256": real.reference["sha256"]}
                         if real.reference else None)
  record["timestamp"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
      timespec="seconds")
  record["total_seconds"] = round(time.perf_counter() - start_time, 2)
  return record


def write_reference(path: str, dataset: str, classifier_spec: Optional[str] = None,
                    resize_method: Optional[str] = None, split: str = DEFAULT_SPLIT,
                    image_size: Optional[int] = None,
                    num_samples: int = DEFAULT_NUM_SAMPLES, data_dir: Optional[str] = None,
                    cache_dir: Optional[str] = None) -> dict:
  """Writes the reference statistics file of a dataset split (`reference.write_reference`).

  Args:
    path: the `.npz` file to write.
    dataset: the real dataset.
    classifier_spec, resize_method: as in `evaluate` (None: the dataset's default classifier).
    split: the split to read.
    image_size: the size real images are brought to first (that of the generators the file
      will be compared with); None: the dataset's own.
    num_samples: wanted number of images (fewer if the split is smaller).
    data_dir, cache_dir: as in `real_statistics`.

  Returns:
    The header written plus `path`.

  Raises:
    EvaluationError: unreadable dataset, unusable classifier, unwritable path.
  """
  try:
    info = data.prepare(dataset, split, data_dir, image_size=image_size, download=False)
  except data.DatasetError as error:
    raise EvaluationError(f"real data: {error}") from error
  if not isinstance(info, data.ImageDatasetInfo):
    raise EvaluationError(f"{dataset} is not an image dataset")
  classifier = load_evaluation_classifier(
      classifier_spec or default_classifier(dataset, info.image_shape[-1]), resize_method)
  classifier.check_image_shape(info.image_shape)
  return reference_lib.write_reference(path, classifier, dataset, split, info.image_shape,
                                       num_samples, data_dir, cache_dir)
