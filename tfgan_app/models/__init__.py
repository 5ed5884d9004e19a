"""Generator and discriminator architectures, built by name."""

from typing import Sequence, Tuple

import keras

from tfgan_app.models import dcgan


def build_models(architecture: str, latent_dim: int, image_shape: Sequence[int],
                 g_filters: int, d_filters: int,
                 sync_batchnorm: bool = False) -> Tuple[keras.Model, keras.Model]:
  """Returns (generator, discriminator), built (weights created) for `image_shape`."""
  if architecture != "dcgan":
    raise ValueError(f"unknown architecture {architecture!r}; accepted: dcgan")
  generator = dcgan.Generator(latent_dim, image_shape, filters=g_filters,
                              sync_batchnorm=sync_batchnorm, name="generator")
  discriminator = dcgan.Discriminator(image_shape, filters=d_filters,
                                      sync_batchnorm=sync_batchnorm, name="discriminator")
  # Create the weights now, inside whatever strategy scope the caller holds: a Keras 3 model
  # whose weights are created lazily inside a distributed train_step fails
  # (shared/notes/stack.md §2). Keras 3's `build(shape)` does not run a subclassed model's
  # call(), so call each model once.
  generator(keras.ops.zeros((1, latent_dim)))
  discriminator(keras.ops.zeros((1, *image_shape)))
  return generator, discriminator
