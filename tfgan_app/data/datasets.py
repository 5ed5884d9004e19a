"""Training data as a `tf.data` pipeline: images (float32 NHWC in [-1, 1]) or toy points.

--dataset is a TFDS image dataset (mnist, cifar10, ...), a folder of image files (folder:PATH,
`tfgan_app.data.folder`), or one of the toy distributions of
`tfgan_app.toy.distributions` (ring8, grid25, gaussian1d: float32 points [B, D], sampled fresh every
step; --split, --image_size's default, --cache, --shuffle_buffer, --download and --data_dir do
not apply to them, and --image_size is refused).

Images of TFDS datasets and folders alike are brought to --image_size and --channels by
`tfgan_app.data.preprocess` (--resize crop, pad or stretch).

The stream is a pure function of (seed, start_step): for images, epoch e is the split shuffled
with a seed derived from (seed, e) (and --random_flip flips example i by a stateless draw from
(seed, i)); for toy points, step s draws from a stateless seed derived
from (seed, s). A run that resumes at step s starts exactly where step s of an uninterrupted run
would. That is what makes resume exact without checkpointing an iterator that `keras.Model.fit`
owns.
"""

import dataclasses
import os
from typing import Any, Optional, Tuple, Union

import tensorflow as tf
import tensorflow_datasets as tfds

from tfgan_app.data import folder as folder_lib
from tfgan_app.data import preprocess
from tfgan_app.toy import distributions as toy_data

# Epochs the stream can run for; effectively unbounded.
_MAX_EPOCHS = 1 << 30
# Graph-level seed of the shuffle ops (any fixed non-zero value).
_DATA_GRAPH_SEED = 20_161_001
# --cache=disk files of a run: <workdir>/data_cache/.
CACHE_SUBDIR = "data_cache"


def cache_dir(workdir: str) -> str:
  """Where a run in `workdir` keeps its --cache=disk files."""
  return os.path.join(workdir, CACHE_SUBDIR)


class DatasetError(ValueError):
  """A dataset that cannot be used for training (unknown, not an image dataset, missing)."""


CACHE_MODES = folder_lib.CACHE_MODES
# --cache: memory, disk or none; True and False are the boolean --cache/--nocache of older
# flags.cfg files (memory and none).
CacheMode = Union[str, bool]


def normalize_cache(cache: CacheMode) -> str:
  """memory, disk or none from a --cache value (True: memory, False: none)."""
  if cache is True or cache is False:
    return "memory" if cache else "none"
  if cache not in CACHE_MODES:
    raise DatasetError(f"--cache={cache!r} is not one of {', '.join(CACHE_MODES)}")
  return cache


@dataclasses.dataclass(frozen=True)
class ImageDatasetInfo:
  """What the models need to know about a dataset's images."""
  name: str
  split: str
  num_examples: int
  native_shape: Tuple[Optional[int], Optional[int], int]  # [H, W, C]; H, W None if they vary.
  image_shape: Tuple[int, int, int]  # [H, W, C] after resizing.
  resize: str = "crop"  # --resize: how images of another size are brought to image_shape.
  # Known for folders with class subdirectories, and for TFDS datasets described with labels.
  class_names: Optional[Tuple[str, ...]] = None
  # --dataset=folder:PATH: the decoded split (`folder.FolderData`); None for TFDS.
  folder: Any = dataclasses.field(default=None, compare=False, repr=False)

  @property
  def example_shape(self) -> Tuple[int, ...]:
    """The shape of one training example: [H, W, C]."""
    return self.image_shape


@dataclasses.dataclass(frozen=True)
class PointDatasetInfo:
  """A toy distribution of points (`tfgan_app.toy.distributions`): an endless stream, no split."""
  name: str
  distribution: toy_data.GaussianMixture

  @property
  def example_shape(self) -> Tuple[int]:
    """The shape of one training example: [D]."""
    return self.distribution.sample_shape


def is_point_dataset(info) -> bool:
  return isinstance(info, PointDatasetInfo)


def is_folder(name: str) -> bool:
  """Whether --dataset names an image folder (folder:PATH)."""
  return folder_lib.is_folder(name)


def cache_name(info: ImageDatasetInfo) -> str:
  """A file-name-safe name of the dataset's images, for caches of values computed from them:
  the TFDS name, or for a folder its base name and a digest of its path and file list."""
  if info.folder is None:
    return info.name
  base = os.path.basename(os.path.normpath(info.folder.directory))
  return "".join(c if c.isalnum() else "_" for c in f"folder_{base}_{info.folder.digest()}")


def _builder(name: str, data_dir: Optional[str]):
  try:
    return tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError as error:
    raise DatasetError(
        f"unknown dataset {name!r}: --dataset accepts a TFDS image dataset name such as "
        "mnist, fashion_mnist, cifar10 or celeb_a, or a toy distribution: "
        f"{', '.join(toy_data.DISTRIBUTIONS)}") from error


def describe(name: str, split: str, data_dir: Optional[str] = None,
             image_size: Optional[int] = None, *, resize: str = "crop",
             channels: Optional[int] = None, cache: CacheMode = "memory",
             cache_dir: Optional[str] = None, labels: bool = False) -> ImageDatasetInfo:
  """Checks that `name` is a TFDS dataset with an `image` feature (or a folder) and describes it.

  Args:
    name, split, data_dir: --dataset, --split, --data_dir.
    image_size: --image_size; None: the native size.
    resize: --resize (`preprocess.RESIZE_MODES`).
    channels: --channels, 1 or 3; None: the dataset's (for folders: 3 if any image has colour).
    cache, cache_dir: --cache and the directory of --cache=disk; they matter only for folders,
      which are indexed and decoded here, once (`folder.load`).
    labels: the data must have class labels (a conditional GAN): a TFDS `label` ClassLabel
      feature, whose names become `class_names` (from the dataset's stored info, no download),
      or a folder with class subdirectories.

  Raises:
    DatasetError: unknown dataset, no `image` feature, unknown split, or an image size that
      cannot be resolved; for folders also a missing or empty directory; with `labels`, no
      labels.
  """
  try:
    preprocess.check_resize(resize)
  except ValueError as error:
    raise DatasetError(str(error)) from error
  if channels is not None and channels not in preprocess.CHANNELS:
    raise DatasetError(f"--channels={channels} is not one of 1, 3")
  if folder_lib.is_folder(name):
    info = _describe_folder(name, split, image_size, resize, channels, normalize_cache(cache),
                            cache_dir)
    if labels and not info.class_names:
      raise DatasetError(f"{name} has no class subdirectories, so no labels; a conditional GAN "
                         "needs PATH/<class>/ (or PATH/<split>/<class>/) folders")
    return info
  builder = _builder(name, data_dir)
  features = builder.info.features
  class_names = None
  if labels:
    label = features["label"] if "label" in features else None
    if not isinstance(label, tfds.features.ClassLabel):
      raise DatasetError(f"dataset {name!r} has no 'label' ClassLabel feature (features: "
                         f"{sorted(features.keys())}); a conditional GAN needs labelled data "
                         "such as mnist, fashion_mnist, cifar10 or a folder of class folders")
    class_names = tuple(str(n) for n in label.names)
  if "image" not in features or not isinstance(features["image"], tfds.features.Image):
    raise DatasetError(
        f"dataset {name!r} has no 'image' feature (features: {sorted(features.keys())}); "
        "--dataset accepts TFDS image datasets such as mnist, fashion_mnist, cifar10")
  requested_channels = channels
  height, width, channels = features["image"].shape
  if channels not in (1, 3):
    raise DatasetError(f"dataset {name!r} has {channels}-channel images; accepted: 1 or 3")
  if image_size is None:
    if height is None or height != width:
      raise DatasetError(
          f"dataset {name!r} has images of shape {features['image'].shape}, not a fixed square: "
          "pass --image_size (e.g. 64)")
    image_size = height
  num_examples = _num_examples(builder, name, split)
  return ImageDatasetInfo(name=name, split=split, num_examples=num_examples,
                          native_shape=(height, width, channels),
                          image_shape=(image_size, image_size, requested_channels or channels),
                          resize=resize, class_names=class_names)


def _describe_folder(name, split, image_size, resize, channels, cache, cache_dir):
  try:
    found = folder_lib.load(folder_lib.folder_path(name), split, image_size=image_size,
                            channels=channels, resize=resize, cache=cache, cache_dir=cache_dir)
  except folder_lib.FolderError as error:
    raise DatasetError(str(error)) from error
  return ImageDatasetInfo(
      name=name, split=split, num_examples=found.num_examples, native_shape=found.native_shape,
      image_shape=(found.image_size, found.image_size, found.channels), resize=resize,
      class_names=found.class_names, folder=found)


def _num_examples(builder, name, split) -> int:
  if not builder.info.splits:
    return 0  # Not prepared yet: known after download_and_prepare.
  try:
    return builder.info.splits[split].num_examples
  except (KeyError, ValueError) as error:
    raise DatasetError(
        f"dataset {name!r} has no split {split!r}; accepted: "
        f"{', '.join(sorted(builder.info.splits.keys()))} (or TFDS slices like train[:10%])"
    ) from error


def prepare(name: str, split: str, data_dir: Optional[str] = None, image_size=None,
            download: bool = True, *, resize: str = "crop", channels: Optional[int] = None,
            cache: CacheMode = "memory", cache_dir: Optional[str] = None, labels: bool = False):
  """Makes sure the dataset is on disk (downloading it if allowed) and describes it.

  A folder (--dataset=folder:PATH) is indexed and decoded here, once; `resize`, `channels`,
  `cache`, `cache_dir` and `labels` are as in `describe`.

  Returns:
    An `ImageDatasetInfo`, or a `PointDatasetInfo` for a toy distribution (which needs no
    files; `split`, `data_dir` and `download` are ignored for it).

  Raises:
    DatasetError: see `describe`; also --image_size given for a toy distribution, or labels
      asked of one.
  """
  if toy_data.is_toy(name):
    if labels:
      raise DatasetError(f"{name!r} is a toy distribution of points without labels; a "
                         "conditional GAN needs labelled images (e.g. mnist, or a folder of "
                         "class folders)")
    if image_size is not None:
      raise DatasetError(f"--image_size={image_size} applies to image datasets; {name!r} is a "
                         f"toy distribution of {toy_data.get(name).dim}-D points: drop "
                         "--image_size")
    return PointDatasetInfo(name, toy_data.get(name))
  options = dict(resize=resize, channels=channels, cache=cache, cache_dir=cache_dir,
                 labels=labels)
  info = describe(name, split, data_dir, image_size, **options)
  if info.folder is not None:
    return info
  builder = _builder(name, data_dir)
  if not builder.is_prepared():
    if not download:
      raise DatasetError(
          f"dataset {name!r} is not prepared in {builder.data_dir_root}: set --data_dir or "
          "$TFDS_DATA_DIR to a directory that holds it, or allow --download")
    try:
      builder.download_and_prepare()
    except Exception as error:  # Network, disk, checksum: all end the same way for the user.
      raise DatasetError(
          f"dataset {name!r} is not in {builder.data_dir_root} and could not be downloaded "
          f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); set "
          "--data_dir or $TFDS_DATA_DIR to a directory that holds it") from error
    info = describe(name, split, data_dir, image_size, **options)
  return info


def _on_images(function):
  """`function` of an image, applied to the image of an (image, label) element too."""
  def apply(*element):
    return function(element[0]) if len(element) == 1 else (function(element[0]),) + element[1:]
  return apply


def load_uint8_images(info: ImageDatasetInfo, data_dir: Optional[str] = None,
                      cache: CacheMode = True, cache_dir: Optional[str] = None,
                      labels: bool = False) -> tf.data.Dataset:
  """The split's images in a fixed order (TFDS's file order, or a folder's sorted paths), uint8
  [H, W, C] at the target size and channels (`preprocess.preprocess`; untouched when they match).

  With `labels`, elements are (image, label int32) pairs (TFDS `label`, or a folder's class
  index; DatasetError without labels). A folder's images come from where `prepare` put them
  (its own --cache); for TFDS, `cache` memory keeps the decoded split in memory, disk in a
  `tf.data` cache file under `cache_dir`, none decodes every epoch again.
  """
  if info.folder is not None:
    if labels and info.folder.labels is None:
      raise DatasetError(f"{info.name} has no class subdirectories, so no labels")
    return tf.data.Dataset.zip((info.folder.dataset(), tf.data.Dataset.from_tensor_slices(
        info.folder.labels.astype("int32")))) if labels else info.folder.dataset()
  cache = normalize_cache(cache)
  dataset = tfds.load(info.name, split=info.split, data_dir=data_dir, download=False,
                      shuffle_files=False)
  select = ((lambda example: (example["image"], tf.cast(example["label"], tf.int32))) if labels
            else (lambda example: example["image"]))
  dataset = dataset.map(select, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if tuple(info.native_shape) != tuple(info.image_shape):
    size, channels = info.image_shape[0], info.image_shape[2]
    dataset = dataset.map(
        _on_images(lambda image: preprocess.preprocess(image, size, channels, info.resize)),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if cache == "memory":
    dataset = dataset.cache()
  elif cache == "disk":
    if cache_dir is None:
      raise DatasetError("--cache=disk needs a cache directory (the run's workdir)")
    os.makedirs(cache_dir, exist_ok=True)
    safe = "".join(c if c.isalnum() else "_" for c in f"{info.name}-{info.split}")
    shape = "x".join(map(str, info.image_shape))
    dataset = dataset.cache(os.path.join(
        cache_dir, f"tfds-{safe}-{shape}-{info.resize}{'-labels' if labels else ''}"))
  return dataset


def to_unit_range(images: tf.Tensor) -> tf.Tensor:
  """uint8 [0, 255] -> float32 [-1, 1], the range of the generator's tanh output."""
  return tf.cast(images, tf.float32) / 127.5 - 1.0


def make_train_dataset(images: tf.data.Dataset, num_examples: int, batch_size: int,
                       d_steps: int = 1, seed: int = 0, start_step: int = 0,
                       shuffle_buffer: int = 60_000,
                       random_flip: bool = False) -> tf.data.Dataset:
  """The training stream from `start_step` on.

  Args:
    images: uint8 [H, W, C] examples in a fixed order (`load_uint8_images`), or (image, label)
      pairs; labels pass through (int32 batches [batch_size]).
    num_examples: number of examples in `images`.
    batch_size: global batch size.
    d_steps: discriminator updates per training step; each needs its own real batch.
    seed: data-order seed.
    start_step: training step of the first element (resume).
    shuffle_buffer: shuffle buffer in examples (>= num_examples: a full shuffle).
    random_flip: mirror each example with probability 1/2, drawn statelessly from (seed, the
      example's index in the stream) (`preprocess.random_flip`).

  Returns:
    A dataset whose elements are tuples of `d_steps` float32 batches [batch_size, H, W, C] in
    [-1, 1] (or, with labels, of `d_steps` (images, labels) pairs). Tuples rather than one [d_steps * batch_size] tensor keep each discriminator step's
    batch the same set of images however a distribution strategy splits the global batch.
  """
  if num_examples < batch_size:
    raise DatasetError(f"the split has {num_examples} images, fewer than --batch_size="
                       f"{batch_size}; use a smaller batch or a larger split")
  examples_per_step = batch_size * d_steps
  first_example = start_step * examples_per_step
  first_epoch, offset = divmod(first_example, num_examples)
  buffer_size = min(shuffle_buffer, num_examples)

  def epoch(index):
    # Epoch e has the same order in every run with this seed. This function is traced in graph
    # mode, where set_seed sets only its own graph's seed: the order then depends on --seed
    # alone, not on the process-wide seed (and TF's get_seed cannot handle a tensor op seed
    # next to a global seed of 0).
    tf.random.set_seed(_DATA_GRAPH_SEED)
    epoch_seed = tf.cast(seed, tf.int64) * 1_000_003 + index
    return images.shuffle(buffer_size, seed=epoch_seed, reshuffle_each_iteration=False)

  stream = tf.data.Dataset.range(first_epoch, _MAX_EPOCHS).flat_map(epoch).skip(offset)
  if random_flip:
    stream = stream.enumerate(start=first_example).map(
        lambda index, element: _on_images(
            lambda image: preprocess.random_flip(image, seed, index))(*tf.nest.flatten(element)),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  stream = stream.batch(batch_size, drop_remainder=True, num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=True)
  stream = stream.map(_on_images(to_unit_range), num_parallel_calls=tf.data.AUTOTUNE,
                      deterministic=True)
  stream = stream.batch(d_steps, drop_remainder=True)
  # [d_steps, ...] -> d_steps batches, or d_steps (images, labels) pairs.
  stream = stream.map(lambda *parts: tuple(
      parts[0][i] if len(parts) == 1 else tuple(part[i] for part in parts)
      for i in range(d_steps)))

  options = tf.data.Options()
  options.deterministic = True
  # Every worker reads the whole ordered stream and keeps its share of each global batch, so
  # the data order does not depend on how many workers or files there are.
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  return stream.with_options(options).prefetch(tf.data.AUTOTUNE)


def training_stream(info, batch_size: int, d_steps: int = 1, seed: int = 0, start_step: int = 0,
                    data_dir: Optional[str] = None, cache: CacheMode = True,
                    shuffle_buffer: int = 60_000, random_flip: bool = False,
                    cache_dir: Optional[str] = None, labels: bool = False) -> tf.data.Dataset:
  """The training stream of a prepared dataset from `start_step` on.

  Args:
    info: what `prepare` returned.
    Others: as in `make_train_dataset` (images) and `toy_data.make_train_dataset` (points);
      `data_dir`, `cache`, `cache_dir` (`load_uint8_images`), `shuffle_buffer` and
      `random_flip` apply to images only; `labels`: (images, labels) pairs
      (`load_uint8_images`).

  Returns:
    Tuples of `d_steps` float32 batches [batch_size, *info.example_shape] (or pairs).
  """
  if is_point_dataset(info):
    return toy_data.make_train_dataset(info.distribution, batch_size, d_steps=d_steps,
                                       seed=seed, start_step=start_step)
  images = load_uint8_images(info, data_dir, cache=cache, cache_dir=cache_dir, labels=labels)
  return make_train_dataset(images, info.num_examples, batch_size, d_steps=d_steps, seed=seed,
                            start_step=start_step, shuffle_buffer=shuffle_buffer,
                            random_flip=random_flip)
