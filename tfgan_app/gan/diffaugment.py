"""Differentiable augmentation of D's inputs, real and generated alike (--diffaugment).

Zhao, Liu, Lin, Zhu & Han 2020, "Differentiable Augmentation for Data-Efficient GAN Training"
(arXiv:2006.10738): D sees every image, real or generated, through the same random
transformations T, and G's gradient flows through T, so D cannot overfit a small training set
while G still learns the untransformed distribution. The policies, as in the authors' code
(images in [-1, 1], NHWC):

  color        brightness x + (u - 0.5); saturation (x - mean_c) * 2u + mean_c;
               contrast (x - mean_hwc) * (u + 0.5) + mean_hwc; u ~ U(0, 1) per image each
  translation  a shift of up to 1/8 of the height and width in whole pixels, per image,
               uniform in [-s, s] with s = round(size / 8); vacated pixels become 0
  cutout       a square of half the image size (rounded) set to 0, its centre uniform over
               the image per image (it may be cut off at the border)

The random numbers are stateless: drawn for the whole global batch from (seed, update, purpose)
and sliced per replica, so a resumed run and any number of replicas transform each image the
same way (the latents work alike, gan/model.py).
"""

import dataclasses
from typing import Tuple

import tensorflow as tf

POLICIES = ("color", "translation", "cutout")
_TRANSLATION_RATIO = 0.125
_CUTOUT_RATIO = 0.5
# Folded into the augmentation seeds, apart from the latents' and the penalties' purposes.
_AUGMENT_PURPOSE = 1 << 22


def parse_policy(text: str) -> Tuple[str, ...]:
  """"color,translation" -> ("color", "translation"); "" -> () (off).

  Raises:
    ValueError: a name not in POLICIES, or one given twice.
  """
  names = tuple(part.strip() for part in str(text or "").split(",") if part.strip())
  unknown = [name for name in names if name not in POLICIES]
  if unknown or len(set(names)) != len(names):
    raise ValueError(f"--diffaugment={text!r}: expected a comma-separated subset of "
                     f"{','.join(POLICIES)} (each at most once), or empty for none")
  return names


def _replica_slice(values, local_batch):
  """This replica's rows of values drawn for the global batch."""
  context = tf.distribute.get_replica_context()
  replica_id = tf.cast(context.replica_id_in_sync_group, tf.int32) if context else 0
  start = replica_id * local_batch
  return values[start:start + local_batch]


def translate(images, shift_y, shift_x):
  """Shifts each image by whole pixels (shift_y, shift_x: int32 [b]); vacated pixels are 0."""
  height, width = images.shape[1], images.shape[2]
  # One pixel of zeros around the image; indices that leave the image land on it.
  padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]])
  rows = tf.clip_by_value(tf.range(height)[None, :] - shift_y[:, None] + 1, 0, height + 1)
  cols = tf.clip_by_value(tf.range(width)[None, :] - shift_x[:, None] + 1, 0, width + 1)
  images = tf.gather(padded, rows, axis=1, batch_dims=1)
  return tf.gather(images, cols, axis=2, batch_dims=1)


def cutout_mask(height, width, centre_y, centre_x, size_y, size_x):
  """[b, H, W, 1]: 0 inside the size_y x size_x square whose centre pixel is (centre_y,
  centre_x) (int32 [b]; the square starts size // 2 before it), 1 elsewhere."""
  top = centre_y - size_y // 2
  left = centre_x - size_x // 2
  y = tf.range(height)[None, :]
  x = tf.range(width)[None, :]
  inside_y = (y >= top[:, None]) & (y < top[:, None] + size_y)  # [b, H]
  inside_x = (x >= left[:, None]) & (x < left[:, None] + size_x)  # [b, W]
  inside = inside_y[:, :, None] & inside_x[:, None, :]
  return 1.0 - tf.cast(inside, tf.float32)[..., None]


@dataclasses.dataclass(frozen=True)
class DiffAugment:
  """The augmentation of --diffaugment: `policy` names from POLICIES, applied in that order."""
  policy: Tuple[str, ...] = ()

  def __bool__(self):
    return bool(self.policy)

  def __call__(self, images, *, seed, update_index, purpose, global_batch_size):
    """`images` [b, H, W, C] (this replica's slice of the global batch), transformed by the
    random numbers of (seed, update_index, purpose); float32."""
    images = tf.cast(images, tf.float32)
    key = tf.stack([tf.cast(seed, tf.int64), tf.cast(update_index, tf.int64)])
    key = tf.random.experimental.stateless_fold_in(
        key, tf.cast(_AUGMENT_PURPOSE + purpose, tf.int64))
    keys = tf.random.experimental.stateless_split(key, num=7)
    local_batch = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]

    def uniform(index, shape=()):
      values = tf.random.stateless_uniform([global_batch_size, *shape], seed=keys[index])
      return _replica_slice(values, local_batch)

    def integers(index, low, high):  # Uniform in [low, high), int32 [b].
      values = tf.random.stateless_uniform([global_batch_size], seed=keys[index], minval=low,
                                           maxval=high, dtype=tf.int32)
      return _replica_slice(values, local_batch)

    for name in self.policy:
      if name == "color":
        images = images + (uniform(0, [1, 1, 1]) - 0.5)
        channel_mean = tf.reduce_mean(images, axis=3, keepdims=True)
        images = (images - channel_mean) * (uniform(1, [1, 1, 1]) * 2.0) + channel_mean
        image_mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
        images = (images - image_mean) * (uniform(2, [1, 1, 1]) + 0.5) + image_mean
      elif name == "translation":
        max_y = int(height * _TRANSLATION_RATIO + 0.5)
        max_x = int(width * _TRANSLATION_RATIO + 0.5)
        images = translate(images, integers(3, -max_y, max_y + 1),
                           integers(4, -max_x, max_x + 1))
      else:  # cutout
        size_y = int(height * _CUTOUT_RATIO + 0.5)
        size_x = int(width * _CUTOUT_RATIO + 0.5)
        # Centres as in the authors' code: [0, H + (1 - size % 2)).
        images = images * cutout_mask(height, width, integers(5, 0, height + 1 - size_y % 2),
                                      integers(6, 0, width + 1 - size_x % 2), size_y, size_x)
    return images
