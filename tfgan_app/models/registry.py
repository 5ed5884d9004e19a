"""Generator and discriminator architectures, built by name."""

from typing import Sequence, Tuple

import keras

from tfgan_app.models import conditional_discriminator
from tfgan_app.models import dcgan
from tfgan_app.models import minibatch_discrimination
from tfgan_app.models import mlp
from tfgan_app.models import resnet
from tfgan_app.models import tf_tutorial

GAN_ARCHITECTURES = ("dcgan", "mlp", "resnet", "tf_tutorial")
# Architectures with a class-conditional generator (class-conditional BatchNorm in dcgan and
# resnet, the label joined to z in mlp) and a discriminator with `features` and `head`.
CONDITIONAL_ARCHITECTURES = ("dcgan", "mlp", "resnet")
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


def check_example_shape(architecture: str, example_shape: Sequence[int]) -> None:
  """Raises ValueError, naming what is accepted, when `architecture` cannot model the data.

  dcgan needs square images [H, W, C] of a size DCGAN can upsample to; resnet square images of
  side >= 32 (resnet.resnet_plan); tf_tutorial 28x28 images; mlp takes images or points [D];
  gmm (not a GAN) takes images.
  """
  shape = tuple(example_shape)
  if architecture in ("dcgan", "resnet", "tf_tutorial", GMM) and len(shape) != 3:
    raise ValueError(f"--architecture={architecture} needs images [H, W, C]; the dataset's "
                     f"examples are {len(shape)}-D points: use --architecture=mlp")
  if architecture == GMM:
    return
  _check(architecture)
  if architecture == "dcgan":
    dcgan.upsampling_plan(shape[0])
  if architecture == "tf_tutorial":
    tf_tutorial.check_shape(shape)
  if architecture == "resnet":
    resnet.check_shape(shape)


def check_conditional(architecture: str, conditioning: str) -> None:
  """Raises ValueError when `architecture` has no class-conditional models."""
  if conditioning != "none" and architecture not in CONDITIONAL_ARCHITECTURES:
    raise ValueError(f"--conditioning={conditioning} needs a class-conditional architecture: "
                     f"--architecture={' or '.join(CONDITIONAL_ARCHITECTURES)}, got "
                     f"{architecture}")


def check_options(architecture: str, g_refine_blocks: int = 0,
                  minibatch_kernels: int = 0, g_refine_kernel_size: int = 0) -> None:
  """Raises ValueError when an option names layers that `architecture` (or the run) does not
  have.

  Refinement blocks and minibatch discrimination are layers of dcgan (minibatch discrimination
  also of mlp); the tutorial's models stay as the tutorial wrote them, and resnet's as SNGAN's.
  `minibatch_kernels` is 0 when minibatch discrimination is off; `g_refine_kernel_size` 0 when
  the refine blocks take --kernel_size.
  """
  if g_refine_kernel_size and not g_refine_blocks:
    raise ValueError(f"--g_refine_kernel_size={g_refine_kernel_size} sizes the kernels of the "
                     "refine blocks, and --g_refine_blocks=0 adds none; set --g_refine_blocks "
                     "or drop --g_refine_kernel_size")
  used = ([f"--g_refine_blocks={g_refine_blocks}"] if g_refine_blocks else []) + (
      ["--minibatch_discrimination"] if minibatch_kernels else [])
  if architecture in ("tf_tutorial", "resnet") and used:
    raise ValueError(f"{', '.join(used)}: --architecture={architecture} has no such layers "
                     "(they are options of dcgan)")


# Both builders create the weights now, inside whatever strategy scope the caller holds: a Keras 3
# model whose weights are created lazily inside a distributed train_step fails
# (shared/notes/stack.md §2). Keras 3's `build(shape)` does not run a subclassed model's call(),
# so each model is called once.


def build_generator(architecture: str, latent_dim: int, image_shape: Sequence[int],
                    filters: int, sync_batchnorm: bool = False, name: str = "generator",
                    kernel_size: int = 4, refine_blocks: int = 0,
                    hidden_units: Sequence[int] = (1200, 1200),
                    num_classes: int = 0, refine_kernel_size: int = 0) -> keras.Model:
  """A built generator mapping [B, latent_dim] to [B, *image_shape].

  Images come out in [-1, 1]. `image_shape` is the example shape: [H, W, C], or [D] for the
  points of a toy distribution (mlp only). `filters`, `sync_batchnorm`, `kernel_size` and
  `refine_blocks` (and `refine_kernel_size`, 0: `kernel_size`) apply to dcgan, `hidden_units`
  to mlp; resnet takes `filters` (the width of every block) and `sync_batchnorm`, and has
  SNGAN's 3x3 kernels whatever `kernel_size`.
  `num_classes` > 0: class-conditional, called as `generator(latents, labels=labels)` with
  labels int32 [B] (CONDITIONAL_ARCHITECTURES).
  """
  check_example_shape(architecture, image_shape)
  check_options(architecture, g_refine_blocks=refine_blocks,
                g_refine_kernel_size=refine_kernel_size)
  if num_classes and architecture not in CONDITIONAL_ARCHITECTURES:
    raise ValueError(f"--architecture={architecture} has no class-conditional generator; "
                     f"accepted: {', '.join(CONDITIONAL_ARCHITECTURES)}")
  if architecture == "mlp":
    generator = mlp.Generator(latent_dim, image_shape, hidden_units=hidden_units,
                              num_classes=num_classes, name=name)
  elif architecture == "resnet":
    generator = resnet.Generator(latent_dim, image_shape, filters=filters,
                                 sync_batchnorm=sync_batchnorm, num_classes=num_classes,
                                 name=name)
  elif architecture == "tf_tutorial":
    generator = tf_tutorial.Generator(latent_dim, image_shape, filters=filters,
                                      sync_batchnorm=sync_batchnorm, kernel_size=kernel_size,
                                      name=name)
  else:
    generator = dcgan.Generator(latent_dim, image_shape, filters=filters,
                                sync_batchnorm=sync_batchnorm, kernel_size=kernel_size,
                                refine_blocks=refine_blocks, num_classes=num_classes,
                                refine_kernel_size=refine_kernel_size, name=name)
  if num_classes:
    generator(keras.ops.zeros((1, latent_dim)), labels=keras.ops.zeros((1,), "int32"))
  else:
    generator(keras.ops.zeros((1, latent_dim)))
  return generator


def build_discriminator(architecture: str, image_shape: Sequence[int], filters: int,
                        sync_batchnorm: bool = False, kernel_size: int = 4,
                        minibatch_kernels: int = 0,
                        minibatch_kernel_dim: int = minibatch_discrimination.DEFAULT_KERNEL_DIM,
                        hidden_units: Sequence[int] = (240, 240), dropout: float = 0.5,
                        spectral_norm: bool = False, conditioning: str = "none",
                        num_classes: int = 0) -> keras.Model:
  """A built discriminator mapping [B, *image_shape] to logits [B, 1].

  It also has `features(images, training)` -> [B, F], its last hidden layer (feature
  matching). `minibatch_kernels` > 0 adds minibatch discrimination before the logit layer.
  `filters`, `sync_batchnorm` and `kernel_size` apply to dcgan, `hidden_units` and `dropout`
  to mlp; resnet takes `filters` (the width of every block) and has no BatchNorm in D.
  `spectral_norm` normalises D's layers (models/spectral_norm.py; dcgan's D then has no
  BatchNorm). `conditioning` projection or acgan (with `num_classes` > 0) wraps it in a
  `conditional_discriminator.ConditionalDiscriminator`, called with `labels=`.
  """
  check_example_shape(architecture, image_shape)
  check_conditional(architecture, conditioning)
  check_options(architecture, minibatch_kernels=minibatch_kernels)
  if architecture == "tf_tutorial":
    discriminator = tf_tutorial.Discriminator(image_shape, filters=filters,
                                              sync_batchnorm=sync_batchnorm,
                                              kernel_size=kernel_size,
                                              spectral_norm=spectral_norm, name="discriminator")
  elif architecture == "resnet":
    discriminator = resnet.Discriminator(image_shape, filters=filters,
                                         spectral_norm=spectral_norm, name="discriminator")
  elif architecture == "mlp":
    discriminator = mlp.Discriminator(image_shape, hidden_units=hidden_units, dropout=dropout,
                                      minibatch_kernels=minibatch_kernels,
                                      minibatch_kernel_dim=minibatch_kernel_dim,
                                      spectral_norm=spectral_norm, name="discriminator")
  else:
    discriminator = dcgan.Discriminator(image_shape, filters=filters,
                                        sync_batchnorm=sync_batchnorm, kernel_size=kernel_size,
                                        minibatch_kernels=minibatch_kernels,
                                        minibatch_kernel_dim=minibatch_kernel_dim,
                                        spectral_norm=spectral_norm, name="discriminator")
  discriminator(keras.ops.zeros((1, *image_shape)))
  if conditioning != "none":
    feature_dim = int(discriminator.features(keras.ops.zeros((1, *image_shape))).shape[-1])
    discriminator = conditional_discriminator.ConditionalDiscriminator(
        discriminator, conditioning, num_classes, feature_dim, name="conditional_discriminator")
    discriminator(keras.ops.zeros((1, *image_shape)), labels=keras.ops.zeros((1,), "int32"))
  return discriminator


def build_models(architecture: str, latent_dim: int, image_shape: Sequence[int],
                 g_filters: int, d_filters: int, sync_batchnorm: bool = False,
                 kernel_size: int = 4, g_refine_blocks: int = 0, minibatch_kernels: int = 0,
                 minibatch_kernel_dim: int = minibatch_discrimination.DEFAULT_KERNEL_DIM,
                 g_units: Sequence[int] = (1200, 1200), d_units: Sequence[int] = (240, 240),
                 d_dropout: float = 0.5, spectral_norm: bool = False,
                 conditioning: str = "none", num_classes: int = 0,
                 g_refine_kernel_size: int = 0) -> Tuple[keras.Model, keras.Model]:
  """Returns (generator, discriminator), built for examples of `image_shape`; both
  class-conditional when `conditioning` is not none (`num_classes` classes)."""
  check_conditional(architecture, conditioning)
  g_classes = num_classes if conditioning != "none" else 0
  return (build_generator(architecture, latent_dim, image_shape, g_filters, sync_batchnorm,
                          kernel_size=kernel_size, refine_blocks=g_refine_blocks,
                          hidden_units=g_units, num_classes=g_classes,
                          refine_kernel_size=g_refine_kernel_size),
          build_discriminator(architecture, image_shape, d_filters, sync_batchnorm,
                              kernel_size=kernel_size, minibatch_kernels=minibatch_kernels,
                              minibatch_kernel_dim=minibatch_kernel_dim, hidden_units=d_units,
                              dropout=d_dropout, spectral_norm=spectral_norm,
                              conditioning=conditioning, num_classes=g_classes))
