"""Reference statistics files: a dataset's classifier features, written once, compared everywhere.

  python -m tfgan_app.evaluate --write_reference=cifar10-test-clean.npz --dataset=cifar10 \
      --classifier=inception --resize_method=clean --num_samples=10000
  python -m tfgan_app.evaluate --saved_model=EXPORT --reference=cifar10-test-clean.npz

The file is a numpy `.npz` archive:
- `header`: a JSON string: `format` (`REFERENCE_FORMAT`), `dataset`, `split`, `classifier` (the
  path or handle it was computed with), `classifier_sha256`, `resize_method` (Inception's
  protocol, null for a domain classifier), `resize` (the whole resize chain, in words),
  `image_shape` [H, W, C] (the size the real images were brought to), `num_images`,
  `feature_dim`, `created`, `tensorflow_version`.
- `features`: float32 [num_images, feature_dim], every image's features: KID and
  precision/recall need the samples themselves, and FID from them equals FID computed directly.
  About 8 MB per 1,000 Inception images (2048 features).
- `mean`: float64 [feature_dim]; `covariance`: float64 [feature_dim, feature_dim] (ddof = 1), the
  Gaussian that FID compares with, for tools that read only these two.

A reference is refused (one line) when it was made with another classifier (content hash),
resize method or image size than the evaluation that reads it.
"""

import datetime
import json
import os
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from tfgan_app.common import atomic
from tfgan_app.evaluation import metrics as metrics_lib
from tfgan_app.evaluation.protocol import EvaluationError, file_sha256
from tfgan_app.evaluation.real_stats import RealStats, real_statistics

REFERENCE_FORMAT = "tfgan_app-reference-v1"
_ARRAYS = ("header", "features", "mean", "covariance")


def write_reference(path: str, classifier, dataset: str, split: str,
                    image_shape: Sequence[int], num_images: int,
                    data_dir: Optional[str] = None, cache_dir: Optional[str] = None) -> dict:
  """Computes the real statistics of a split and writes them to the reference file `path`.

  Args:
    path: the `.npz` file to write (replaced atomically when it exists).
    classifier: a `DomainClassifier` or `InceptionClassifier`.
    dataset, split, image_shape, num_images, data_dir, cache_dir: as in
      `real_stats.real_statistics` (`num_images` is the wanted number; fewer if the split is
      smaller).

  Returns:
    The header written (see the module docstring) plus `path`.

  Raises:
    EvaluationError: the dataset cannot be read, or `path` cannot be written.
  """
  real = real_statistics(classifier, dataset, split, image_shape, num_images, data_dir,
                         cache_dir)
  features = np.asarray(real.activations.features, np.float32)  # [N, D]
  header = {
      "format": REFERENCE_FORMAT,
      "dataset": dataset,
      "split": split,
      "classifier": classifier.path,
      "classifier_sha256": classifier.sha256,
      "resize_method": classifier.resize_method,
      "resize": real.resize,
      "image_shape": [int(d) for d in real.image_shape],
      "num_images": int(real.num_real),
      "feature_dim": int(features.shape[1]),
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "tensorflow_version": tf.__version__,
  }
  features64 = features.astype(np.float64)
  path = os.path.abspath(path)
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic.replacing(path, suffix=f".tmp-{os.getpid()}.npz") as staging:
      np.savez(staging, header=np.array(json.dumps(header, sort_keys=True)),
               features=features, mean=features64.mean(axis=0),
               covariance=np.cov(features64, rowvar=False))
  except OSError as error:
    raise EvaluationError(f"cannot write the reference {path}: {error.strerror}") from error
  return dict(header, path=path)


def read_header(path: str) -> dict:
  """The header of the reference file `path`.

  Raises:
    EvaluationError: no such file, or not a reference file.
  """
  if not os.path.isfile(path):
    raise EvaluationError(f"--reference={path}: no such file; write one with python -m "
                          "tfgan_app.evaluate --write_reference=FILE")
  try:
    with np.load(path) as stored:
      header = json.loads(str(stored["header"]))
  except (OSError, KeyError, ValueError) as error:
    raise EvaluationError(f"--reference={path} is not a reference file written by "
                          "--write_reference (no readable header)") from error
  if not isinstance(header, dict) or header.get("format") != REFERENCE_FORMAT:
    raise EvaluationError(f"--reference={path} has format "
                          f"{header.get('format') if isinstance(header, dict) else None!r}; "
                          f"accepted: {REFERENCE_FORMAT}")
  return header


def read_reference(path: str, classifier, image_shape: Sequence[int]) -> RealStats:
  """The real statistics stored in the reference file `path`, checked against the evaluation.

  Args:
    path: a file written by `write_reference`.
    classifier: the classifier the generated images are measured with.
    image_shape: [H, W, C] of the generated images.

  Returns:
    A `RealStats` with the stored features (no logits: no metric needs real logits) and
    `reference` = {"path", "sha256" of the file, "header"}.

  Raises:
    EvaluationError: unreadable file, or a reference made with another classifier, resize
      method or image size (the message names the difference).
  """
  path = os.path.abspath(path)
  header = read_header(path)
  image_shape = [int(d) for d in image_shape]
  for key, ours, label in (
      ("classifier_sha256", classifier.sha256, "classifier (sha256)"),
      ("resize_method", classifier.resize_method, "--resize_method"),
      ("image_shape", image_shape, "image size")):
    if header.get(key) != ours:
      raise EvaluationError(
          f"--reference={path} was made with {label} {header.get(key)} ({header['classifier']})"
          f", this evaluation uses {ours} ({classifier.path}); use a reference written with the "
          "same classifier, --resize_method and image size (--write_reference)")
  try:
    with np.load(path) as stored:
      features = np.asarray(stored["features"], np.float32)
  except (OSError, KeyError, ValueError) as error:
    raise EvaluationError(f"--reference={path}: cannot read its features ({error})") from error
  if features.shape != (header["num_images"], header["feature_dim"]):
    raise EvaluationError(f"--reference={path}: features of shape {list(features.shape)}, the "
                          f"header says [{header['num_images']}, {header['feature_dim']}]")
  return RealStats(activations=metrics_lib.Activations(features=features, logits=None),
                   dataset=header["dataset"], split=header["split"],
                   num_real=int(header["num_images"]), image_shape=tuple(image_shape),
                   classifier_sha256=header["classifier_sha256"], resize=header["resize"],
                   resize_method=header["resize_method"], cache_path=None,
                   from_cache=True,
                   reference={"path": path, "sha256": file_sha256(path), "header": header})

