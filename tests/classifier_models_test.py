"""The classifier architectures: choice by image shape, shapes, the augmentation, a colour run."""

import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO_ROOT
from tfgan_app.evaluation import classifier
from tfgan_app.evaluation import classifier_models as models

_CIFAR_JPEGS = os.path.join(REPO_ROOT, "..", "shared", "images", "cifar10_jpeg")


def test_auto_picks_by_channels_and_the_feature_layers_have_their_widths():
  assert models.resolve_architecture("auto", (32, 32, 3)) == "colour_cnn"
  assert models.resolve_architecture("auto", (28, 28, 1)) == "small_cnn"
  assert models.resolve_architecture("small_cnn", (32, 32, 3)) == "small_cnn"
  with pytest.raises(ValueError, match="accepted: auto, small_cnn, colour_cnn"):
    models.resolve_architecture("resnet50", (32, 32, 3))
  for shape, architecture, width in (((32, 32, 3), "auto", 256), ((28, 28, 1), "auto", 128),
                                     ((64, 64, 3), "colour_cnn", 256)):
    model = models.build_model(shape, 10, architecture=architecture)
    images = tf.zeros([2, *shape])
    assert model(images).shape == (2, 10)
    assert classifier.feature_model(model)(images).shape == (2, width)


def test_augment_shifts_by_at_most_pad_and_flips_about_half():
  images = np.random.default_rng(0).integers(0, 256, (200, 8, 8, 3), dtype=np.uint8)
  out = models.augment(tf.constant(images), tf.constant([3, 4]), pad=2).numpy()
  assert out.shape == images.shape and out.dtype == np.uint8
  padded = np.pad(images, [(0, 0), (2, 2), (2, 2), (0, 0)], mode="reflect")
  flips = 0
  for index in range(len(images)):
    candidates = [(dy, dx, flip) for dy in range(5) for dx in range(5) for flip in (0, 1)
                  if np.array_equal(out[index], (lambda crop: crop[:, ::-1] if flip else crop)(
                      padded[index, dy:dy + 8, dx:dx + 8]))]
    assert candidates, index  # Every output is one crop of the padded image, maybe mirrored.
    flips += candidates[0][2]
  assert 60 < flips < 140
  again = models.augment(tf.constant(images), tf.constant([3, 4]), pad=2).numpy()
  np.testing.assert_array_equal(out, again)  # Stateless: the seed decides.


def test_colour_folder_trains_the_colour_cnn_and_records_it(tmp_path):
  root = tmp_path / "colours"
  for split, count in (("train", 48), ("test", 16)):
    for class_name in ("airplane", "frog"):
      sources = sorted(glob.glob(os.path.join(_CIFAR_JPEGS, split, class_name, "*.jpg")))[:count]
      if len(sources) < count:
        pytest.fail(f"CIFAR-10 JPEGs not found under {_CIFAR_JPEGS}")
      os.makedirs(root / split / class_name)
      for source in sources:
        (root / split / class_name / os.path.basename(source)).write_bytes(
            open(source, "rb").read())
  result = classifier.train_classifier(f"folder:{root}", None, str(tmp_path / "out"), epochs=1,
                                       batch_size=16, compute_dtype="float32")
  assert result["architecture"] == "colour_cnn" and result["feature_dim"] == 256
  assert result["dataset"] == f"folder:{os.path.realpath(root)}"
  assert result["class_names"] == ["airplane", "frog"] and result["train_examples"] == 96
  assert 0.0 <= result["test_accuracy"] <= 1.0 and result["test_examples"] == 32
  with open(tmp_path / "out" / classifier.METADATA_FILE) as f:
    assert json.load(f)["architecture"] == "colour_cnn"
  loaded = classifier.load_classifier(result["path"])
  assert loaded.image_shape == (32, 32, 3) and loaded.feature_dim == 256
