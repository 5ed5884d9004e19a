"""The TensorFlow ops the export's signatures are made of: seeds to latents (and classes), slerp,
uint8 images and PNGs, and the in-graph request checks (a failed one is INVALID_ARGUMENT under
TF Serving). Keras-free: the signatures of unconditional and conditional exports share them."""

import tensorflow as tf

from tfgan_app.exporting.contract import IMAGES, PNG_BYTES, SAMPLES


def to_uint8(images: tf.Tensor) -> tf.Tensor:
  """[-1, 1] float images -> uint8 [0, 255], rounding to the nearest level."""
  scaled = (tf.cast(images, tf.float32) + 1.0) * 127.5
  return tf.cast(tf.clip_by_value(tf.round(scaled), 0.0, 255.0), tf.uint8)


def latents_from_seeds(seeds: tf.Tensor, latent_dim: int) -> tf.Tensor:
  """int64 seeds [N] -> float32 latents [N, latent_dim]; seed s gives N(0, I) from [s, 0]."""
  seeds = tf.cast(seeds, tf.int64)

  def one(seed):
    return tf.random.stateless_normal([latent_dim], seed=tf.stack([seed, tf.zeros_like(seed)]))

  return tf.map_fn(one, seeds, fn_output_signature=tf.TensorSpec([latent_dim], tf.float32))


def labels_from_seeds(seeds: tf.Tensor, num_classes: int) -> tf.Tensor:
  """int64 seeds [N] -> int32 classes [N]; seed s gives a uniform class in [0, num_classes) from
  the stateless stream [s, 1] (the latent uses [s, 0]: the two are independent)."""
  seeds = tf.cast(seeds, tf.int64)

  def one(seed):
    return tf.random.stateless_uniform([], seed=tf.stack([seed, tf.ones_like(seed)]), minval=0,
                                       maxval=num_classes, dtype=tf.int32)

  return tf.map_fn(one, seeds, fn_output_signature=tf.TensorSpec([], tf.int32))


def slerp(start: tf.Tensor, end: tf.Tensor, num_steps: tf.Tensor) -> tf.Tensor:
  """Spherical interpolation [D], [D] -> [num_steps, D], endpoints included.

  The angle is measured between the directions; the norm is interpolated along with it (the
  usual slerp for Gaussian latents, White 2016). Nearly parallel vectors fall back to a lerp.
  """
  fractions = tf.linspace(0.0, 1.0, num_steps)[:, None]  # [S, 1]
  cosine = tf.reduce_sum(tf.math.l2_normalize(start) * tf.math.l2_normalize(end))
  omega = tf.acos(tf.clip_by_value(cosine, -1.0, 1.0))
  sine = tf.sin(omega)
  safe_sine = tf.maximum(sine, 1e-6)
  spherical = (tf.sin((1.0 - fractions) * omega) / safe_sine * start[None, :]
               + tf.sin(fractions * omega) / safe_sine * end[None, :])
  linear = (1.0 - fractions) * start[None, :] + fractions * end[None, :]
  return tf.where(sine < 1e-6, linear, spherical)  # [S, D]


def check_count(count, lower, upper, what):
  """In-graph range check: under TF Serving a failed assert is INVALID_ARGUMENT."""
  return [
      tf.debugging.assert_greater_equal(
          count, tf.cast(lower, count.dtype),
          message=f"{what} must be from {lower} to {upper}"),
      tf.debugging.assert_less_equal(
          count, tf.cast(upper, count.dtype),
          message=f"{what} must be from {lower} to {upper}"),
  ]


def check_labels(labels, num_classes: int, what: str, lowest: int = 0):
  """In-graph check that every class in `labels` (any shape) lies in [lowest, num_classes)."""
  accepted = f"from {lowest} to {num_classes - 1}"
  if lowest < 0:
    accepted += f" ({lowest}: classes drawn from the seeds)"
  message = f"{what} must be {accepted}"
  return [tf.debugging.assert_greater_equal(labels, tf.constant(lowest, labels.dtype),
                                            message=message),
          tf.debugging.assert_less(labels, tf.constant(num_classes, labels.dtype),
                                   message=message)]


def served(generated: tf.Tensor, points: bool) -> dict:
  """`serving_default`'s outputs of generator outputs: uint8 `images`, or float32 `samples`."""
  if points:
    return {SAMPLES: tf.cast(generated, tf.float32)}  # [N, D]
  return {IMAGES: to_uint8(generated)}


def with_pngs(generated: tf.Tensor, points: bool) -> dict:
  """The other signatures' outputs: `images` and their `png_bytes`, or `samples`."""
  if points:
    return served(generated, points)
  images = to_uint8(generated)  # [N, H, W, C]
  pngs = tf.map_fn(tf.io.encode_png, images, fn_output_signature=tf.string)  # [N]
  return {IMAGES: images, PNG_BYTES: pngs}
