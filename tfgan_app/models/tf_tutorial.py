"""The generator and discriminator of TensorFlow's DCGAN tutorial.

tensorflow.org/tutorials/generative/dcgan.

Kept layer for layer, so that users can compare our training loop with the tutorial's like for
like (configs/tf_tutorial.cfg, `python -m tfgan_app.benchmark --baseline`):

  G: Dense(7*7*256, no bias) BN LeakyReLU -> [7, 7, 256]; Conv2DTranspose 128 5x5 stride 1
     BN LeakyReLU; 64 5x5 stride 2 BN LeakyReLU; 1 5x5 stride 2 tanh -> [28, 28, 1].
  D: Conv 64 5x5 stride 2 LeakyReLU Dropout(0.3); Conv 128 5x5 stride 2 LeakyReLU Dropout(0.3);
     Flatten; Dense(1) -> logits.

Keras's defaults as the tutorial uses them: BatchNormalization(momentum=0.99, epsilon=1e-3),
LeakyReLU slope 0.3. The image must be 28x28 (the tutorial's MNIST); `filters` scale the
channel widths (64 gives the tutorial's), `kernel_size` the kernels (5 gives the tutorial's).

The same layers computed faster (README, Performance): BatchNorm trained by TensorFlow's fused
kernel (`fused_batchnorm`), dropout masks from 16 random bits per unit (`fast_dropout`), the
single-channel image layers (G's output, D's input) over their stride phases (`phase_conv`).
"""

from typing import Sequence

import keras
from keras import layers

from tfgan_app.models import fast_dropout
from tfgan_app.models import fused_batchnorm
from tfgan_app.models import phase_conv
from tfgan_app.models import spectral_norm as spectral_norm_lib
from tfgan_app.models import strided_conv

# tf.keras.layers.LeakyReLU's default slope, which the tutorial relies on.
LEAKY_SLOPE = 0.3
DROPOUT_RATE = 0.3
IMAGE_SIZE = 28


def check_shape(image_shape) -> tuple:
  shape = tuple(int(d) for d in image_shape)
  if shape[0] != IMAGE_SIZE or shape[1] != IMAGE_SIZE:
    raise ValueError(f"the tf_tutorial architecture makes {IMAGE_SIZE}x{IMAGE_SIZE} images, got "
                     f"{shape[0]}x{shape[1]}; use --image_size=28 or --architecture=dcgan")
  return shape


def _batch_norm(synchronized: bool, name: str):
  # Keras's BatchNormalization (the tutorial's defaults), trained by the fused kernel.
  return fused_batchnorm.FusedBatchNormalization(synchronized=synchronized, name=name)


@keras.saving.register_keras_serializable(package="tfgan_app")
class Generator(keras.Model):
  """Maps latents [B, latent_dim] to images [B, 28, 28, C] in [-1, 1]."""

  def __init__(self, latent_dim: int, image_shape: Sequence[int], filters: int = 64,
               sync_batchnorm: bool = False, kernel_size: int = 5, **kwargs):
    """Builds the layers.

    Args:
      latent_dim: dimension of z.
      image_shape: [28, 28, C] of the output.
      filters: channels of the last hidden feature map (the tutorial: 64); the two before it
        have 2x and 4x as many.
      sync_batchnorm: BatchNorm statistics over the global batch under tf.distribute.
      kernel_size: side of the transposed-convolution kernels (the tutorial: 5).
      **kwargs: keras.Model arguments (name, ...).
    """
    super().__init__(**kwargs)
    self.latent_dim = int(latent_dim)
    self.image_shape = check_shape(image_shape)
    self.filters = int(filters)
    self.sync_batchnorm = bool(sync_batchnorm)
    self.kernel_size = int(kernel_size)
    widest = 4 * self.filters
    # One attribute per layer: Keras 3 hides layers kept in lists from tf.train.Checkpoint.
    self.project = layers.Dense(7 * 7 * widest, use_bias=False, name="project")
    self.project_bn = _batch_norm(self.sync_batchnorm, "project_bn")
    self.reshape = layers.Reshape((7, 7, widest))
    self.up0 = layers.Conv2DTranspose(2 * self.filters, self.kernel_size, strides=1,
                                      padding="same", use_bias=False, name="up0")
    self.up0_bn = _batch_norm(self.sync_batchnorm, "up0_bn")
    self.up1 = strided_conv.StridedConv2DTranspose(self.filters, self.kernel_size, strides=2,
                                                   padding="same", use_bias=False, name="up1")
    self.up1_bn = _batch_norm(self.sync_batchnorm, "up1_bn")
    self.to_image = phase_conv.PhaseConv2DTranspose(self.image_shape[2], self.kernel_size,
                                                    strides=2, padding="same", use_bias=False,
                                                    name="to_image")

  def call(self, latents, training=False):
    x = self.project(latents)  # [B, 7*7*4f]
    x = keras.activations.leaky_relu(self.project_bn(x, training=training), LEAKY_SLOPE)
    x = self.reshape(x)  # [B, 7, 7, 4f]
    x = keras.activations.leaky_relu(self.up0_bn(self.up0(x), training=training),
                                     LEAKY_SLOPE)  # [B, 7, 7, 2f]
    x = keras.activations.leaky_relu(self.up1_bn(self.up1(x), training=training),
                                     LEAKY_SLOPE)  # [B, 14, 14, f]
    x = self.to_image(x)  # [B, 28, 28, C]
    # tanh in float32 even under a mixed-precision policy: the output is the image.
    return keras.activations.tanh(keras.ops.cast(x, "float32"))

  def get_config(self):
    return {"latent_dim": self.latent_dim, "image_shape": list(self.image_shape),
            "filters": self.filters, "sync_batchnorm": self.sync_batchnorm,
            "kernel_size": self.kernel_size, "name": self.name}


@keras.saving.register_keras_serializable(package="tfgan_app")
class Discriminator(keras.Model):
  """Maps images [B, 28, 28, C] in [-1, 1] to logits [B, 1] of P(real)."""

  def __init__(self, image_shape: Sequence[int], filters: int = 64,
               sync_batchnorm: bool = False, kernel_size: int = 5, spectral_norm: bool = False,
               **kwargs):
    """Builds the layers.

    Args:
      image_shape: [28, 28, C] of the input.
      filters: channels of the first convolution (the tutorial: 64); the second has twice as
        many.
      sync_batchnorm: unused (the tutorial's discriminator has no BatchNorm); accepted so that
        every architecture takes the same arguments.
      kernel_size: side of the convolution kernels (the tutorial: 5).
      spectral_norm: spectral normalisation (Miyato et al. 2018, `spectral_norm`) of all three
        layers (not the tutorial's; its dropout stays).
      **kwargs: keras.Model arguments (name, ...).
    """
    super().__init__(**kwargs)
    self.image_shape = check_shape(image_shape)
    self.filters = int(filters)
    self.sync_batchnorm = bool(sync_batchnorm)
    self.kernel_size = int(kernel_size)
    self.spectral_norm = bool(spectral_norm)
    normalized = lambda base: spectral_norm_lib.layer_class(base, self.spectral_norm)
    self.down0 = normalized(phase_conv.PhaseConv2D)(self.filters, self.kernel_size, strides=2,
                                                    padding="same", name="down0")
    self.dropout0 = fast_dropout.FastDropout(DROPOUT_RATE, name="dropout0")
    self.down1 = normalized(strided_conv.StridedConv2D)(2 * self.filters, self.kernel_size,
                                                        strides=2, padding="same", name="down1")
    self.dropout1 = fast_dropout.FastDropout(DROPOUT_RATE, name="dropout1")
    self.flatten = layers.Flatten()
    self.to_logit = normalized(layers.Dense)(1, name="to_logit")

  def random_states(self) -> dict:
    """The dropout layers' RNG states (raw tf.Variables), by layer name.

    Keras 3 keeps them in `SeedGenerator`s, which tf.train.Checkpoint does not see through the
    model; train.make_checkpoint adds them, so that a resumed run draws the same masks.
    """
    return {name: getattr(self, name).seed_generator.state.value
            for name in ("dropout0", "dropout1")}

  def features(self, inputs, training=False):
    """The flattened features before the last Dense layer, [B, 7*7*2f]."""
    x = keras.activations.leaky_relu(self.down0(inputs, training=training),
                                     LEAKY_SLOPE)  # [B, 14, 14, f]
    x = self.dropout0(x, training=training)
    x = keras.activations.leaky_relu(self.down1(x, training=training),
                                     LEAKY_SLOPE)  # [B, 7, 7, 2f]
    x = self.dropout1(x, training=training)
    return self.flatten(x)  # [B, 7*7*2f]

  def call(self, images, training=False):
    return keras.ops.cast(self.to_logit(self.features(images, training=training),
                                        training=training), "float32")  # [B, 1]

  def get_config(self):
    return {"image_shape": list(self.image_shape), "filters": self.filters,
            "sync_batchnorm": self.sync_batchnorm, "kernel_size": self.kernel_size,
            "spectral_norm": self.spectral_norm, "name": self.name}
