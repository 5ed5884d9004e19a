"""Generator and discriminator architectures, built by name."""

from typing import Sequence, Tuple

import keras

from tfgan_app.models import dcgan
from tfgan_app.models import minibatch_discrimination

GAN_ARCHITECTURES = ("dcgan",)
# Not a GAN: the maximum-likelihood baseline, a Gaussian mixture (models/gmm.py) fitted by
# tfgan_app/maximum_likelihood.py.
GMM = "gmm"
ARCHITECTURES = GAN_ARCHITECTURES + (GMM,)


def _check(architecture):
  if architecture == GMM:
    raise ValueError("gmm is a Gaussian mixture, not a generator/discriminator pair; build it "
                     "with models.gmm.build_gaussian_mixture")
  if architecture not in GAN_ARCHITECTURES:
    raise ValueError(f"unknown architecture {architecture!r}; accepted: "
                     f"{', '.join(GAN_ARCHITECTURES)}")


# Both builders create the weights now, inside whatever strategy scope the caller holds: a Keras 3
# model whose weights are created lazily inside a distributed train_step fails
# (shared/notes/stack.md §2). Keras 3's `build(shape)` does not run a subclassed model's call(),
# so each model is called once.


def build_generator(architecture: str, latent_dim: int, image_shape: Sequence[int],
                    filters: int, sync_batchnorm: bool = False, name: str = "generator",
                    kernel_size: int = 4, refine_blocks: int = 0) -> keras.Model:
  """A built generator mapping [B, latent_dim] to [B, *image_shape] in [-1, 1]."""
  _check(architecture)
  generator = dcgan.Generator(latent_dim, image_shape, filters=filters,
                              sync_batchnorm=sync_batchnorm, kernel_size=kernel_size,
                              refine_blocks=refine_blocks, name=name)
  generator(keras.ops.zeros((1, latent_dim)))
  return generator


def build_discriminator(architecture: str, image_shape: Sequence[int], filters: int,
                        sync_batchnorm: bool = False, kernel_size: int = 4,
                        minibatch_kernels: int = 0,
                        minibatch_kernel_dim: int = minibatch_discrimination.DEFAULT_KERNEL_DIM
                        ) -> keras.Model:
  """A built discriminator mapping [B, *image_shape] to logits [B, 1].

  It also has `features(images, training)` -> [B, F], its last hidden layer (feature
  matching). `minibatch_kernels` > 0 adds minibatch discrimination before the logit layer.
  """
  _check(architecture)
  discriminator = dcgan.Discriminator(image_shape, filters=filters,
                                      sync_batchnorm=sync_batchnorm, kernel_size=kernel_size,
                                      minibatch_kernels=minibatch_kernels,
                                      minibatch_kernel_dim=minibatch_kernel_dim,
                                      name="discriminator")
  discriminator(keras.ops.zeros((1, *image_shape)))
  return discriminator


def build_models(architecture: str, latent_dim: int, image_shape: Sequence[int],
                 g_filters: int, d_filters: int, sync_batchnorm: bool = False,
                 kernel_size: int = 4, g_refine_blocks: int = 0, minibatch_kernels: int = 0,
                 minibatch_kernel_dim: int = minibatch_discrimination.DEFAULT_KERNEL_DIM
                 ) -> Tuple[keras.Model, keras.Model]:
  """Returns (generator, discriminator), built for `image_shape`."""
  return (build_generator(architecture, latent_dim, image_shape, g_filters, sync_batchnorm,
                          kernel_size=kernel_size, refine_blocks=g_refine_blocks),
          build_discriminator(architecture, image_shape, d_filters, sync_batchnorm,
                              kernel_size=kernel_size, minibatch_kernels=minibatch_kernels,
                              minibatch_kernel_dim=minibatch_kernel_dim))
