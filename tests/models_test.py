"""Shapes, value ranges and DCGAN structure of the generator and discriminator."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgan_app import models
from tfgan_app.models import dcgan


@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3), (64, 3)])
def test_generator_and_discriminator_shapes_and_ranges(size, channels):
  generator, discriminator = models.build_models(
      "dcgan", latent_dim=16, image_shape=(size, size, channels), g_filters=8, d_filters=8)
  latents = tf.random.stateless_normal([5, 16], seed=[1, 2]) * 10.0
  images = generator(latents, training=False)
  assert images.shape == (5, size, size, channels)
  assert images.dtype == tf.float32
  values = images.numpy()
  assert values.min() >= -1.0 and values.max() <= 1.0
  logits = discriminator(images, training=False)
  assert logits.shape == (5, 1)
  # Logits, not probabilities: an unbounded score.
  big = discriminator(tf.fill([2, size, size, channels], 30.0), training=False).numpy()
  assert np.all(np.isfinite(big))


def test_upsampling_plan():
  assert dcgan.upsampling_plan(28) == (7, 2)
  assert dcgan.upsampling_plan(32) == (4, 3)
  assert dcgan.upsampling_plan(64) == (4, 4)
  for bad in (0, -4, 27, 14):
    with pytest.raises(ValueError, match="image_size"):
      dcgan.upsampling_plan(bad)


def test_dcgan_structure():
  generator, discriminator = models.build_models("dcgan", 16, (32, 32, 3), 8, 8)
  # No BatchNorm on G's output layer: the last layer is the image convolution, then tanh.
  assert generator.layers[-1].name == "to_image"
  assert generator.to_image.filters == 3
  assert not any(isinstance(layer, keras.layers.MaxPooling2D)
                 for layer in generator.layers + discriminator.layers)
  # No BatchNorm on D's input layer; strided convolutions everywhere.
  first_conv, first_norm = discriminator.down_blocks[0]
  assert first_norm is None
  assert all(conv.strides == (2, 2) for conv, _ in discriminator.down_blocks)
  assert all(norm is not None for _, norm in discriminator.down_blocks[1:])
  assert first_conv.filters == 8


def test_get_config_round_trip():
  generator, discriminator = models.build_models("dcgan", 16, (28, 28, 1), 8, 8)
  rebuilt = dcgan.Generator.from_config(generator.get_config())
  assert rebuilt.latent_dim == 16 and rebuilt.image_shape == (28, 28, 1)
  assert dcgan.Discriminator.from_config(discriminator.get_config()).filters == 8


def test_unknown_architecture():
  with pytest.raises(ValueError, match="accepted: dcgan"):
    models.build_models("resnet", 16, (28, 28, 1), 8, 8)
