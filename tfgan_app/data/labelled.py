"""Labelled image datasets for the domain classifier: TFDS (`image` and `label` features) or
image folders with class subdirectories (`--dataset=folder:PATH`, PATH/train and PATH/test)."""

import functools
import re
from typing import Optional

import tensorflow_datasets as tfds

from tfgan_app.data import datasets as data
from tfgan_app.data import folder as folder_lib

TRAIN_SPLIT = "train"
TEST_SPLIT = "test"


def describe_dataset(dataset: str, data_dir: Optional[str] = None,
                     download: bool = True) -> dict:
  """Makes sure `dataset` is a prepared TFDS image classification dataset and describes it.

  Returns:
    {"image_shape": [H, W, C], "num_classes": int, "class_names": [str]}.

  Raises:
    data.DatasetError: unknown dataset, no `image` feature, no `label` class feature, no
      train or test split, or not on disk and not downloadable.
  """
  if folder_lib.is_folder(dataset):
    return _describe_folder(dataset)
  # Features first: they are known without the data, so a wrong --dataset fails before any
  # download is attempted. (data.describe's messages speak of the GAN's --image_size, hence
  # these checks of our own.)
  accepted = "--dataset accepts TFDS image classification datasets such as mnist, fashion_mnist"
  try:
    features = tfds.builder(dataset, data_dir=data_dir).info.features
  except tfds.core.registered.DatasetNotFoundError as error:
    raise data.DatasetError(f"unknown dataset {dataset!r}: {accepted}") from error
  image = features["image"] if "image" in features else None
  label = features["label"] if "label" in features else None
  for name, value, kind in (("image", image, tfds.features.Image),
                            ("label", label, tfds.features.ClassLabel)):
    if not isinstance(value, kind):
      raise data.DatasetError(
          f"dataset {dataset!r} has no {name!r} feature of type {kind.__name__} (features: "
          f"{sorted(features.keys())}); {accepted}")
  if None in image.shape:
    raise data.DatasetError(f"dataset {dataset!r} has images of varying size {image.shape}; "
                            f"the classifier needs a fixed [H, W, C]; {accepted}")
  # image_size = the native height: no resizing, and no square-image requirement.
  data.prepare(dataset, TRAIN_SPLIT, data_dir, image_size=image.shape[0], download=download)
  builder = tfds.builder(dataset, data_dir=data_dir)  # Again: splits are known once prepared.
  if TEST_SPLIT not in builder.info.splits:
    raise data.DatasetError(f"dataset {dataset!r} has no {TEST_SPLIT!r} split to evaluate on "
                            f"(splits: {sorted(builder.info.splits.keys())})")
  return {"image_shape": [int(d) for d in image.shape],
          "num_classes": int(label.num_classes),
          "class_names": list(label.names)}


def load_split(dataset: str, split: str, data_dir: Optional[str] = None):
  """The whole split decoded once into memory: (uint8 [N, H, W, C], int64 [N]) numpy arrays.

  `batch_size=-1` decodes MNIST's 60,000 PNGs in about 3 s here, against about 5 s through a
  per-example `tf.data` map; every epoch then reads memory.
  """
  if folder_lib.is_folder(dataset):
    name, limit = _split_and_limit(split)
    found = _folder_split(dataset, name)
    return found.images[:limit], found.labels[:limit]
  arrays = tfds.load(dataset, split=split, data_dir=data_dir, download=False, batch_size=-1)
  return arrays["image"].numpy(), arrays["label"].numpy()


def _split_and_limit(split: str):
  """"train" -> ("train", None); "train[:500]" -> ("train", 500): the slices folders accept."""
  match = re.fullmatch(r"(\w+)\[:(\d+)\]", split)
  return (match.group(1), int(match.group(2))) if match else (split, None)


@functools.lru_cache(maxsize=2)
def _folder_split(dataset: str, split: str) -> folder_lib.FolderData:
  """A folder split decoded once into memory at its native size (kept for `load_split`)."""
  try:
    found = folder_lib.load(folder_lib.folder_path(dataset), split, cache="memory")
  except folder_lib.FolderError as error:
    raise data.DatasetError(str(error)) from error
  if found.class_names is None:
    raise data.DatasetError(
        f"folder {found.directory} has no class subdirectories (every image must sit in one, "
        "e.g. train/cat/1.jpg); the classifier needs labels")
  return found


def _describe_folder(dataset: str) -> dict:
  path = folder_lib.folder_path(dataset)
  train = _folder_split(dataset, TRAIN_SPLIT)
  if train.directory == path:
    raise data.DatasetError(f"folder {path} has no {TEST_SPLIT!r} and {TRAIN_SPLIT!r} "
                            "subdirectories; the classifier trains on PATH/train and evaluates "
                            "on PATH/test")
  test = _folder_split(dataset, TEST_SPLIT)
  if test.class_names != train.class_names:
    raise data.DatasetError(f"folder {path}: the classes of {TRAIN_SPLIT} "
                            f"({', '.join(train.class_names)}) and {TEST_SPLIT} "
                            f"({', '.join(test.class_names)}) differ")
  shape = [train.image_size, train.image_size, train.channels]
  if [test.image_size, test.image_size, test.channels] != shape:
    raise data.DatasetError(f"folder {path}: {TEST_SPLIT} images are not {shape} like those of "
                            f"{TRAIN_SPLIT}")
  return {"image_shape": shape, "num_classes": len(train.class_names),
          "class_names": list(train.class_names)}
