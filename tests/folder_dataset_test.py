"""--dataset=folder:PATH and the shared preprocessing (--resize, --channels, --random_flip,
--cache), on small folders built from the offline CIFAR-10 JPEGs."""

import copy
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import flags

from conftest import REPO_ROOT
from tfgan_app.common import config as config_lib
from tfgan_app.data import datasets as data
from tfgan_app.data import labelled
from tfgan_app.data import preprocess
from tfgan_app.training import flags as app_flags

CLASSES = ("airplane", "cat", "dog")
PER_CLASS = 10


def _cifar_dir() -> str:
  path = os.path.join(REPO_ROOT, "..", "shared", "images", "cifar10_jpeg")
  if not os.path.isdir(os.path.join(path, "train", "cat")):
    pytest.fail(f"the offline CIFAR-10 JPEGs are not under {path}")
  return os.path.abspath(path)


def _copy_classes(source_split: str, target: str, per_class: int = PER_CLASS):
  for name in CLASSES:
    source = os.path.join(_cifar_dir(), source_split, name)
    os.makedirs(os.path.join(target, name))
    for file in sorted(os.listdir(source))[:per_class]:
      shutil.copy(os.path.join(source, file), os.path.join(target, name, file))


def _write_png(path, pixels):
  tf.io.write_file(path, tf.io.encode_png(np.asarray(pixels, np.uint8)))


def _read(path):
  return tf.io.decode_image(tf.io.read_file(path), expand_animations=False).numpy()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  """3 classes x 10 CIFAR JPEGs, plus a corrupt .jpg, a .txt, a 40x48 colour PNG, a grey PNG
  and an RGBA PNG."""
  root = str(tmp_path_factory.mktemp("images"))
  _copy_classes("train", root)
  with open(os.path.join(root, "cat", "broken.jpg"), "wb") as f:
    f.write(b"\xff\xd8\xff\xe0 not really a JPEG")
  with open(os.path.join(root, "dog", "notes.txt"), "w") as f:
    f.write("not an image\n")
  rng = np.random.default_rng(0)
  _write_png(os.path.join(root, "airplane", "wide.png"), rng.integers(0, 256, (40, 48, 3)))
  _write_png(os.path.join(root, "cat", "grey.png"), rng.integers(0, 256, (32, 32, 1)))
  _write_png(os.path.join(root, "dog", "rgba.png"), rng.integers(0, 256, (32, 32, 4)))
  return root


def _prepare(path, **options):
  options.setdefault("image_size", 32)
  return data.prepare(f"folder:{path}", options.pop("split", "train"), **options)


def _images(info):
  return np.stack(list(data.load_uint8_images(info).as_numpy_iterator()))


def test_classes_labels_counts_and_one_report(folder, capsys):
  info = _prepare(folder)
  report = capsys.readouterr()
  assert info.class_names == CLASSES
  assert info.num_examples == 3 * PER_CLASS + 3
  assert info.image_shape == (32, 32, 3) and info.native_shape == (None, None, 3)
  found = info.folder
  assert found.ignored == 1 and found.unreadable == (os.path.join("cat", "broken.jpg"),)
  np.testing.assert_array_equal(np.bincount(found.labels), [PER_CLASS + 1] * 3)
  assert found.files[0] == os.path.join("airplane", "0000.jpg")  # Sorted, deterministic.
  assert list(found.files) == sorted(found.files)
  assert [found.class_names[label] for label in found.labels] == [
      path.split(os.sep)[0] for path in found.files]
  # Reported once, before training: the count and the path of the corrupt file.
  assert report.err.count("Skipped 1 unreadable") == 1
  assert os.path.join(folder, "cat", "broken.jpg") in report.err
  assert "33 images in 3 classes (airplane, cat, dog); 1 other files ignored" in report.err
  images = _images(info)
  assert images.shape == (33, 32, 32, 3) and images.dtype == np.uint8
  # A 32x32 JPEG is used as decoded: no resampling.
  np.testing.assert_array_equal(images[0], _read(os.path.join(folder, "airplane", "0000.jpg")))


def test_grey_and_rgba_are_converted(folder):
  info = _prepare(folder)
  images = dict(zip(info.folder.files, _images(info)))
  grey = _read(os.path.join(folder, "cat", "grey.png"))
  np.testing.assert_array_equal(images[os.path.join("cat", "grey.png")], np.repeat(grey, 3, -1))
  rgba = _read(os.path.join(folder, "dog", "rgba.png"))
  np.testing.assert_array_equal(images[os.path.join("dog", "rgba.png")], rgba[..., :3])

  grey_info = _prepare(folder, channels=1, cache="none")
  assert grey_info.image_shape == (32, 32, 1)
  grey_images = dict(zip(grey_info.folder.files, _images(grey_info)))
  np.testing.assert_array_equal(grey_images[os.path.join("cat", "grey.png")], grey)
  rgb = _read(os.path.join(folder, "dog", "0000.jpg")).astype(np.float32)
  luma = np.round(rgb @ np.array([0.2989, 0.5870, 0.1140], np.float32))[..., None]
  difference = np.abs(grey_images[os.path.join("dog", "0000.jpg")].astype(int) - luma)
  assert difference.max() <= 1 and np.mean(difference) < 0.05


def test_default_channels_follow_the_colour_of_the_images(tmp_path, folder):
  for name in ("grey.png", "0000.jpg"):
    os.makedirs(tmp_path / "mixed", exist_ok=True)
    shutil.copy(os.path.join(folder, "cat", name), tmp_path / "mixed" / name)
  rgb_grey = np.repeat(_read(os.path.join(folder, "cat", "grey.png")), 3, -1)
  os.makedirs(tmp_path / "grey")
  _write_png(str(tmp_path / "grey" / "a.png"), rgb_grey[..., :1])
  _write_png(str(tmp_path / "grey" / "b.png"), rgb_grey)  # RGB with R = G = B: no colour.
  grey = _prepare(tmp_path / "grey", image_size=None)
  assert grey.image_shape == (32, 32, 1) and grey.class_names is None
  np.testing.assert_array_equal(_images(grey)[1], rgb_grey[..., :1])
  assert _prepare(tmp_path / "mixed").image_shape == (32, 32, 3)


def test_resize_modes():
  # H=16, W=32, white: pad centres it on black, 8 rows above and below, then halves it.
  white = tf.fill([16, 32, 1], tf.constant(255, tf.uint8))
  padded = preprocess.resize(white, 16, "pad").numpy()[..., 0]
  np.testing.assert_array_equal(padded[:4], 0)
  np.testing.assert_array_equal(padded[4:12], 255)
  np.testing.assert_array_equal(padded[12:], 0)
  # Left half black, right half white: the centre 16x16 crop is half and half.
  halves = np.concatenate([np.zeros([16, 16, 1]), np.full([16, 16, 1], 255)], 1).astype(np.uint8)
  cropped = preprocess.resize(tf.constant(halves), 8, "crop").numpy()[..., 0]
  np.testing.assert_array_equal(cropped[:, :4], 0)
  np.testing.assert_array_equal(cropped[:, 4:], 255)
  # Stretch keeps everything: a horizontal gradient 16 * column, 8x16 -> 8x8, area-averages
  # column pairs: (32 j + 32 j + 16) / 2 = 32 j + 8.
  gradient = np.tile((16 * np.arange(16, dtype=np.uint8))[None, :, None], [8, 1, 1])
  stretched = preprocess.resize(tf.constant(gradient), 8, "stretch").numpy()[..., 0]
  np.testing.assert_array_equal(stretched, np.tile(32 * np.arange(8) + 8, [8, 1]))
  # The target size already: untouched in every mode (for TFDS: MNIST stays bit-identical).
  square = halves[:, 8:24]
  for mode in preprocess.RESIZE_MODES:
    np.testing.assert_array_equal(preprocess.resize(tf.constant(square), 16, mode), square)


def test_resize_mode_applies_to_the_folder_image_of_another_size(folder):
  wide = _read(os.path.join(folder, "airplane", "wide.png"))  # 40 high, 48 wide.
  for mode in preprocess.RESIZE_MODES:
    info = _prepare(folder, resize=mode, cache="none")
    images = dict(zip(info.folder.files, _images(info)))
    expected = preprocess.resize(tf.constant(wide), 32, mode).numpy()
    np.testing.assert_array_equal(images[os.path.join("airplane", "wide.png")], expected)
  crop = tf.image.resize(wide[:, 4:44], [32, 32], method="area", antialias=True)
  np.testing.assert_array_equal(
      preprocess.resize(tf.constant(wide), 32, "crop"),
      tf.cast(tf.clip_by_value(tf.round(crop), 0, 255), tf.uint8))


@pytest.mark.parametrize("kind", ["missing", "file", "empty", "unreadable"])
def test_unusable_folders_fail_in_one_line_naming_the_path(tmp_path, kind):
  path = tmp_path / kind
  if kind == "file":
    path.write_text("x")
  elif kind == "empty":
    path.mkdir()
  elif kind == "unreadable":
    path.mkdir()
    (path / "a.txt").write_text("x")
    (path / "b.png").write_bytes(b"\x89PNG broken")
  with pytest.raises(data.DatasetError) as error:
    _prepare(path)
  message = str(error.value)
  assert str(path) in message and "\n" not in message


def test_split_subdirectory_rule(tmp_path, folder):
  for split in ("train", "test"):
    _copy_classes(split, str(tmp_path / "split" / split), per_class=2)
  test = _prepare(tmp_path / "split", split="test")
  assert test.folder.directory == str(tmp_path / "split" / "test")
  assert test.class_names == CLASSES and test.num_examples == 6
  assert _prepare(tmp_path / "split").folder.directory == str(tmp_path / "split" / "train")
  with pytest.raises(data.DatasetError, match=r"has no 'validation' subdirectory "
                     r"\(subdirectories: test, train\)") as error:
    _prepare(tmp_path / "split", split="validation")
  assert str(tmp_path / "split") in str(error.value)
  assert _prepare(folder).folder.directory == folder  # No train/: the folder is the split.
  with pytest.raises(data.DatasetError, match="no 'test' subdirectory"):
    _prepare(folder, split="test")


def _batches(info, steps, workdir, start_step=0, cache="memory", random_flip=False):
  stream = data.training_stream(info, batch_size=8, seed=4, start_step=start_step, cache=cache,
                                shuffle_buffer=1000, random_flip=random_flip,
                                cache_dir=data.cache_dir(str(workdir)))
  return [batch.numpy() for (batch,) in stream.take(steps)]


def test_cache_modes_give_identical_batches_and_disk_caches_under_the_workdir(
    tmp_path, folder, capsys):
  memory = _batches(_prepare(folder), 6, tmp_path)
  none = _batches(_prepare(folder, cache="none"), 6, tmp_path)
  cache_dir = data.cache_dir(str(tmp_path / "run"))
  disk_info = _prepare(folder, cache="disk", cache_dir=cache_dir)
  assert disk_info.folder.images is None
  assert disk_info.folder.record_path.startswith(os.path.join(str(tmp_path), "run", "data_cache"))
  assert os.path.isfile(disk_info.folder.record_path)
  disk = _batches(disk_info, 6, tmp_path / "run")
  capsys.readouterr()
  again = _prepare(folder, cache="disk", cache_dir=cache_dir)  # Reads the file, decodes nothing.
  output = capsys.readouterr()
  assert "from the cache" in output.out and output.err.count("Skipped 1 unreadable") == 1
  assert again.class_names == CLASSES and again.num_examples == disk_info.num_examples
  for stream in (none, disk, _batches(again, 6, tmp_path / "run")):
    for expected, actual in zip(memory, stream):
      np.testing.assert_array_equal(actual, expected)


def test_resumed_stream_equals_the_uninterrupted_one(tmp_path, folder):
  info = _prepare(folder)  # 33 images, 8 per step: step 6 lies in the second epoch.
  for flip in (False, True):
    full = _batches(info, 10, tmp_path, random_flip=flip)
    resumed = _batches(info, 4, tmp_path, start_step=6, random_flip=flip)
    for offset, batch in enumerate(resumed):
      np.testing.assert_array_equal(batch, full[6 + offset])
    assert not np.array_equal(full[0], full[4])  # Epochs are shuffled differently.


def test_random_flip_is_deterministic_and_mirrors_about_half(tmp_path, folder):
  info = _prepare(folder)
  plain = np.concatenate(_batches(info, 4, tmp_path))
  flipped = np.concatenate(_batches(info, 4, tmp_path, random_flip=True))
  np.testing.assert_array_equal(flipped, np.concatenate(_batches(info, 4, tmp_path,
                                                                 random_flip=True)))
  mirrored = [not np.array_equal(a, b) for a, b in zip(plain, flipped)]
  for a, b, flip in zip(plain, flipped, mirrored):
    np.testing.assert_array_equal(b, a[:, ::-1] if flip else a)
  assert 8 <= sum(mirrored) <= 24  # 32 fair coins.


def test_tfds_images_at_native_size_are_untouched(data_dir):
  info = data.prepare("mnist", "train[:64]", data_dir, download=False)
  raw = tfds.load("mnist", split="train[:64]", data_dir=data_dir, batch_size=-1)["image"]
  np.testing.assert_array_equal(_images(info), raw.numpy())
  rgb = data.prepare("mnist", "train[:64]", data_dir, download=False, channels=3)
  assert rgb.image_shape == (28, 28, 3)
  np.testing.assert_array_equal(_images(rgb), np.repeat(raw.numpy(), 3, -1))
  padded = data.prepare("mnist", "train[:64]", data_dir, image_size=32, resize="pad",
                        download=False)
  np.testing.assert_array_equal(
      _images(padded), np.stack([preprocess.resize(image, 32, "pad") for image in raw]))


def test_old_boolean_cache_flags_still_parse(tmp_path):
  for line, expected in (("--cache", "memory"), ("--nocache", "none"), ("--cache=disk", "disk")):
    path = tmp_path / "flags.cfg"
    path.write_text(f"--dataset=mnist\n{line}\n")
    assert config_lib.TrainConfig.from_flagfile(str(path)).cache == expected
  assert config_lib.TrainConfig(cache=False).cache == "none"
  assert "--cache=memory" in config_lib.TrainConfig().to_flagfile()
  for argv, expected in ((["--cache"], "memory"), (["--nocache"], "none"),
                         (["--cache=disk"], "disk"), ([], "memory")):
    values = flags.FlagValues()
    flags.DEFINE_flag(copy.deepcopy(app_flags.FLAGS["cache"]), values)
    values(["train"] + argv)
    assert values.cache == expected
  with pytest.raises(flags.IllegalFlagValueError, match="memory|disk|none"):
    values = flags.FlagValues()
    flags.DEFINE_flag(copy.deepcopy(app_flags.FLAGS["cache"]), values)
    values(["train", "--cache=ram"])


def test_labelled_folder_for_the_classifier(tmp_path):
  for split in ("train", "test"):
    _copy_classes(split, str(tmp_path / split), per_class=3)
  name = f"folder:{tmp_path}"
  info = labelled.describe_dataset(name)
  assert info == {"image_shape": [32, 32, 3], "num_classes": 3, "class_names": list(CLASSES)}
  images, labels = labelled.load_split(name, "train[:5]")
  assert images.shape == (5, 32, 32, 3) and images.dtype == np.uint8
  np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1])
  with pytest.raises(data.DatasetError, match="no 'test' and 'train' subdirectories"):
    labelled.describe_dataset(f"folder:{tmp_path / 'train'}")


def test_train_command_on_a_folder_reports_trains_and_exports_class_names(tmp_path, folder):
  workdir = tmp_path / "run"
  command = [sys.executable, "-m", "tfgan_app.train", f"--dataset=folder:{folder}",
             "--architecture=dcgan", "--image_size=32", "--train_steps=2", "--batch_size=8",
             "--latent_dim=8", "--g_filters=8", "--d_filters=8", "--log_every=1",
             "--sample_every=2", "--checkpoint_every=2", "--num_sample_images=4",
             "--mixed_precision=float32", "--cache", f"--workdir={workdir}"]
  result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stderr.count("Skipped 1 unreadable or corrupt image files") == 1
  assert os.path.join(folder, "cat", "broken.jpg") in result.stderr
  with open(workdir / "run_spec.json") as f:
    assert json.load(f)["class_names"] == list(CLASSES)
  assert "--cache=memory" in (workdir / "flags.cfg").read_text()
  version = workdir / "export" / "dcgan" / "2"
  with open(version / "assets.extra" / "tfgan_app_metadata.json") as f:
    metadata = json.load(f)
  assert metadata["class_names"] == list(CLASSES) and metadata["image_shape"] == [32, 32, 3]
  generate = tf.saved_model.load(str(version)).signatures["serving_default"]
  images = next(iter(generate(latents=tf.zeros([2, 8])).values()))
  assert images.dtype == tf.uint8 and images.shape == (2, 32, 32, 3)

  missing = subprocess.run(command[:3] + [f"--dataset=folder:{tmp_path / 'nothing'}",
                                          f"--workdir={tmp_path / 'other'}"],
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                           check=False)
  assert missing.returncode != 0
  lines = [line for line in missing.stderr.splitlines() if "tfgan_app.train: " in line]
  assert lines == [f"python -m tfgan_app.train: error: --dataset=folder:{tmp_path / 'nothing'}: "
                   "no such directory"]
