"""ResNet generator and discriminator of SNGAN (Miyato et al. 2018, arXiv:1802.05957).

The CIFAR-10 ResNet of the paper's appendix (after Gulrajani et al. 2017, arXiv:1704.00028),
extended to larger square images by more blocks:

  G: z -> Dense(base*base*g) -> n x UpBlock(g) -> BatchNorm, ReLU -> Conv3x3(C) -> tanh
  D: x -> OptimizedDownBlock(d) -> (n - 2) x DownBlock(d) -> 2 x Block(d) -> ReLU
       -> sum over H, W -> Dense(1)

for images of side base * 2**n (base 4..7, side >= 32; CIFAR-10: 32 = 4 * 2**3, g = 256,
d = 128, i.e. --g_filters=256 --d_filters=128). Every block of G has g channels and every block
of D d channels (`--g_filters`, `--d_filters`); D ends at 2 * base pixels (8x8 for 32x32).

  UpBlock(x)   = Conv3x3(ReLU(BN(Conv3x3(Up(ReLU(BN(x))))))) + Up(Conv1x1(x))
  DownBlock(x) = Pool(Conv3x3(ReLU(Conv3x3(ReLU(x)))))        + Conv1x1(Pool(x))
  OptimizedDownBlock(x) = Pool(Conv3x3(ReLU(Conv3x3(x))))     + Conv1x1(Pool(x))
  Block(x)     = Conv3x3(ReLU(Conv3x3(ReLU(x))))              + x

Up: nearest-neighbour 2x upsampling; Pool: 2x2 average pooling. The 1x1 shortcuts run at the
lower resolution: a 1x1 convolution commutes with both (each output pixel is the same affine map
of the same input pixels), so this is the published function at a quarter of its shortcut cost.
Initialisation as in the authors' Chainer code and Mimicry (Lee & Town 2020): Glorot uniform,
scaled by 2 (gain sqrt(2)) in the residual branches. D has no normalisation (the paper adds
spectral normalisation).

Class-conditional as the ResNet G of Miyato & Koyama 2018 (arXiv:1802.05637; BigGAN, Brock et
al. 2019, computes the same per-class scale and shift from a shared class embedding instead): with
`num_classes` > 0 every BatchNorm of G is class-conditional (`conditional_batchnorm`:
gamma[y], beta[y] tables per layer), made by `Generator._batch_norm`, and G is called as
`generator(latents, labels=labels)`; the rest of G is unchanged. D's logit is one layer,
`Discriminator.head`, over `Discriminator.features`, which is where
`conditional_discriminator.ConditionalDiscriminator` attaches the projection or the auxiliary
classifier.
"""

import functools
from typing import Sequence, Tuple

import keras
from keras import layers

from tfgan_app.models import conditional_batchnorm
from tfgan_app.models import fused_batchnorm
from tfgan_app.models import spectral_norm as spectral_norm_lib

MIN_SIZE = 32
ACCEPTED_SIZES = "32, 40, 48, 56, 64, 80, 96, 112, 128, 256, ..."


def resnet_plan(image_size: int) -> Tuple[int, int]:
  """Splits `image_size` into (base, doublings): image_size = base * 2**doublings, base <= 7.

  Raises:
    ValueError: `image_size` is below 32 or not of that form.
  """
  base, doublings = int(image_size), 0
  while base > 7 and base % 2 == 0:
    base //= 2
    doublings += 1
  if image_size < MIN_SIZE or base > 7:
    raise ValueError(
        f"--architecture=resnet makes square images of side base * 2**n with base 4..7 and "
        f"side >= {MIN_SIZE} (accepted: {ACCEPTED_SIZES}); got {image_size}x{image_size} "
        "(--image_size=S resizes the data)")
  return base, doublings


def check_shape(image_shape: Sequence[int]) -> None:
  """Raises ValueError unless `image_shape` is [S, S, C] with S accepted by `resnet_plan`."""
  height, width = image_shape[0], image_shape[1]
  if height != width:
    raise ValueError(f"--architecture=resnet makes square images (accepted sides: "
                     f"{ACCEPTED_SIZES}); got {height}x{width}")
  resnet_plan(height)


def _block_layer(model, index: int, part: str):
  return getattr(model, f"block{index}_{part}")


def _residual_conv(filters: int, kernel_size: int, name: str, spectral_norm: bool = False):
  # Glorot uniform with gain sqrt(2) (variance scale 2) in the residual branches, as in SNGAN's
  # code: the ReLUs before each convolution halve the variance.
  conv = spectral_norm_lib.layer_class(layers.Conv2D, spectral_norm)
  return conv(filters, kernel_size, padding="same", name=name,
                       kernel_initializer=keras.initializers.VarianceScaling(
                           2.0, mode="fan_avg", distribution="uniform"))


def _shortcut_conv(filters: int, name: str, spectral_norm: bool = False):
  conv = spectral_norm_lib.layer_class(layers.Conv2D, spectral_norm)
  return conv(filters, 1, padding="valid", name=name,
                       kernel_initializer="glorot_uniform")


@keras.saving.register_keras_serializable(package="tfgan_app")
class Generator(keras.Model):
  """Maps latents [B, latent_dim] (and, when conditional, labels [B]) to images [B, H, W, C] in
  [-1, 1] (module docstring)."""

  def __init__(self, latent_dim: int, image_shape: Sequence[int], filters: int = 256,
               sync_batchnorm: bool = False, num_classes: int = 0, **kwargs):
    """Builds the layers.

    Args:
      latent_dim: dimension of z.
      image_shape: [H, W, C] of the output, H == W (see `resnet_plan`).
      filters: channels of the base feature map and of every up block (SNGAN: 256).
      sync_batchnorm: BatchNorm statistics over the global batch under tf.distribute.
      num_classes: classes of a class-conditional generator (class-conditional BatchNorm);
        0: unconditional, with the same layers and variable names as before conditioning.
      **kwargs: keras.Model arguments (name, ...).
    """
    super().__init__(**kwargs)
    self.num_classes = int(num_classes)
    self.latent_dim = int(latent_dim)
    self.image_shape = tuple(int(d) for d in image_shape)
    self.filters = int(filters)
    self.sync_batchnorm = bool(sync_batchnorm)
    check_shape(self.image_shape)
    base, doublings = resnet_plan(self.image_shape[0])
    self.project = layers.Dense(base * base * self.filters, name="project")
    self.reshape = layers.Reshape((base, base, self.filters))
    self.upsample = layers.UpSampling2D(2, interpolation="nearest")
    # One attribute per layer: Keras 3 hides layers kept in lists from tf.train.Checkpoint.
    self.num_blocks = doublings
    for index in range(self.num_blocks):
      block = f"block{index}"
      setattr(self, f"{block}_bn1", self._batch_norm(f"{block}_bn1"))
      setattr(self, f"{block}_conv1", _residual_conv(self.filters, 3, f"{block}_conv1"))
      setattr(self, f"{block}_bn2", self._batch_norm(f"{block}_bn2"))
      setattr(self, f"{block}_conv2", _residual_conv(self.filters, 3, f"{block}_conv2"))
      setattr(self, f"{block}_shortcut", _shortcut_conv(self.filters, f"{block}_shortcut"))
    self.output_bn = self._batch_norm("output_bn")
    self.to_image = layers.Conv2D(self.image_shape[2], 3, padding="same", name="to_image",
                                  kernel_initializer="glorot_uniform")

  def _batch_norm(self, name: str):
    """G's one normalisation layer factory (every BatchNorm of G is made here): class-conditional
    when G is."""
    # momentum 0.9 (PyTorch's 0.1) and epsilon 1e-5, as SNGAN's reference implementations.
    if self.num_classes:
      return conditional_batchnorm.ConditionalBatchNormalization(
          self.num_classes, momentum=0.9, epsilon=1e-5, synchronized=self.sync_batchnorm,
          name=name)
    return fused_batchnorm.FusedBatchNormalization(momentum=0.9, epsilon=1e-5,
                                                   synchronized=self.sync_batchnorm, name=name)

  def _norm(self, layer, x, labels, training):
    if self.num_classes:
      return layer(x, labels, training=training)
    return layer(x, training=training)

  def up_block(self, x, index: int, labels=None, training=False):
    """UpBlock `index` (module docstring): [B, h, w, g] -> [B, 2h, 2w, g]; `labels` [B] for
    a class-conditional G."""
    layer = functools.partial(_block_layer, self, index)
    h = keras.activations.relu(self._norm(layer("bn1"), x, labels, training))
    h = layer("conv1")(self.upsample(h))  # [B, 2h, 2w, g]
    h = keras.activations.relu(self._norm(layer("bn2"), h, labels, training))
    h = layer("conv2")(h)
    return h + self.upsample(layer("shortcut")(x))

  def call(self, latents, labels=None, training=False):
    if self.num_classes and labels is None:
      raise ValueError("a class-conditional generator needs labels: generator(latents, "
                       "labels=labels)")
    x = self.reshape(self.project(latents))  # [B, base, base, g]
    for index in range(self.num_blocks):
      x = self.up_block(x, index, labels=labels, training=training)  # [B, 2h, 2w, g]
    x = keras.activations.relu(self._norm(self.output_bn, x, labels, training))
    x = self.to_image(x)  # [B, H, W, C]
    # tanh in float32 even under a mixed-precision policy: the output is the image.
    return keras.activations.tanh(keras.ops.cast(x, "float32"))

  def get_config(self):
    return {"latent_dim": self.latent_dim, "image_shape": list(self.image_shape),
            "filters": self.filters, "sync_batchnorm": self.sync_batchnorm,
            "num_classes": self.num_classes, "name": self.name}


@keras.saving.register_keras_serializable(package="tfgan_app")
class Discriminator(keras.Model):
  """Maps images [B, H, W, C] in [-1, 1] to logits [B, 1] (module docstring)."""

  def __init__(self, image_shape: Sequence[int], filters: int = 128,
               spectral_norm: bool = False, **kwargs):
    """Builds the layers.

    Args:
      image_shape: [H, W, C] of the input, H == W (see `resnet_plan`).
      filters: channels of every block (SNGAN: 128).
      spectral_norm: every convolution and the logit layer spectrally normalised
        (`models.spectral_norm`), as in SNGAN.
      **kwargs: keras.Model arguments (name, ...).
    """
    super().__init__(**kwargs)
    self.spectral_norm = bool(spectral_norm)
    sn = self.spectral_norm
    self.image_shape = tuple(int(d) for d in image_shape)
    self.filters = int(filters)
    check_shape(self.image_shape)
    _, doublings = resnet_plan(self.image_shape[0])
    self.pool = layers.AveragePooling2D(2)
    # Block 0 is the optimized down block; then down blocks until 2 * base pixels, then two
    # blocks at that resolution. Only the down blocks have (1x1) shortcut convolutions: the
    # others keep their channels and resolution, so their shortcut is the identity.
    self.num_down_blocks = doublings - 1
    self.num_blocks = self.num_down_blocks + 2
    for index in range(self.num_blocks):
      block = f"block{index}"
      setattr(self, f"{block}_conv1", _residual_conv(self.filters, 3, f"{block}_conv1", sn))
      setattr(self, f"{block}_conv2", _residual_conv(self.filters, 3, f"{block}_conv2", sn))
      if index < self.num_down_blocks:
        setattr(self, f"{block}_shortcut",
                _shortcut_conv(self.filters, f"{block}_shortcut", sn))
    self.to_logit = spectral_norm_lib.layer_class(layers.Dense, sn)(
        1, name="to_logit", kernel_initializer="glorot_uniform")

  def block(self, x, index: int, training=False):
    """Block `index` (module docstring): [B, h, w, c] -> [B, h/2, w/2, d] for the down blocks,
    [B, h, w, d] for the others."""
    layer = functools.partial(_block_layer, self, index)
    # The optimized first block convolves the images themselves: a ReLU there would discard
    # their negative half. ReLU as max(x, 0), the same function: with a Relu op here, whose
    # input x also feeds the shortcut, TensorFlow 2.21's grappler remapper fails on the graph
    # ("remapper failed: ... fanout ... exist for missing node ...add") and logs that error at
    # every trace. Same speed (measured: 0.55 CPU s per D step both ways, width 128, batch 64).
    h = x if index == 0 else keras.ops.maximum(x, 0.0)
    # `training` reaches every layer (Keras passes it only to those whose call() takes it), for
    # layers of D that differ in training, such as spectral normalisation's power iteration.
    h = layer("conv1")(h, training=training)
    h = layer("conv2")(keras.activations.relu(h), training=training)
    if index >= self.num_down_blocks:
      return h + x
    return self.pool(h) + layer("shortcut")(self.pool(x), training=training)  # [B, h/2, w/2, d]

  def features(self, images, training=False):
    """The last hidden layer [B, d]: ReLU of the last block summed over its pixels (SNGAN's
    global sum pooling), as feature matching (Salimans et al. 2016 §3.1) uses it."""
    x = images  # [B, H, W, C]
    for index in range(self.num_blocks):
      x = self.block(x, index, training=training)
    x = keras.activations.relu(x)  # [B, 2*base, 2*base, d]
    # Summed in float32: under mixed precision, bfloat16 sums of 64+ values lose digits.
    return keras.ops.sum(keras.ops.cast(x, "float32"), axis=(1, 2))  # [B, d]

  def head(self, features, training=False):
    """Logits [B, 1] from `features` [B, d]: the logit layer (spectrally normalised with
    --spectral_norm)."""
    return keras.ops.cast(self.to_logit(features, training=training), "float32")  # [B, 1]

  def call(self, images, training=False):
    return self.head(self.features(images, training=training), training=training)

  def get_config(self):
    return {"image_shape": list(self.image_shape), "filters": self.filters,
            "spectral_norm": self.spectral_norm, "name": self.name}
