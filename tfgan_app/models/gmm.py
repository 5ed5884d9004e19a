"""A Gaussian mixture over images, and the map from latents to its samples (`--architecture=gmm`).

The maximum-likelihood baseline that GANs are measured against: K Gaussians with diagonal
covariances over the flattened image x in [-1, 1]^D (D = H * W * C),

  p(x) = sum_k w_k N(x; mu_k, diag(sigma_k^2)),

as a TensorFlow Probability `MixtureSameFamily` (`distribution()`). It is fitted by EM
(`tfgan_app.maximum_likelihood`); this module only holds the parameters and samples.

To be sampled, evaluated and served like a GAN generator, the mixture is also a deterministic
map from latents z ~ N(0, I) of dimension D + 1 to images (`call`):

  u = Phi(z_0)                        (the normal CDF: u is uniform on (0, 1))
  k = the component whose slice of the cumulative weights [w_1 + ... + w_{k-1}, w_1 + ... + w_k)
      holds u                         (so P(k) = w_k)
  x = mu_k + sigma_k * z_{1:D+1}      (given k, N(mu_k, diag(sigma_k^2)))

then x is reshaped to [H, W, C] and clipped to [-1, 1] (the image range; the export rounds to
uint8). For z ~ N(0, I) this draws exactly from the mixture. Latents near each other usually
share a component, so interpolations stay within one component and then jump.
"""

import math
from typing import Sequence

import keras
import tensorflow as tf
import tensorflow_probability as tfp


def latent_dim_for(image_shape: Sequence[int]) -> int:
  """The latent dimension of a mixture over images of `image_shape`: pixels + 1."""
  return math.prod(int(d) for d in image_shape) + 1


@keras.saving.register_keras_serializable(package="tfgan_app")
class GaussianMixture(keras.Model):
  """Mixture weights (as logits [K]), means [K, D] and log-variances [K, D] over images."""

  def __init__(self, num_components: int, image_shape: Sequence[int], **kwargs):
    """Declares the mixture; the weights are created by `build` (call it once).

    Args:
      num_components: K.
      image_shape: [H, W, C] of the images.
      **kwargs: keras.Model arguments (name, ...). The mixture computes in float32 under any
        mixed-precision policy: bfloat16 latents would round the component choice and noise.
    """
    kwargs.setdefault("dtype", "float32")
    super().__init__(**kwargs)
    if num_components < 1:
      raise ValueError(f"num_components must be >= 1, got {num_components}")
    self.num_components = int(num_components)
    self.image_shape = tuple(int(d) for d in image_shape)
    self.num_pixels = math.prod(self.image_shape)
    self.latent_dim = self.num_pixels + 1

  def build(self, input_shape=None):
    del input_shape
    # float32 whatever the global policy: these are the model, not activations.
    self.logits = self.add_weight(name="logits", shape=(self.num_components,),
                                  initializer="zeros", dtype="float32")
    self.means = self.add_weight(name="means", shape=(self.num_components, self.num_pixels),
                                 initializer="zeros", dtype="float32")
    self.log_variances = self.add_weight(
        name="log_variances", shape=(self.num_components, self.num_pixels),
        initializer="zeros", dtype="float32")

  def distribution(self) -> tfp.distributions.MixtureSameFamily:
    """p(x) over flattened images [..., D] as a TFP distribution."""
    scales = tf.exp(0.5 * tf.convert_to_tensor(self.log_variances))
    return tfp.distributions.MixtureSameFamily(
        mixture_distribution=tfp.distributions.Categorical(
            logits=tf.convert_to_tensor(self.logits)),
        components_distribution=tfp.distributions.MultivariateNormalDiag(
            loc=tf.convert_to_tensor(self.means), scale_diag=scales))

  def components(self, latents) -> tf.Tensor:
    """The component k [N] that the first latent coordinate picks (see the module docstring)."""
    uniform = 0.5 * tf.math.erfc(-tf.cast(latents[:, 0], tf.float32) / math.sqrt(2.0))  # [N]
    cumulative = tf.math.cumsum(tf.nn.softmax(self.logits))  # [K]
    # Count the boundaries below u; the last boundary (1) is left out so that k <= K - 1.
    return tf.reduce_sum(tf.cast(uniform[:, None] >= cumulative[None, :-1], tf.int32), axis=1)

  def call(self, latents, training=False):
    del training  # Sampling is the same in both modes.
    latents = tf.cast(latents, tf.float32)  # [N, D + 1]
    chosen = self.components(latents)  # [N]
    means = tf.gather(self.means, chosen)  # [N, D]
    scales = tf.exp(0.5 * tf.gather(self.log_variances, chosen))  # [N, D]
    pixels = means + scales * latents[:, 1:]  # [N, D]
    images = tf.reshape(pixels, (-1, *self.image_shape))  # [N, H, W, C]
    return tf.clip_by_value(images, -1.0, 1.0)

  def get_config(self):
    return {"num_components": self.num_components, "image_shape": list(self.image_shape),
            "name": self.name}


def build_gaussian_mixture(num_components: int, image_shape: Sequence[int],
                           name: str = "gmm") -> GaussianMixture:
  """A built `GaussianMixture` (weights created now, before any checkpoint restore)."""
  mixture = GaussianMixture(num_components, image_shape, name=name)
  mixture(tf.zeros([1, latent_dim_for(image_shape)]))
  return mixture
