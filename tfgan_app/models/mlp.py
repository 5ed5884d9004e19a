"""Multilayer-perceptron generator and discriminator (Goodfellow et al. 2014, arXiv:1406.2661).

As in the original GAN: G is an MLP with ReLU hidden layers; D is an MLP trained with dropout
(LeakyReLU(0.2) units here instead of the paper's maxout). Both work on images, which D
flattens and G reshapes (tanh output, for data in [-1, 1]), and on the toy points of
`tfgan_app.toy.distributions` (example shape [D]; linear output, since the points are not bounded).

G's output layer and D's input layer always compute in float32, even under a mixed-precision
policy: bfloat16 resolves about 2**-7 relative, 0.016 at radius 2, which is the size of a ring8
mode (std 0.02).
"""

import math
from typing import Sequence

import keras
from keras import layers

from tfgan_app.models import fast_dropout
from tfgan_app.models import minibatch_discrimination
from tfgan_app.models import spectral_norm as spectral_norm_lib

_NEGATIVE_SLOPE = 0.2


def _is_image(shape) -> bool:
  return len(shape) == 3


@keras.saving.register_keras_serializable(package="tfgan_app")
class Generator(keras.Model):
  """Maps latents [B, latent_dim] to examples [B, *output_shape].

  Images ([H, W, C]) come out through tanh in [-1, 1]; points ([D]) through a linear layer.
  Class-conditional (num_classes > 0), called as `generator(latents, labels=labels)`: the
  first layer sees [z, onehot(y)] (Mirza & Osindero 2014, arXiv:1411.1784), i.e. a learned
  class embedding (that layer's weights of the one-hot part) added to its pre-activation.
  """

  def __init__(self, latent_dim: int, output_shape: Sequence[int],
               hidden_units: Sequence[int] = (1200, 1200), num_classes: int = 0, **kwargs):
    """Builds the layers.

    Args:
      latent_dim: dimension of z.
      output_shape: [H, W, C] for images, [D] for points.
      hidden_units: width of each hidden ReLU layer, input side first (at least one).
      num_classes: classes of a class-conditional generator; 0: unconditional.
      **kwargs: keras.Model arguments (name, ...).
    """
    super().__init__(**kwargs)
    self.num_classes = int(num_classes)
    self.latent_dim = int(latent_dim)
    self.example_shape = tuple(int(d) for d in output_shape)
    self.hidden_units = tuple(int(units) for units in hidden_units)
    if not self.hidden_units or min(self.hidden_units) <= 0:
      raise ValueError(f"hidden_units must be positive widths, got {self.hidden_units}")
    if len(self.example_shape) not in (1, 3):
      raise ValueError(f"output_shape must be [D] (points) or [H, W, C] (images), got "
                       f"{self.example_shape}")
    # One attribute per layer: Keras 3 hides layers kept in lists from tf.train.Checkpoint.
    self.num_hidden = len(self.hidden_units)
    for index, units in enumerate(self.hidden_units):
      setattr(self, f"hidden{index}", layers.Dense(units, name=f"hidden{index}"))
    self.to_output = layers.Dense(math.prod(self.example_shape), dtype="float32",
                                  name="to_output")

  def call(self, latents, labels=None, training=False):
    del training  # No dropout or normalisation in G.
    x = latents  # [B, latent_dim]
    if self.num_classes:
      if labels is None:
        raise ValueError("a class-conditional generator needs labels: generator(latents, "
                         "labels=labels)")
      onehot = keras.ops.one_hot(keras.ops.cast(labels, "int32"), self.num_classes)
      x = keras.ops.concatenate([x, keras.ops.cast(onehot, x.dtype)], axis=-1)  # [B, D + K]
    for index in range(self.num_hidden):
      x = keras.activations.relu(getattr(self, f"hidden{index}")(x))  # [B, units]
    x = self.to_output(keras.ops.cast(x, "float32"))  # [B, prod(shape)]
    if _is_image(self.example_shape):
      x = keras.activations.tanh(x)
    # keras.ops rather than a Reshape layer, which would cast to the policy's bfloat16.
    return keras.ops.reshape(x, (-1, *self.example_shape))  # [B, *shape]

  def get_config(self):
    return {"latent_dim": self.latent_dim, "output_shape": list(self.example_shape),
            "hidden_units": list(self.hidden_units), "num_classes": self.num_classes,
            "name": self.name}


@keras.saving.register_keras_serializable(package="tfgan_app")
class Discriminator(keras.Model):
  """Maps examples [B, *input_shape] to logits [B, 1] of P(real)."""

  def __init__(self, input_shape: Sequence[int], hidden_units: Sequence[int] = (240, 240),
               dropout: float = 0.5, minibatch_kernels: int = 0,
               minibatch_kernel_dim: int = minibatch_discrimination.DEFAULT_KERNEL_DIM,
               spectral_norm: bool = False, **kwargs):
    """Builds the layers.

    Args:
      input_shape: [H, W, C] for images, [D] for points.
      hidden_units: width of each hidden LeakyReLU layer, input side first (at least one).
      dropout: dropout rate after every hidden layer during training, in [0, 1).
      minibatch_kernels: kernels of a minibatch discrimination layer before the logit layer
        (Salimans et al. 2016); 0: no such layer.
      minibatch_kernel_dim: dimension of each of those kernels.
      spectral_norm: spectral normalisation (Miyato et al. 2018, `spectral_norm`) of every
        dense layer; the minibatch discrimination layer, when there is one, is not normalised.
      **kwargs: keras.Model arguments (name, ...).
    """
    super().__init__(**kwargs)
    self.spectral_norm = bool(spectral_norm)
    dense = spectral_norm_lib.layer_class(layers.Dense, self.spectral_norm)
    self.minibatch_kernels = int(minibatch_kernels)
    self.minibatch_kernel_dim = int(minibatch_kernel_dim)
    self.example_shape = tuple(int(d) for d in input_shape)
    self.hidden_units = tuple(int(units) for units in hidden_units)
    self.dropout_rate = float(dropout)
    if not self.hidden_units or min(self.hidden_units) <= 0:
      raise ValueError(f"hidden_units must be positive widths, got {self.hidden_units}")
    if not 0.0 <= self.dropout_rate < 1.0:
      raise ValueError(f"dropout must be in [0, 1), got {self.dropout_rate}")
    self.flatten = layers.Flatten()
    self.num_hidden = len(self.hidden_units)
    for index, units in enumerate(self.hidden_units):
      # The input layer in float32 (see the module docstring).
      setattr(self, f"hidden{index}", dense(
          units, dtype="float32" if index == 0 else None, name=f"hidden{index}"))
      setattr(self, f"dropout{index}", fast_dropout.FastDropout(self.dropout_rate,
                                                                 name=f"dropout{index}"))
    self.minibatch = minibatch_discrimination.layer_or_identity(self.minibatch_kernels,
                                                                self.minibatch_kernel_dim)
    self.to_logit = dense(1, name="to_logit")

  def random_states(self) -> dict:
    """The dropout layers' RNG states (raw tf.Variables), by layer name.

    Keras 3 keeps them in `SeedGenerator`s, which tf.train.Checkpoint does not see through the
    model; a run's checkpoint adds them explicitly, or a resumed run would draw other dropout
    masks than the uninterrupted one. Empty when dropout is off.
    """
    if self.dropout_rate == 0.0:
      return {}
    return {f"dropout{index}": getattr(self, f"dropout{index}").seed_generator.state.value
            for index in range(self.num_hidden)}

  def features(self, inputs, training=False):
    """The last hidden layer's activations [B, F], before its dropout, minibatch discrimination
    and the logit layer.

    Feature matching (Salimans et al. 2016) matches their mean over real and generated batches.
    """
    x = self.flatten(inputs)  # [B, prod(shape)]
    last = self.num_hidden - 1
    for index in range(self.num_hidden):
      x = keras.activations.leaky_relu(getattr(self, f"hidden{index}")(x, training=training),
                                       negative_slope=_NEGATIVE_SLOPE)  # [B, units]
      if index < last:
        x = getattr(self, f"dropout{index}")(x, training=training)
    return x  # [B, hidden_units[-1]]

  def head(self, features, training=False):
    """Logits [B, 1] from `features` [B, F]: the last dropout, minibatch discrimination (if
    any), then the logit layer."""
    x = getattr(self, f"dropout{self.num_hidden - 1}")(features, training=training)
    x = self.minibatch(x)  # [B, F (+ kernels)]
    return keras.ops.cast(self.to_logit(x, training=training), "float32")  # [B, 1]

  def call(self, inputs, training=False):
    return self.head(self.features(inputs, training=training), training=training)

  def get_config(self):
    return {"input_shape": list(self.example_shape), "hidden_units": list(self.hidden_units),
            "dropout": self.dropout_rate, "minibatch_kernels": self.minibatch_kernels,
            "minibatch_kernel_dim": self.minibatch_kernel_dim,
            "spectral_norm": self.spectral_norm, "name": self.name}
