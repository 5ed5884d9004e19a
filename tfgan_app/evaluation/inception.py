"""Inception v3 for FID/KID/IS on colour images, with the two resize protocols the field uses.

`--resize_method` chooses how images of any size reach Inception's 299x299 input:

- `clean` (the default): the clean-fid protocol (Parmar, Zhang and Zhu 2022, "On Aliased
  Resizing and Surprising Subtleties in GAN Evaluation"). Images are quantised to uint8, each
  channel is resized to 299x299 by PIL's bicubic filter on a float32 ("F" mode) image, clipped
  to [0, 255], and scaled by Inception's own `(x - 128) / 128`. PIL's filters are antialiased,
  so downsampled or upsampled images are not aliased.
- `tf_bilinear`: TF-GAN's legacy protocol: `tf.image.resize(..., "bilinear")` to 299x299 (no
  antialiasing) of the float [0, 255] images, then `(x - 128) / 128`, as TF-GAN 1.x's
  `tfgan.eval.preprocess_image` did (TF-GAN 2.1 no longer ships that function).

Numbers from the two protocols differ and are not comparable; the evaluation record names the
protocol (`resize_method`). Greyscale images are repeated to three channels first.

The network: TF-GAN's Inception module (`INCEPTION_HANDLE`, through tensorflow_hub), a local
copy of it, or any local SavedModel directory or `.keras` file with the same interface: a
callable taking float32 images [N, 299, 299, 3] in Inception's range and returning a dict with
`logits` [N, K] (1008 for TF-GAN's module) and `pool_3` [N, D] or [N, 1, 1, D] (2048).
"""

import os
from typing import Optional

import numpy as np
from PIL import Image
import tensorflow as tf

from tfgan_app.evaluation import metrics as metrics_lib
from tfgan_app.evaluation.protocol import (  # pylint: disable=g-multiple-import
    DEFAULT_RESIZE_METHOD, INCEPTION_HANDLE, INCEPTION_SIZE, RESIZE_METHODS, EvaluationError,
    content_sha256, file_sha256)

# The output names of TF-GAN's Inception module (tfgan.eval.INCEPTION_OUTPUT / _FINAL_POOL).
LOGITS = "logits"
POOL = "pool_3"
KERAS_SUFFIX = ".keras"
_DESCRIPTIONS = {
    "clean": f"clean-fid: uint8, PIL bicubic per channel to {INCEPTION_SIZE}x{INCEPTION_SIZE}, "
             "(x - 128) / 128",
    "tf_bilinear": f"TF-GAN legacy: tf.image.resize bilinear to {INCEPTION_SIZE}x"
                   f"{INCEPTION_SIZE}, (x - 128) / 128",
}


def check_resize_method(resize_method: str) -> str:
  """Returns `resize_method` if it is one of `RESIZE_METHODS`.

  Raises:
    EvaluationError: any other value.
  """
  if resize_method not in RESIZE_METHODS:
    raise EvaluationError(f"--resize_method={resize_method}: accepted: "
                          f"{', '.join(RESIZE_METHODS)}")
  return resize_method


def to_uint8(images: np.ndarray) -> np.ndarray:
  """float [N, H, W, C] in [-1, 1] -> uint8 [0, 255], rounded (exact for images that were uint8)."""
  return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(
      np.uint8)


def _pil_bicubic_channel(channel: np.ndarray, size: int) -> np.ndarray:
  """One channel [H, W] -> float32 [size, size] in [0, 255], as clean-fid resizes it."""
  image = Image.fromarray(channel.astype(np.float32), mode="F")
  image = image.resize((size, size), resample=Image.BICUBIC)
  return np.asarray(image, np.float32).clip(0, 255)


def clean_resize(images_uint8: np.ndarray, size: int = INCEPTION_SIZE) -> np.ndarray:
  """clean-fid's resize: uint8 [N, H, W, C] -> float32 [N, size, size, C] in [0, 255]."""
  out = np.empty((len(images_uint8), size, size, images_uint8.shape[-1]), np.float32)
  for index, image in enumerate(images_uint8):
    for channel in range(image.shape[-1]):
      out[index, :, :, channel] = _pil_bicubic_channel(image[:, :, channel], size)
  return out


def preprocess(images: np.ndarray, resize_method: str,
               size: int = INCEPTION_SIZE) -> np.ndarray:
  """float32 [N, H, W, C] in [-1, 1], C in {1, 3} -> Inception's input [N, size, size, 3].

  Args:
    images: the images, as the evaluator holds them.
    resize_method: "clean" or "tf_bilinear" (see the module docstring).
    size: the output side.

  Returns:
    float32 [N, size, size, 3], scaled by (x - 128) / 128.
  """
  check_resize_method(resize_method)
  images = np.asarray(images, np.float32)
  if images.shape[-1] == 1:
    images = np.repeat(images, 3, axis=-1)
  if resize_method == "clean":
    resized = clean_resize(to_uint8(images), size)
  else:
    resized = tf.image.resize((images + 1.0) * 127.5, [size, size], method="bilinear",
                              antialias=False).numpy()
  return (resized - 128.0) / 128.0


def network_sha256(path: str) -> str:
  """sha256 of a `.keras` file, or of a SavedModel directory (graph and variables)."""
  return file_sha256(path) if os.path.isfile(path) else content_sha256(path)


def _load_network(handle: str):
  """(callable images -> {logits, pool_3}, local path) for a handle, directory or .keras file."""
  if handle.endswith(KERAS_SUFFIX) and os.path.isfile(handle):
    import keras  # pylint: disable=import-outside-toplevel
    model = keras.saving.load_model(handle, compile=False)
    return (lambda images: model(images, training=False)), handle
  import tensorflow_hub as hub  # pylint: disable=import-outside-toplevel
  local = handle if os.path.isdir(handle) else hub.resolve(handle)
  module = hub.load(local)
  if callable(module):
    return module, local
  # A SavedModel whose root is not callable: its serving signature, which takes one input.
  signature = module.signatures["serving_default"]
  input_name = next(iter(signature.structured_input_signature[1]))
  return (lambda images: signature(**{input_name: images})), local


class InceptionClassifier:
  """Inception v3 (or a network with its interface): `pool_3` features, `logits`.

  Attributes: path, sha256, image_shape (None: any size), dataset (None), resize_method,
  resize (a description for the record), batch_size.
  """

  def __init__(self, handle: str = INCEPTION_HANDLE, batch_size: int = 100,
               resize_method: str = DEFAULT_RESIZE_METHOD):
    """Loads the network.

    Args:
      handle: the TF-Hub handle, a local module or SavedModel directory, or a `.keras` file.
      batch_size: images per network call.
      resize_method: "clean" or "tf_bilinear".

    Raises:
      EvaluationError: unknown resize method, or nothing loadable at `handle` (the message says
        how to supply a local copy).
    """
    self.resize_method = check_resize_method(resize_method)
    try:
      self._network, local = _load_network(handle)
      self.sha256 = network_sha256(local)
    except Exception as error:  # Network, missing cache, wrong format: one answer to the user.
      first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
      raise EvaluationError(
          f"cannot load TF-GAN's Inception module from {handle} ({first[:200]}); offline, "
          f"download {INCEPTION_HANDLE}?tf-hub-format=compressed elsewhere, unpack it and pass "
          "--classifier=<that directory>, or set TFHUB_CACHE_DIR to a cache that holds it") \
          from error
    self.path = local
    self.image_shape = None  # Any size, 1 or 3 channels.
    self.dataset = None
    self.resize = _DESCRIPTIONS[resize_method]
    self.batch_size = batch_size

  def check_image_shape(self, image_shape) -> None:
    if image_shape[-1] not in (1, 3):
      raise EvaluationError(f"Inception takes 1- or 3-channel images, got {image_shape}")

  def activations(self, images: np.ndarray, needs) -> metrics_lib.Activations:
    """float32 [N, H, W, C] in [-1, 1] -> `Activations` (features [N, D], logits [N, K])."""
    features, logits = [], []
    for start in range(0, len(images), self.batch_size):
      batch = preprocess(images[start:start + self.batch_size], self.resize_method)
      outputs = self._network(tf.constant(batch))  # [B, 299, 299, 3] -> dict
      features.append(np.asarray(outputs[POOL], np.float32).reshape(len(batch), -1))
      logits.append(np.asarray(outputs[LOGITS], np.float32).reshape(len(batch), -1))
    return metrics_lib.Activations(
        features=np.concatenate(features) if "features" in needs else None,
        logits=np.concatenate(logits) if "logits" in needs else None)


def load_inception(handle: str, resize_method: Optional[str] = None) -> InceptionClassifier:
  """An `InceptionClassifier` with `resize_method` (None: the default, clean)."""
  return InceptionClassifier(handle, resize_method=resize_method or DEFAULT_RESIZE_METHOD)
