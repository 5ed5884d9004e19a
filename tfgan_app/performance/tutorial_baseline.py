"""TensorFlow's DCGAN tutorial training loop, re-implemented plainly: the benchmark's baseline.

tensorflow.org/tutorials/generative/dcgan, as written there: two `keras.Sequential` models, a
`tf.function` train step with two `GradientTape`s that updates both players from one generator
pass, binary cross-entropy on logits, Adam(1e-4) for each player, noise drawn with
`tf.random.normal` inside the step, float32. Nothing here is shared with our own models or
`gan.GAN`, so that `python -m tfgan_app.benchmark --baseline` compares against the tutorial,
not against ourselves. Models are built under the float32 policy whatever the global one is.
"""

import keras
from keras import layers
import tensorflow as tf

# The tutorial's MNIST images.
IMAGE_SHAPE = (28, 28, 1)


def _float32_layers(build):
  """Builds with the float32 dtype policy (the tutorial's), restoring the global one after."""
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy("float32")
  try:
    return build()
  finally:
    keras.mixed_precision.set_global_policy(previous)


def make_generator_model(noise_dim: int = 100) -> keras.Model:
  """The tutorial's generator: [B, noise_dim] -> [B, 28, 28, 1] in [-1, 1]."""

  def build():
    model = keras.Sequential([
        keras.Input((noise_dim,)),
        layers.Dense(7 * 7 * 256, use_bias=False),
        layers.BatchNormalization(),
        layers.LeakyReLU(),
        layers.Reshape((7, 7, 256)),
        layers.Conv2DTranspose(128, (5, 5), strides=(1, 1), padding="same", use_bias=False),
        layers.BatchNormalization(),
        layers.LeakyReLU(),
        layers.Conv2DTranspose(64, (5, 5), strides=(2, 2), padding="same", use_bias=False),
        layers.BatchNormalization(),
        layers.LeakyReLU(),
        layers.Conv2DTranspose(1, (5, 5), strides=(2, 2), padding="same", use_bias=False,
                               activation="tanh"),
    ], name="tutorial_generator")
    return model

  return _float32_layers(build)


def make_discriminator_model() -> keras.Model:
  """The tutorial's discriminator: [B, 28, 28, 1] -> logits [B, 1]."""

  def build():
    return keras.Sequential([
        keras.Input(IMAGE_SHAPE),
        layers.Conv2D(64, (5, 5), strides=(2, 2), padding="same"),
        layers.LeakyReLU(),
        layers.Dropout(0.3),
        layers.Conv2D(128, (5, 5), strides=(2, 2), padding="same"),
        layers.LeakyReLU(),
        layers.Dropout(0.3),
        layers.Flatten(),
        layers.Dense(1),
    ], name="tutorial_discriminator")

  return _float32_layers(build)


class TutorialLoop:
  """The tutorial's models, optimizers and `train_step`.

  `train_step(images)` runs one step on a float32 batch [B, 28, 28, 1] in [-1, 1] and returns
  (gen_loss, disc_loss).
  """

  def __init__(self, noise_dim: int = 100, learning_rate: float = 1e-4):
    self.noise_dim = noise_dim
    self.generator = make_generator_model(noise_dim)
    self.discriminator = make_discriminator_model()
    self.cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)
    self.generator_optimizer = keras.optimizers.Adam(learning_rate)
    self.discriminator_optimizer = keras.optimizers.Adam(learning_rate)
    self.train_step = tf.function(self._train_step)

  def discriminator_loss(self, real_output, fake_output):
    real_loss = self.cross_entropy(tf.ones_like(real_output), real_output)
    fake_loss = self.cross_entropy(tf.zeros_like(fake_output), fake_output)
    return real_loss + fake_loss

  def generator_loss(self, fake_output):
    return self.cross_entropy(tf.ones_like(fake_output), fake_output)

  def _train_step(self, images):
    noise = tf.random.normal([tf.shape(images)[0], self.noise_dim])
    with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
      generated_images = self.generator(noise, training=True)
      real_output = self.discriminator(images, training=True)
      fake_output = self.discriminator(generated_images, training=True)
      gen_loss = self.generator_loss(fake_output)
      disc_loss = self.discriminator_loss(real_output, fake_output)
    gradients_of_generator = gen_tape.gradient(gen_loss, self.generator.trainable_variables)
    gradients_of_discriminator = disc_tape.gradient(disc_loss,
                                                    self.discriminator.trainable_variables)
    self.generator_optimizer.apply_gradients(
        zip(gradients_of_generator, self.generator.trainable_variables))
    self.discriminator_optimizer.apply_gradients(
        zip(gradients_of_discriminator, self.discriminator.trainable_variables))
    return gen_loss, disc_loss
