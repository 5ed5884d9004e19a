"""Class-conditional discriminators around any discriminator with `features` and `head`.

The wrapped discriminator computes phi(x) = `features(images, training)` [B, F] and its logit
psi(phi(x)) = `head(features, training)` [B, 1]. Two ways to condition it on the class y:

- projection (Miyato & Koyama 2018, "cGANs with Projection Discriminator", arXiv:1802.05637,
  eq. 3): f(x, y) = psi(phi(x)) + <V[y], phi(x)>, with V a learned [num_classes, F] class
  embedding. The inner product is the log-density-ratio term of a class-conditional model.
- acgan (Odena et al. 2017, "Conditional Image Synthesis with Auxiliary Classifier GANs",
  arXiv:1610.09585): the logit stays psi(phi(x)), unconditioned, and a second head
  c(x) = W phi(x) + b [B, num_classes] predicts the class; its cross-entropy is the auxiliary
  loss (`gan.conditioning`).

Either way the wrapper is itself a discriminator with `features` (the wrapped one's, used by
feature matching) and is called as `discriminator(images, labels=labels, training=...)` ->
logits [B, 1]; `outputs` also returns the class logits (acgan; None for projection).
"""

from typing import Optional, Tuple

import keras
from keras import layers

PROJECTION = "projection"
ACGAN = "acgan"
KINDS = (PROJECTION, ACGAN)


@keras.saving.register_keras_serializable(package="tfgan_app")
class ConditionalDiscriminator(keras.Model):
  """A discriminator `base` conditioned on labels by projection or an auxiliary classifier."""

  def __init__(self, base: keras.Model, kind: str, num_classes: int, feature_dim: int,
               **kwargs):
    """Builds the conditioning layers.

    Args:
      base: a built discriminator with `features(images, training)` [B, F] and
        `head(features, training)` [B, 1].
      kind: `projection` or `acgan`.
      num_classes: number of classes, > 0.
      feature_dim: F.
      **kwargs: keras.Model arguments (name, ...).
    """
    super().__init__(**kwargs)
    if kind not in KINDS:
      raise ValueError(f"unknown conditioning {kind!r}; accepted: {', '.join(KINDS)}")
    if num_classes <= 0:
      raise ValueError(f"num_classes must be positive, got {num_classes}")
    self.base = base
    self.kind = kind
    self.num_classes = int(num_classes)
    self.feature_dim = int(feature_dim)
    if kind == PROJECTION:
      # float32 whatever the policy: one inner product of F terms per example.
      self.embedding = layers.Embedding(self.num_classes, self.feature_dim,
                                        embeddings_initializer="glorot_uniform",
                                        dtype="float32", name="projection")
    else:
      self.classifier = layers.Dense(self.num_classes, dtype="float32", name="classifier")

  def random_states(self) -> dict:
    """The wrapped discriminator's dropout RNG states (see mlp.Discriminator)."""
    return getattr(self.base, "random_states", dict)()

  def features(self, images, training=False):
    """phi(x) [B, F]: the wrapped discriminator's last hidden layer."""
    return self.base.features(images, training=training)

  def outputs(self, images, labels, training=False) -> Tuple[object, Optional[object]]:
    """(logits [B, 1], class logits [B, num_classes] for acgan else None)."""
    phi = self.base.features(images, training=training)  # [B, F]
    logits = self.base.head(phi, training=training)  # [B, 1]
    phi32 = keras.ops.cast(phi, "float32")
    if self.kind == PROJECTION:
      embedded = self.embedding(keras.ops.cast(labels, "int32"))  # [B, F]
      projection = keras.ops.sum(embedded * phi32, axis=-1, keepdims=True)  # [B, 1]
      return logits + projection, None
    return logits, self.classifier(phi32)

  def call(self, images, labels=None, training=False):
    if labels is None and self.kind == PROJECTION:
      raise ValueError("a projection discriminator needs labels: discriminator(images, "
                       "labels=labels)")
    if labels is None:
      labels = keras.ops.zeros((keras.ops.shape(images)[0],), "int32")
    return self.outputs(images, labels, training=training)[0]
