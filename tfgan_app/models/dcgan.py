"""DCGAN generator and discriminator (Radford, Metz & Chintala 2016, arXiv:1511.06434).

Architecture guidelines followed: strided convolutions instead of pooling in D, transposed
convolutions in G; BatchNorm in both except G's output layer and D's input layer; ReLU in G
with a tanh output; LeakyReLU(0.2) in D. D returns logits (the sigmoid lives in the losses,
where it is numerically stable). With spectral normalisation (Miyato et al. 2018) D's layers
are normalised and D has no BatchNorm, as in SNGAN's discriminators.

Keras's layers, some computed faster with the same variables and results (README,
Performance): BatchNorm by the fused kernel (`fused_batchnorm`), the image layers over their
stride phases (`phase_conv`), the other strided layers with a faster kernel gradient
(`strided_conv`).
"""

from typing import Sequence, Tuple

import keras
from keras import layers

from tfgan_app.models import conditional_batchnorm
from tfgan_app.models import fused_batchnorm
from tfgan_app.models import minibatch_discrimination
from tfgan_app.models import phase_conv
from tfgan_app.models import spectral_norm as spectral_norm_lib
from tfgan_app.models import strided_conv


def upsampling_plan(image_size: int) -> Tuple[int, int]:
  """Splits `image_size` into (base, doublings) with image_size = base * 2**doublings.

  The generator starts from a base x base feature map and doubles it `doublings` times; base is
  at most 7 so that every size DCGAN users train on works: 28 = 7 * 2**2, 32 = 4 * 2**3,
  64 = 4 * 2**4, 48 = 6 * 2**3.

  Raises:
    ValueError: `image_size` is not of that form with at least two doublings.
  """
  if image_size <= 0:
    raise ValueError(f"image_size must be positive, got {image_size}")
  base, doublings = image_size, 0
  while base > 7 and base % 2 == 0:
    base //= 2
    doublings += 1
  if base > 7 or doublings < 2:
    raise ValueError(
        f"image_size {image_size} is not base * 2**n with base <= 7 and n >= 2; accepted "
        "sizes include 12, 16, 28, 32, 48, 56, 64, 96, 128")
  return base, doublings


def _batch_norm(synchronized: bool, name: str, num_classes: int = 0):
  # momentum 0.9 rather than Keras's 0.99: GAN statistics drift quickly, and the generator is
  # sampled in inference mode.
  if num_classes:
    return conditional_batchnorm.ConditionalBatchNormalization(
        num_classes, momentum=0.9, epsilon=1e-5, synchronized=synchronized, name=name)
  return fused_batchnorm.FusedBatchNormalization(momentum=0.9, epsilon=1e-5,
                                                 synchronized=synchronized, name=name)


@keras.saving.register_keras_serializable(package="tfgan_app")
class Generator(keras.Model):
  """Maps latents [B, latent_dim] (and, when conditional, labels [B]) to images [B, H, W, C] in
  [-1, 1].

  Class-conditional (num_classes > 0): every BatchNorm is class-conditional
  (`conditional_batchnorm`: gamma[y], beta[y] per class), called as
  `generator(latents, labels=labels)`; the rest of the network is the same.
  """

  def __init__(self, latent_dim: int, image_shape: Sequence[int], filters: int = 64,
               sync_batchnorm: bool = False, kernel_size: int = 4, refine_blocks: int = 0,
               num_classes: int = 0, refine_kernel_size: int = 0, **kwargs):
    """Builds the layers.

    Args:
      latent_dim: dimension of z.
      image_shape: [H, W, C] of the output, H == W.
      filters: channels of the last hidden feature map; each layer inward doubles them.
      sync_batchnorm: BatchNorm statistics over the global batch under tf.distribute.
      kernel_size: side of the transposed-convolution kernels.
      refine_blocks: stride-1 transposed-convolution blocks (BatchNorm, ReLU) at the base
        resolution, before the upsampling ones. The TensorFlow DCGAN tutorial's generator has
        one; it makes better-formed MNIST digits per step at little cost (the base map is small).
      num_classes: classes of a class-conditional generator; 0: unconditional.
      refine_kernel_size: side of the refine blocks' kernels; 0: `kernel_size`. The base map is
        small, so 3x3 refine blocks keep most of what 5x5 ones add at about a third of the cost.
      **kwargs: keras.Model arguments (name, ...).
    """
    super().__init__(**kwargs)
    self.kernel_size = int(kernel_size)
    self.refine_blocks = int(refine_blocks)
    self.refine_kernel_size = int(refine_kernel_size) or self.kernel_size
    self.latent_dim = int(latent_dim)
    self.image_shape = tuple(int(d) for d in image_shape)
    self.filters = int(filters)
    self.sync_batchnorm = bool(sync_batchnorm)
    self.num_classes = int(num_classes)
    height, width, channels = self.image_shape
    if height != width:
      raise ValueError(f"Generator needs square images, got {self.image_shape}")
    base, doublings = upsampling_plan(height)
    widest = self.filters * 2 ** (doublings - 1)

    self.project = layers.Dense(base * base * widest, use_bias=False, name="project")
    self.project_bn = _batch_norm(self.sync_batchnorm, "project_bn", self.num_classes)
    self.reshape = layers.Reshape((base, base, widest))
    for index in range(self.refine_blocks):
      setattr(self, f"refine{index}", layers.Conv2DTranspose(
          widest, self.refine_kernel_size, strides=1, padding="same", use_bias=False,
          name=f"refine{index}"))
      setattr(self, f"refine{index}_bn", _batch_norm(self.sync_batchnorm, f"refine{index}_bn",
                                                             self.num_classes))
    # Each layer is an attribute of its own: Keras 3 hides layers kept in lists from
    # tf.train.Checkpoint (its tracked lists are not TF trackables), so their variables would
    # silently be missing from checkpoints.
    self.num_up_blocks = doublings - 1
    for index in range(self.num_up_blocks):
      block_filters = widest // 2 ** (index + 1)
      setattr(self, f"up{index}", strided_conv.StridedConv2DTranspose(
          block_filters, self.kernel_size, strides=2, padding="same", use_bias=False,
          name=f"up{index}"))
      setattr(self, f"up{index}_bn", _batch_norm(self.sync_batchnorm, f"up{index}_bn", self.num_classes))
    # The output layer: no BatchNorm, tanh to match data scaled to [-1, 1].
    self.to_image = phase_conv.PhaseConv2DTranspose(channels, self.kernel_size, strides=2,
                                                    padding="same", name="to_image")

  def call(self, latents, labels=None, training=False):
    if self.num_classes and labels is None:
      raise ValueError("a class-conditional generator needs labels: generator(latents, "
                       "labels=labels)")

    def norm(layer, x):
      if self.num_classes:
        return layer(x, labels, training=training)
      return layer(x, training=training)

    x = self.project(latents)  # [B, base*base*widest]
    x = keras.activations.relu(norm(self.project_bn, x))
    x = self.reshape(x)  # [B, base, base, widest]
    for index in range(self.refine_blocks):
      conv, bn = getattr(self, f"refine{index}"), getattr(self, f"refine{index}_bn")
      x = keras.activations.relu(norm(bn, conv(x)))  # [B, base, base, widest]
    for index in range(self.num_up_blocks):
      conv, bn = getattr(self, f"up{index}"), getattr(self, f"up{index}_bn")
      x = keras.activations.relu(norm(bn, conv(x)))  # [B, 2h, 2w, c/2]
    x = self.to_image(x)  # [B, H, W, C]
    # tanh in float32 even under a mixed-precision policy: the output is the image.
    return keras.activations.tanh(keras.ops.cast(x, "float32"))

  def get_config(self):
    return {"latent_dim": self.latent_dim, "image_shape": list(self.image_shape),
            "filters": self.filters, "sync_batchnorm": self.sync_batchnorm,
            "kernel_size": self.kernel_size, "refine_blocks": self.refine_blocks,
            "refine_kernel_size": self.refine_kernel_size,
            "num_classes": self.num_classes, "name": self.name}


@keras.saving.register_keras_serializable(package="tfgan_app")
class Discriminator(keras.Model):
  """Maps images [B, H, W, C] in [-1, 1] to logits [B, 1] of P(real)."""

  def __init__(self, image_shape: Sequence[int], filters: int = 64,
               sync_batchnorm: bool = False, kernel_size: int = 4, minibatch_kernels: int = 0,
               minibatch_kernel_dim: int = minibatch_discrimination.DEFAULT_KERNEL_DIM,
               spectral_norm: bool = False, **kwargs):
    """Builds the layers.

    Args:
      image_shape: [H, W, C] of the input, H == W.
      filters: channels of the first convolution; each following one doubles them.
      sync_batchnorm: BatchNorm statistics over the global batch under tf.distribute.
      kernel_size: side of the convolution kernels.
      minibatch_kernels: kernels of a minibatch discrimination layer before the logit layer
        (Salimans et al. 2016); 0: no such layer.
      minibatch_kernel_dim: dimension of each of those kernels.
      spectral_norm: spectral normalisation (Miyato et al. 2018, `spectral_norm`) of every
        convolution and of the logit layer, and no BatchNorm: SNGAN's discriminators have none,
        and BatchNorm's division by the batch's deviation would undo the Lipschitz bound; every
        convolution has a bias instead. The minibatch discrimination layer, when there is one,
        is not normalised.
      **kwargs: keras.Model arguments (name, ...).
    """
    super().__init__(**kwargs)
    self.spectral_norm = bool(spectral_norm)
    self.minibatch_kernels = int(minibatch_kernels)
    self.minibatch_kernel_dim = int(minibatch_kernel_dim)
    self.kernel_size = int(kernel_size)
    self.image_shape = tuple(int(d) for d in image_shape)
    self.filters = int(filters)
    self.sync_batchnorm = bool(sync_batchnorm)
    _, doublings = upsampling_plan(self.image_shape[0])
    # One attribute per layer, as in the Generator (checkpoint tracking).
    self.num_down_blocks = doublings
    for index in range(doublings):
      # The image layer (few channels) over its stride phases, the others with the faster
      # kernel gradient (see phase_conv, strided_conv).
      conv = phase_conv.PhaseConv2D if index == 0 else strided_conv.StridedConv2D
      conv = spectral_norm_lib.layer_class(conv, self.spectral_norm)
      setattr(self, f"down{index}", conv(
          self.filters * 2 ** index, self.kernel_size, strides=2, padding="same",
          use_bias=index == 0 or self.spectral_norm, name=f"down{index}"))
      if self._has_batch_norm(index):
        setattr(self, f"down{index}_bn", _batch_norm(self.sync_batchnorm, f"down{index}_bn"))
    self.flatten = layers.Flatten()
    self.minibatch = minibatch_discrimination.layer_or_identity(self.minibatch_kernels,
                                                                self.minibatch_kernel_dim)
    self.to_logit = spectral_norm_lib.layer_class(layers.Dense, self.spectral_norm)(
        1, name="to_logit")

  def _has_batch_norm(self, index: int) -> bool:
    # None on the input layer (DCGAN: it would erase the data's own statistics), none with
    # spectral normalisation (see __init__).
    return index > 0 and not self.spectral_norm

  def features(self, images, training=False):
    """The last hidden layer [B, F]: the flattened last convolution block, as feature matching
    (Salimans et al. 2016 §3.1) uses it; before minibatch discrimination and the logit."""
    x = images  # [B, H, W, C]
    for index in range(self.num_down_blocks):
      x = getattr(self, f"down{index}")(x, training=training)  # [B, h/2, w/2, c*2]
      if self._has_batch_norm(index):
        x = getattr(self, f"down{index}_bn")(x, training=training)
      x = keras.activations.leaky_relu(x, negative_slope=0.2)
    return self.flatten(x)  # [B, base*base*c]

  def head(self, features, training=False):
    """Logits [B, 1] from `features` [B, F]: minibatch discrimination (if any), then the logit
    layer."""
    x = self.minibatch(features)  # [B, F (+ kernels)]
    return keras.ops.cast(self.to_logit(x, training=training), "float32")  # [B, 1]

  def call(self, images, training=False):
    return self.head(self.features(images, training=training), training=training)

  def get_config(self):
    return {"image_shape": list(self.image_shape), "filters": self.filters,
            "sync_batchnorm": self.sync_batchnorm, "kernel_size": self.kernel_size,
            "minibatch_kernels": self.minibatch_kernels,
            "minibatch_kernel_dim": self.minibatch_kernel_dim,
            "spectral_norm": self.spectral_norm, "name": self.name}
