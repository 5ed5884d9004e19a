"""A directory of image files as a dataset: `--dataset=folder:PATH`.

Layout: if PATH has a subdirectory named by --split (train, test, ...), that is the split;
otherwise PATH itself is the whole train split. Images are found recursively, in sorted path
order (the dataset's fixed order, as a TFDS split's file order). When every image sits in a
first-level subdirectory, those subdirectories are the classes (sorted names; label = index).

Files are images by extension (.jpg/.jpeg, .png, .bmp, .gif: GIFs give their first frame) and
only if `tf.io.decode_image` decodes them: other files are ignored and counted, files that do
not decode are skipped and reported once. Each image is decoded once, in the indexing pass,
which also resizes it (`preprocess`) and keeps it in memory (--cache=memory), writes it to a
TFRecord file under the workdir (--cache=disk; a later run on the same files reads that file and
decodes nothing), or only validates it (--cache=none: every epoch decodes the files again).
"""

import dataclasses
import hashlib
import json
import os
import sys
from typing import List, Optional, Tuple

import numpy as np
import tensorflow as tf

from tfgan_app.data import preprocess

PREFIX = "folder:"
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
CACHE_MODES = ("memory", "disk", "none")
# A progress line every this many files while indexing and decoding.
PROGRESS_EVERY = 5_000
# Paths named in the report of unreadable files.
REPORT_PATHS = 5
# --cache=memory refuses a split whose decoded images need more than this fraction of the RAM.
MAX_MEMORY_FRACTION = 0.5
_CACHE_VERSION = 2
# Images per batch of the decoding pass.
_DECODE_BATCH = 256
_RECORD_FEATURES = {"image": tf.io.FixedLenFeature([], tf.string)}


class FolderError(ValueError):
  """A folder that cannot be used (data.DatasetError derives its handling from ValueError)."""


def is_folder(name: str) -> bool:
  return name.startswith(PREFIX)


def folder_path(name: str) -> str:
  return name[len(PREFIX):]


def split_directory(path: str, split: str) -> str:
  """The directory of `split`: PATH/<split> if it exists, else PATH itself for the train split.

  Raises:
    FolderError: PATH missing or not a directory, or no such split subdirectory.
  """
  if not path:
    raise FolderError("--dataset=folder: needs a directory, e.g. --dataset=folder:photos/")
  if not os.path.exists(path):
    raise FolderError(f"--dataset=folder:{path}: no such directory")
  if not os.path.isdir(path):
    raise FolderError(f"--dataset=folder:{path}: not a directory")
  candidate = os.path.join(path, split)
  if os.path.isdir(candidate):
    return candidate
  if split == "train":
    return path
  found = sorted(name for name in os.listdir(path) if os.path.isdir(os.path.join(path, name)))
  raise FolderError(f"folder {path} has no {split!r} subdirectory (subdirectories: "
                    f"{', '.join(found) or 'none'}); without one the folder itself is the "
                    "train split only")


def list_files(directory: str) -> Tuple[List[str], int]:
  """(image candidates by extension as sorted paths relative to `directory`, other files)."""
  candidates, others = [], 0
  for root, dirs, files in os.walk(directory, followlinks=True):
    dirs.sort()
    for name in files:
      if name.startswith("."):
        continue  # .DS_Store, editor and sync files: not the user's data.
      if os.path.splitext(name)[1].lower() in EXTENSIONS:
        candidates.append(os.path.relpath(os.path.join(root, name), directory))
      else:
        others += 1
  candidates.sort(key=lambda relative: relative.split(os.sep))
  return candidates, others


@dataclasses.dataclass
class FolderData:
  """A decoded split: where its images are and what the indexing pass found."""
  directory: str
  files: Tuple[str, ...]  # Readable images, relative to `directory`, in dataset order.
  labels: Optional[np.ndarray]  # int64 [N] class indices, or None without class folders.
  class_names: Optional[Tuple[str, ...]]
  ignored: int  # Files without an image extension.
  unreadable: Tuple[str, ...]  # Files with one that did not decode.
  native_shape: Tuple[Optional[int], Optional[int], int]
  image_size: int
  channels: int
  resize: str
  cache: str
  images: Optional[np.ndarray] = None  # --cache=memory: uint8 [N, S, S, C].
  record_path: Optional[str] = None  # --cache=disk.

  @property
  def num_examples(self) -> int:
    return len(self.files)

  def digest(self) -> str:
    """16 hex digits of SHA-256 over the directory, the image files and the preprocessing."""
    text = "\n".join((os.path.abspath(self.directory), self.resize, str(self.image_size),
                      str(self.channels)) + self.files)
    return hashlib.sha256(text.encode()).hexdigest()[:16]

  def report(self) -> str:
    """One line on what was found, plus a short block on the files that were skipped."""
    classes = (f" in {len(self.class_names)} classes ({', '.join(self.class_names)})"
               if self.class_names else "")
    text = (f"folder {self.directory}: {self.num_examples} images{classes}; "
            f"{self.ignored} other files ignored")
    if self.unreadable:
      shown = "\n".join(f"  {os.path.join(self.directory, p)}"
                        for p in self.unreadable[:REPORT_PATHS])
      more = len(self.unreadable) - REPORT_PATHS
      text += (f"\nSkipped {len(self.unreadable)} unreadable or corrupt image files:\n{shown}"
               + (f"\n  ... and {more} more" if more > 0 else ""))
    return text

  def dataset(self) -> tf.data.Dataset:
    """uint8 [S, S, C] images in the folder's order."""
    size, channels = self.image_size, self.channels
    if self.images is not None:
      return tf.data.Dataset.from_tensor_slices(self.images)
    if self.record_path is not None:
      def parse(record):
        example = tf.io.parse_single_example(record, _RECORD_FEATURES)
        image = tf.reshape(tf.io.decode_raw(example["image"], tf.uint8), [size, size, -1])
        # Stored with --channels, or RGB (see _decode_all): channel 0 is the grey image then.
        return tf.ensure_shape(image[..., :channels], [size, size, channels])
      return tf.data.TFRecordDataset(self.record_path).map(
          parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    paths = [os.path.join(self.directory, p) for p in self.files]
    mode = self.resize

    def decode(path):
      image = tf.io.decode_image(tf.io.read_file(path), channels=0, expand_animations=False)
      return preprocess.preprocess(image, size, channels, mode)
    return tf.data.Dataset.from_tensor_slices(paths).map(
        decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _decoded(directory: str, files, image_size: int, channels: int, mode: str):
  """Batches of (index, image uint8 [S, S, channels], has colour, native [H, W]) of the
  `files` that decode, in order: decoded, alpha dropped and preprocessed in parallel by
  `tf.data`. Files that do not decode are left out quietly (`ignore_errors`): the caller
  reports them once, by the indices missing."""

  def decode(index, path):
    image = tf.io.decode_image(tf.io.read_file(path), channels=0, expand_animations=False)
    have = tf.shape(image)[-1]
    image = image[..., :have - (1 - have % 2)]  # Drops the alpha channel of 2 and 4.
    colour = tf.reduce_any(tf.not_equal(image, image[..., :1]))
    resized = preprocess.preprocess(image, image_size, channels, mode)
    return index, resized, colour, tf.shape(image)[:2]

  paths = [os.path.join(directory, relative) for relative in files]
  indices = tf.range(len(paths), dtype=tf.int64)
  decoded = tf.data.Dataset.from_tensor_slices((indices, paths)).map(
      decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return decoded.ignore_errors().batch(_DECODE_BATCH).prefetch(2)


def _first_size(directory: str, files) -> Optional[int]:
  """The side of the first image that decodes (the default --image_size); None if none does.

  Raises:
    FolderError: that image is not square.
  """
  for relative in files:
    try:
      image = tf.io.decode_image(tf.io.read_file(os.path.join(directory, relative)),
                                 channels=0, expand_animations=False)
    except tf.errors.OpError:
      continue
    height, width = int(image.shape[0]), int(image.shape[1])
    if height != width:
      raise FolderError(f"folder {directory}: {relative} is {width}x{height}, not square: "
                        "pass --image_size (e.g. 64)")
    return height
  return None


def _cache_key(directory, files, image_size, channels, mode) -> str:
  digest = hashlib.sha256(f"v{_CACHE_VERSION}|{os.path.abspath(directory)}|{image_size}|"
                          f"{channels}|{mode}".encode())
  for relative in files:
    stat = os.stat(os.path.join(directory, relative))
    digest.update(f"|{relative}|{stat.st_size}|{stat.st_mtime_ns}".encode())
  return digest.hexdigest()[:24]


def _check_memory(count, image_size, directory):
  try:
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  except (ValueError, OSError, AttributeError):
    return
  needed = count * image_size * image_size * 3
  if needed > MAX_MEMORY_FRACTION * ram:
    raise FolderError(f"folder {directory}: {count} images at {image_size}x{image_size} need "
                      f"{needed / 2**30:.1f} GiB, more than half of this machine's "
                      f"{ram / 2**30:.1f} GiB: use --cache=disk (or --cache=none)")


def load(path: str, split: str, image_size: Optional[int] = None, channels: Optional[int] = None,
         resize: str = "crop", cache: str = "memory", cache_dir: Optional[str] = None,
         verbose: bool = True) -> FolderData:
  """Indexes, validates and decodes a folder split (once), as the module docstring says.

  Args:
    path: the folder (PATH of --dataset=folder:PATH).
    split: --split.
    image_size: side of the square examples; None: the images' own size (all must share it).
    channels: 1 or 3; None: 3 if any image has colour (R, G, B not all equal), else 1.
    resize: a `preprocess.RESIZE_MODES` mode.
    cache: memory, disk (needs `cache_dir`) or none.
    cache_dir: directory of the --cache=disk TFRecord files.
    verbose: print progress and the report.

  Raises:
    FolderError: see `split_directory`; no readable image; images of several sizes without
      `image_size`; a split too large for memory.
  """
  preprocess.check_resize(resize)
  if cache not in CACHE_MODES:
    raise FolderError(f"--cache={cache!r} is not one of {', '.join(CACHE_MODES)}")
  if channels is not None and channels not in preprocess.CHANNELS:
    raise FolderError(f"--channels={channels} is not one of 1, 3")
  directory = split_directory(path, split)
  say = (lambda text: print(text, flush=True)) if verbose else (lambda text: None)
  files, ignored = list_files(directory)
  if len(files) >= PROGRESS_EVERY:
    say(f"Indexing {directory}: {len(files)} image files")
  if not files:
    raise FolderError(f"folder {directory} has no image files (.jpg, .jpeg, .png, .bmp, .gif; "
                      f"{ignored} other files)")
  if cache == "disk":
    if cache_dir is None:
      raise FolderError("--cache=disk needs a cache directory (the run's workdir)")
    key = _cache_key(directory, files, image_size, channels, resize)
    record_path = os.path.join(cache_dir, f"folder-{key}.tfrecord")
    cached = _read_sidecar(record_path)
    if cached is not None:
      data = FolderData(directory=directory, ignored=ignored, cache=cache, resize=resize,
                        record_path=record_path, **cached)
      if verbose:
        print(data.report(), file=sys.stderr if data.unreadable else sys.stdout, flush=True)
        say(f"Decoded images from the cache {record_path}")
      return data
  data = _decode_all(directory, files, ignored, image_size, channels, resize, cache,
                     record_path if cache == "disk" else None, say)
  if verbose:
    print(data.report(), file=sys.stderr if data.unreadable else sys.stdout, flush=True)
  return data


def _decode_all(directory, files, ignored, image_size, channels, mode, cache, record_path, say):
  """The one decoding pass: validates every candidate and keeps, writes or drops its pixels."""
  size_from_images = image_size is None
  if size_from_images:
    image_size = _first_size(directory, files) or 1
  if cache == "memory":
    _check_memory(len(files), image_size, directory)
  # Without --channels every image is made RGB; if none has colour, channel 0 is kept at the
  # end, which is exact: tiling commutes with the per-channel resize, and the luma of
  # R = G = B is R after rounding (0.2989 + 0.5870 + 0.1140 = 0.9999).
  stored = channels or 3
  readable, unreadable, kept, natives = [], [], [], []
  colour = False
  writer = None
  if record_path is not None:
    os.makedirs(os.path.dirname(record_path), exist_ok=True)
    temporary = f"{record_path}.tmp{os.getpid()}"
    writer = tf.io.TFRecordWriter(temporary)
  try:
    expected = 0
    for indices, images, colours, shapes in _decoded(directory, files, image_size, stored, mode):
      indices = indices.numpy()
      for index, shape in zip(indices, shapes.numpy()):
        unreadable.extend(files[expected:index])
        expected = index + 1
        if size_from_images and tuple(shape) != (image_size, image_size):
          raise FolderError(f"folder {directory} has images of several sizes ({image_size}x"
                            f"{image_size}, {shape[1]}x{shape[0]} {files[index]}): pass "
                            "--image_size (e.g. 64)")
        readable.append(files[index])
        natives.append(tuple(shape))
      colour = colour or bool(np.any(colours.numpy()))
      done = len(readable) + len(unreadable)
      if done // PROGRESS_EVERY > (done - len(indices)) // PROGRESS_EVERY:
        say(f"Decoded {done}/{len(files)} files ({100 * done // len(files)}%)")
      if cache == "none":
        continue
      pixels = images.numpy()
      if writer is not None:
        for image in pixels:
          writer.write(tf.train.Example(features=tf.train.Features(feature={
              "image": tf.train.Feature(bytes_list=tf.train.BytesList(
                  value=[image.tobytes()]))})).SerializeToString())
      else:
        kept.append(pixels)
    unreadable.extend(files[expected:])
  except BaseException:
    if writer is not None:
      writer.close()
      os.remove(temporary)
    raise
  if not readable:
    if writer is not None:
      writer.close()
      os.remove(temporary)
    raise FolderError(f"folder {directory} has no readable image ({len(unreadable)} image files "
                      "did not decode)")
  if channels is None:
    channels = 3 if colour else 1
  class_names, labels = _classes(readable)
  heights = {shape[0] for shape in natives}
  widths = {shape[1] for shape in natives}
  native_shape = (int(heights.pop()) if len(heights) == 1 else None,
                  int(widths.pop()) if len(widths) == 1 else None, channels)
  images = np.ascontiguousarray(np.concatenate(kept)[..., :channels]) if kept else None
  data = FolderData(directory=directory, files=tuple(readable), labels=labels,
                    class_names=class_names, ignored=ignored, unreadable=tuple(unreadable),
                    native_shape=native_shape, image_size=image_size, channels=channels,
                    resize=mode, cache=cache, images=images, record_path=record_path)
  if writer is not None:
    writer.close()
    _write_sidecar(record_path, data)
    os.replace(temporary, record_path)
  return data


def _classes(readable):
  parts = [relative.split(os.sep) for relative in readable]
  if any(len(p) < 2 for p in parts):
    return None, None
  names = tuple(sorted({p[0] for p in parts}))
  index = {name: i for i, name in enumerate(names)}
  return names, np.array([index[p[0]] for p in parts], np.int64)


def _write_sidecar(record_path, data: FolderData):
  record = {"files": list(data.files), "class_names": data.class_names,
            "labels": None if data.labels is None else data.labels.tolist(),
            "unreadable": list(data.unreadable), "native_shape": list(data.native_shape),
            "image_size": data.image_size, "channels": data.channels}
  temporary = f"{record_path}.json.tmp{os.getpid()}"
  with open(temporary, "w") as f:
    json.dump(record, f)
  os.replace(temporary, f"{record_path}.json")


def _read_sidecar(record_path):
  try:
    with open(f"{record_path}.json") as f:
      record = json.load(f)
    if not os.path.isfile(record_path):
      return None
    return dict(files=tuple(record["files"]),
                class_names=None if record["class_names"] is None
                else tuple(record["class_names"]),
                labels=None if record["labels"] is None else np.array(record["labels"], np.int64),
                unreadable=tuple(record["unreadable"]), native_shape=tuple(record["native_shape"]),
                image_size=int(record["image_size"]), channels=int(record["channels"]))
  except (OSError, ValueError, KeyError, TypeError):
    return None
