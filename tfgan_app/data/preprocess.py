"""Turning one decoded image into a training example: channels, then size (TFDS and folders alike).

Every function takes and returns uint8 [H, W, C] tensors and works eagerly and inside `tf.data`.
An image that already has the target size and channels is returned unchanged (no resampling),
so MNIST at its native 28x28x1 is bit-identical to the raw dataset.

Resize modes (--resize), all ending in an antialiased area resize to [size, size]:
  crop     centre square crop of side min(H, W) (the default; keeps the aspect, loses borders).
  pad      centre the image on a black square of side max(H, W) (keeps everything, adds bars).
  stretch  resize [H, W] straight to [size, size] (keeps everything, distorts the aspect).
"""

import tensorflow as tf

RESIZE_MODES = ("crop", "pad", "stretch")
CHANNELS = (1, 3)


def check_resize(mode: str) -> str:
  if mode not in RESIZE_MODES:
    raise ValueError(f"--resize={mode!r} is not one of {', '.join(RESIZE_MODES)}")
  return mode


def to_channels(image: tf.Tensor, channels: int) -> tf.Tensor:
  """Converts a decoded image with 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA) channels.

  Alpha is dropped (the colour values are kept as stored, as PIL's convert("RGB") does); grey
  becomes RGB by repeating it; RGB becomes grey by ITU-R BT.601 luma,
  Y = 0.2989 R + 0.5870 G + 0.1140 B (`tf.image.rgb_to_grayscale`), rounded.
  """
  if channels not in CHANNELS:
    raise ValueError(f"--channels={channels} is not one of 1, 3")
  have = image.shape[-1]
  if have is not None:  # Static: no graph branches, and no op at all when nothing changes.
    if have in (2, 4):
      image = image[..., :have - 1]
      have -= 1
    if have == channels:
      return image
    return _grey_to_rgb(image) if channels == 3 else _rgb_to_grey(image)
  have = tf.shape(image)[-1]
  image = image[..., :have - (1 - have % 2)]  # Drops the alpha channel of 2 and 4.
  colour = tf.shape(image)[-1] == 3
  if channels == 3:
    return tf.cond(colour, lambda: image, lambda: _grey_to_rgb(image[..., :1]))
  return tf.cond(colour, lambda: _rgb_to_grey(image[..., :3]), lambda: image[..., :1])


def _grey_to_rgb(image):
  return tf.tile(image, [1, 1, 3])


def _rgb_to_grey(image):
  grey = tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))
  return tf.cast(tf.clip_by_value(tf.round(grey), 0, 255), tf.uint8)


def resize(image: tf.Tensor, size: int, mode: str = "crop") -> tf.Tensor:
  """Resizes uint8 [H, W, C] to [size, size, C] as --resize `mode` says; keeps uint8."""
  check_resize(mode)
  shape = tf.shape(image)
  height, width = shape[0], shape[1]

  def resample():
    framed = image
    if mode == "crop":
      side = tf.minimum(height, width)
      framed = tf.image.resize_with_crop_or_pad(image, side, side)
    elif mode == "pad":
      side = tf.maximum(height, width)
      framed = tf.image.resize_with_crop_or_pad(image, side, side)
    resized = tf.image.resize(framed, [size, size], method="area", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)

  if image.shape[0] is not None and image.shape[1] is not None:
    return image if tuple(image.shape[:2]) == (size, size) else resample()
  unchanged = tf.logical_and(tf.equal(height, size), tf.equal(width, size))
  return tf.cond(unchanged, lambda: tf.ensure_shape(image, [size, size, None]), resample)


def preprocess(image: tf.Tensor, size: int, channels: int, mode: str = "crop") -> tf.Tensor:
  """Channels, then size: uint8 [H, W, any of 1-4] -> uint8 [size, size, channels]."""
  image = resize(to_channels(image, channels), size, mode)
  return tf.ensure_shape(image, [size, size, channels])


def random_flip(image: tf.Tensor, seed: int, index: tf.Tensor) -> tf.Tensor:
  """Mirrors image [H, W, C] left-right with probability 1/2, statelessly.

  Example `index` of the stream (counted from the run's first example, across epochs) is
  flipped iff uniform(seed=(seed + 7919, index)) < 0.5, so a resumed stream flips the same
  images as an uninterrupted one, whatever the batch size or the number of replicas.
  """
  draw = tf.random.stateless_uniform(
      [], seed=tf.stack([tf.constant(seed + 7_919, tf.int64), tf.cast(index, tf.int64)]))
  return tf.cond(draw < 0.5, lambda: tf.reverse(image, axis=[1]), lambda: image)
