"""Real-data statistics: classifier activations of a split's images, cached on disk.

The real images are the first `num_real` images of a split in TFDS's file order, centre-cropped
and area-resized to the generator's size when the sizes differ. Activations are cached per
(dataset, split, image size, classifier content hash, resize method, num_real) under the cache
directory (default $TFGAN_APP_CACHE_DIR or ~/.cache/tfgan_app).
"""

import dataclasses
import os
import sys
from typing import Optional, Sequence

import numpy as np

from tfgan_app.common import atomic
from tfgan_app.data import datasets as data
from tfgan_app.evaluation import metrics as metrics_lib
from tfgan_app.evaluation.protocol import (  # pylint: disable=g-multiple-import
    CACHE_ENV, GENERATION_BATCH_SIZE, _CACHE_VERSION, EvaluationError)



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
  resize_method: Optional[str] = None  # Inception's protocol; None for domain classifiers.
  cache_path: Optional[str] = None
  from_cache: bool = False
  reference: Optional[dict] = None  # Path and header of a reference file it was read from.


def default_cache_dir() -> str:
  return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache",
                                                   "tfgan_app")


def _cache_path(cache_dir, dataset, split, image_shape, classifier_sha256, num_real,
                resize_method=None) -> str:
  safe_dataset, safe_split = ("".join(c if c.isalnum() or c in "-_" else "_" for c in text)
                              for text in (dataset, split))
  # Inception's features depend on the resize protocol; domain classifiers keep the old names.
  method = f"-{resize_method}" if resize_method else ""
  name = (f"real-{safe_dataset}-{safe_split}-{'x'.join(map(str, image_shape))}-"
          f"{classifier_sha256[:16]}{method}-{num_real}-v{_CACHE_VERSION}.npz")
  return os.path.join(cache_dir, "real_stats", name)


def prepare_real(dataset: str, split: str, image_shape: Sequence[int],
                 data_dir: Optional[str] = None):
  """`data.prepare` of the real images compared with a generator of `image_shape` images.

  Raises:
    EvaluationError: the dataset or split is unavailable.
  """
  try:
    # A folder's images are converted to the generator's channels; a TFDS dataset's must match.
    channels = image_shape[2] if data.is_folder(dataset) else None
    return data.prepare(dataset, split, data_dir, image_size=image_shape[0], download=False,
                        channels=channels)
  except data.DatasetError as error:
    raise EvaluationError(f"real data: {error}") from error


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
  info = prepare_real(dataset, split, image_shape, data_dir)
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
                      num_real, classifier.resize_method) if cache_dir else None)
  common = dict(dataset=dataset, split=split, num_real=num_real, image_shape=image_shape,
                classifier_sha256=classifier.sha256, resize=resize,
                resize_method=classifier.resize_method, cache_path=path)
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
