"""The domain classifier's architectures and their training recipes.

- `small_cnn`: two conv/pool stages and a 128-unit feature layer, for 28x28 greyscale digits and
  clothes (MNIST, Fashion-MNIST); trained with Adam, no augmentation.
- `colour_cnn`: for 32x32 colour images (CIFAR-10). The layout of Keller Jordan's airbench
  (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds on a single GPU"), narrowed for CPUs: a 2x2
  stem convolution, then three blocks of conv -> max-pool -> BatchNorm -> GELU -> conv -> BatchNorm
  -> GELU with 64, 128 and 256 channels, global max-pooling (the 256 features) and a linear head.
  Trained with Nesterov SGD, label smoothing and random crops (reflect-padded by 2) plus
  horizontal flips (`augment`), the recipe of airbench without its whitening initialisation,
  lookahead and test-time augmentation.

`auto` picks `colour_cnn` for 3-channel images and `small_cnn` otherwise.
"""

import dataclasses
from typing import Sequence

import keras
from keras import layers
import tensorflow as tf

from tfgan_app.data import datasets as data

# Tensor and layer names: a contract with the exported classifier.
IMAGES = "images"
LOGITS = "logits"
FEATURES = "features"

ARCHITECTURES = ("auto", "small_cnn", "colour_cnn")
SMALL_CNN_FEATURE_DIM = 128
COLOUR_CNN_WIDTHS = (64, 128, 256)


@dataclasses.dataclass(frozen=True)
class Recipe:
  """How an architecture is trained by default (the command's flags override the numbers)."""
  epochs: int
  batch_size: int
  learning_rate: float
  optimizer: str  # "adam" or "sgd_nesterov"
  label_smoothing: float
  weight_decay: float  # L2 coefficient on kernels (0: none).
  augment: bool  # Random crop + horizontal flip of training images.


# small_cnn: measured on the 2-core reference machine: 3 epochs reach 99.25-99.3% on MNIST
# (seeds 0-2) and 91.4% on Fashion-MNIST; 2 epochs stop at about 99.1%, too close to 99%.
# colour_cnn: sized for a 40-minute budget on 2 CPU cores: 8 epochs reach 86.5% on the CIFAR-10
# JPEG folder (3 epochs: 78.2%); see README, "Measuring generators".
RECIPES = {
    "small_cnn": Recipe(epochs=3, batch_size=128, learning_rate=3e-3, optimizer="adam",
                        label_smoothing=0.0, weight_decay=0.0, augment=False),
    "colour_cnn": Recipe(epochs=8, batch_size=256, learning_rate=0.2,
                         optimizer="sgd_nesterov", label_smoothing=0.2, weight_decay=2.5e-4,
                         augment=True),
}


def resolve_architecture(architecture: str, image_shape: Sequence[int]) -> str:
  """"auto" -> "colour_cnn" for 3-channel images, else "small_cnn"; others are returned.

  Raises:
    ValueError: an architecture not in `ARCHITECTURES`.
  """
  if architecture not in ARCHITECTURES:
    raise ValueError(f"unknown classifier architecture {architecture!r}; accepted: "
                     f"{', '.join(ARCHITECTURES)}")
  if architecture == "auto":
    return "colour_cnn" if image_shape[-1] == 3 else "small_cnn"
  return architecture


def build_small_cnn(image_shape: Sequence[int], num_classes: int,
                    dtype_policy: str = "float32") -> keras.Model:
  """Two conv/pool stages, a 128-unit feature layer, a linear head.

  Plain 3x3 convolutions without batch norm: on 2 CPU cores this net trains at about 1.8x the
  images/s of a BatchNorm variant, and reaches about the same test accuracy per epoch on MNIST.

  Args:
    image_shape: [H, W, C] of the inputs.
    num_classes: number of logits.
    dtype_policy: Keras dtype policy of the hidden layers ("float32" or "mixed_bfloat16").
      Set per layer, never globally, so that callers' policies are untouched; the logits are
      float32 either way.

  Returns:
    A functional `keras.Model` mapping images [N, H, W, C] to logits [N, num_classes]; its
    layer named "features" gives the penultimate activations [N, 128].
  """
  policy = dtype_policy  # Every layer but the logits.
  inputs = keras.Input(tuple(image_shape), name=IMAGES)
  x = layers.Conv2D(32, 3, padding="same", activation="relu", dtype=policy,
                    name="conv1")(inputs)  # [N, H, W, 32]
  x = layers.MaxPooling2D(dtype=policy, name="pool1")(x)  # [N, H/2, W/2, 32]
  x = layers.Conv2D(64, 3, padding="same", activation="relu", dtype=policy, name="conv2")(x)
  x = layers.MaxPooling2D(dtype=policy, name="pool2")(x)  # [N, H/4, W/4, 64]
  x = layers.Flatten(dtype=policy, name="flatten")(x)
  features = layers.Dense(SMALL_CNN_FEATURE_DIM, activation="relu", dtype=policy,
                          name=FEATURES)(x)  # [N, 128]
  x = layers.Dropout(0.3, dtype=policy, name="dropout")(features)
  logits = layers.Dense(num_classes, dtype="float32", name=LOGITS)(x)  # [N, num_classes]
  return keras.Model(inputs, logits, name="classifier")


def build_colour_cnn(image_shape: Sequence[int], num_classes: int,
                     dtype_policy: str = "float32", weight_decay: float = 0.0) -> keras.Model:
  """The airbench-style BatchNorm CNN (module docstring): images -> logits, 256 features.

  Args:
    image_shape: [H, W, C] of the inputs (H, W >= 16).
    num_classes: number of logits.
    dtype_policy: as in `build_small_cnn`.
    weight_decay: L2 coefficient on every kernel (a training loss term; no effect on outputs).

  Returns:
    A functional `keras.Model` mapping images [N, H, W, C] to logits [N, num_classes]; its
    layer named "features" gives the globally max-pooled last block [N, 256].
  """
  policy = dtype_policy
  regularizer = keras.regularizers.L2(weight_decay) if weight_decay else None
  inputs = keras.Input(tuple(image_shape), name=IMAGES)
  x = layers.Conv2D(24, 2, padding="valid", kernel_regularizer=regularizer, dtype=policy,
                    name="stem")(inputs)  # [N, H-1, W-1, 24]
  x = layers.Activation("gelu", dtype=policy, name="stem_gelu")(x)
  for index, width in enumerate(COLOUR_CNN_WIDTHS):
    name = f"block{index + 1}"
    x = layers.Conv2D(width, 3, padding="same", use_bias=False, kernel_regularizer=regularizer,
                      dtype=policy, name=f"{name}_conv1")(x)
    x = layers.MaxPooling2D(dtype=policy, name=f"{name}_pool")(x)  # Halves H and W.
    x = layers.BatchNormalization(momentum=0.9, dtype=policy, name=f"{name}_bn1")(x)
    x = layers.Activation("gelu", dtype=policy, name=f"{name}_gelu1")(x)
    x = layers.Conv2D(width, 3, padding="same", use_bias=False, kernel_regularizer=regularizer,
                      dtype=policy, name=f"{name}_conv2")(x)
    x = layers.BatchNormalization(momentum=0.9, dtype=policy, name=f"{name}_bn2")(x)
    x = layers.Activation("gelu", dtype=policy, name=f"{name}_gelu2")(x)
  # 32x32 inputs: [N, 3, 3, 256] here.
  features = layers.GlobalMaxPooling2D(dtype=policy, name=FEATURES)(x)  # [N, 256]
  logits = layers.Dense(num_classes, kernel_regularizer=regularizer, dtype="float32",
                        name=LOGITS)(features)  # [N, num_classes]
  return keras.Model(inputs, logits, name="classifier")


def build_model(image_shape: Sequence[int], num_classes: int, dtype_policy: str = "float32",
                architecture: str = "small_cnn", weight_decay: float = 0.0) -> keras.Model:
  """The classifier `architecture` ("auto" resolves by image shape); see the builders."""
  architecture = resolve_architecture(architecture, image_shape)
  if architecture == "colour_cnn":
    return build_colour_cnn(image_shape, num_classes, dtype_policy, weight_decay)
  return build_small_cnn(image_shape, num_classes, dtype_policy)


def augment(images: tf.Tensor, seed: tf.Tensor, pad: int = 2) -> tf.Tensor:
  """Random crop after reflect-padding by `pad`, and a random horizontal flip, per image.

  Args:
    images: [B, H, W, C] (any dtype).
    seed: int [2], a stateless seed (one per batch, e.g. from the batch index).
    pad: padding in pixels on each side; crops shift the image by up to `pad`.

  Returns:
    [B, H, W, C] of the same dtype.
  """
  height, width = tf.shape(images)[1], tf.shape(images)[2]
  padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
  batch = tf.shape(images)[0]
  offsets = tf.random.stateless_uniform([batch, 2], seed, 0, 2 * pad + 1, tf.int32)
  flips = tf.random.stateless_uniform([batch, 1], seed + 1, 0, 2, tf.int32) > 0
  rows = offsets[:, :1] + tf.range(height)[None, :]  # [B, H]
  columns = tf.where(flips, offsets[:, 1:] + width - 1 - tf.range(width)[None, :],
                     offsets[:, 1:] + tf.range(width)[None, :])  # [B, W]; reversed if flipped
  cropped = tf.gather(padded, rows, axis=1, batch_dims=1)  # [B, H, W + 2 pad, C]
  return tf.gather(cropped, columns, axis=2, batch_dims=1)  # [B, H, W, C]


def training_stream(images, labels, recipe, batch_size, epochs, num_classes, seed):
  """The shuffled, batched (and for colour_cnn augmented) stream of `epochs` passes."""
  # uint8 in memory (a quarter of the float32 size); scaling happens per batch.
  stream = tf.data.Dataset.from_tensor_slices((images, labels))
  stream = stream.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
  stream = stream.batch(batch_size, drop_remainder=True).repeat(epochs)
  if recipe.augment:
    # One stateless seed [2] per batch, distinct over the whole run.
    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    stream = tf.data.Dataset.zip((stream, seeds)).map(
        lambda batch, batch_seed: (augment(batch[0], batch_seed), batch[1]),
        num_parallel_calls=tf.data.AUTOTUNE)
  smoothing = recipe.label_smoothing

  def scale(batch_images, batch_labels):
    if smoothing:  # Keras smooths only one-hot labels.
      batch_labels = tf.one_hot(batch_labels, num_classes)
    return data.to_unit_range(batch_images), batch_labels

  stream = stream.map(scale, num_parallel_calls=tf.data.AUTOTUNE)
  return stream.prefetch(tf.data.AUTOTUNE)


def compile_model(model, recipe, learning_rate, total_steps):
  """Compiles `model` with the recipe's optimizer and loss, warmup + cosine decay to 0."""
  # Warmup then cosine decay: a high peak rate early, which a few-epoch budget needs, without
  # the divergence a cold start at that rate risks.
  schedule = keras.optimizers.schedules.CosineDecay(
      0.0, total_steps, warmup_target=learning_rate, warmup_steps=max(1, total_steps // 10))
  if recipe.optimizer == "adam":
    optimizer = keras.optimizers.Adam(schedule)
  else:
    optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True)
  if recipe.label_smoothing:
    loss = keras.losses.CategoricalCrossentropy(from_logits=True,
                                                label_smoothing=recipe.label_smoothing)
  else:
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
