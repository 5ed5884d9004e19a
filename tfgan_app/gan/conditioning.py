"""Class-conditional GANs (--conditioning): which combinations train, the generator's labels,
and the auxiliary classification loss of AC-GAN.

- none: unconditional (every model as before).
- projection (Miyato & Koyama 2018, arXiv:1802.05637): G(z, y) with class-conditional
  BatchNorm (or [z, onehot(y)] for mlp); D(x, y) = psi(phi(x)) + <V[y], phi(x)>
  (`models.conditional_discriminator`). The adversarial losses are the --loss ones on D(x, y).
- acgan (Odena et al. 2017, arXiv:1610.09585): the same G; D's logit is unconditioned and a
  class head c(x) predicts y. With w = --acgan_weight and CE(l, y) = -log softmax(l)_y:
      L_D = L_adv,D + w [CE(c(x), y_real) + CE(c(G(z, y)), y)]
      L_G = L_adv,G + w CE(c(G(z, y)), y)
  (the paper's L_C, added to both players; TF-GAN's `acgan_discriminator_loss` and
  `acgan_generator_loss`, per example, with the generator's labels drawn apart from the real
  ones).

The generator's labels are uniform over the classes and drawn for the global batch from
(seed, step, purpose) with a stateless RNG, like the latents (`gan.replicas`):
each replica keeps its slice, so one replica or many draw the same labels and a resumed run
the same as an uninterrupted one.
"""

import tensorflow as tf

from tfgan_app.gan import losses

NONE = "none"
PROJECTION = "projection"
ACGAN = "acgan"
CONDITIONINGS = (NONE, PROJECTION, ACGAN)


def check(conditioning: str, *, update: str = "alternating",
          g_objective: str = "standard", gradient_penalty: float = 0.0,
          acgan_weight: float = 1.0) -> None:
  """Raises ValueError, in one line naming what is accepted, for combinations that cannot train.

  Refused with a conditioning: --update=simultaneous (its one-pass step is unconditional);
  --gradient_penalty (WGAN-GP interpolates real and generated images, which carry different
  labels); feature matching with projection (G would match unconditioned features and get no
  signal about the class; with acgan the class loss gives it one).
  """
  if conditioning not in CONDITIONINGS:
    raise ValueError(f"unknown conditioning {conditioning!r}; accepted: "
                     f"{', '.join(CONDITIONINGS)}")
  if acgan_weight < 0:
    raise ValueError(f"--acgan_weight must be >= 0, got {acgan_weight}")
  if conditioning == NONE:
    return
  if update != "alternating":
    raise ValueError(f"--conditioning={conditioning} trains with --update=alternating only, got "
                     f"--update={update}")
  if gradient_penalty:
    raise ValueError(f"--conditioning={conditioning} cannot use --gradient_penalty (WGAN-GP "
                     "interpolates images of different classes); use --r1_gamma, which "
                     "penalises D at real images and their labels")
  if g_objective == "feature_matching" and conditioning == PROJECTION:
    raise ValueError("--g_objective=feature_matching matches unconditioned features, so with "
                     "--conditioning=projection the generator would learn nothing about the "
                     "class; use --conditioning=acgan or --g_objective=standard")


def classification_loss_per_example(class_logits, labels) -> tf.Tensor:
  """CE(l, y) = -log softmax(l)_y per example [B], in float32."""
  return tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=tf.cast(labels, tf.int32), logits=tf.cast(class_logits, tf.float32))


def acgan_discriminator_loss_per_example(real_class_logits, real_labels, fake_class_logits,
                                         fake_labels) -> tf.Tensor:
  """CE(c(x), y_real) + CE(c(G(z, y)), y) per example [B] (unweighted)."""
  return (classification_loss_per_example(real_class_logits, real_labels)
          + classification_loss_per_example(fake_class_logits, fake_labels))


def acgan_discriminator_terms(real_class_logits, real_labels, fake_class_logits, fake_labels,
                              global_batch_size):
  """(D's unweighted class loss, averaged over the global batch, for the gradient; its logs:
  d_class_loss, the global mean, and real_class_accuracy)."""
  per_example = acgan_discriminator_loss_per_example(real_class_logits, real_labels,
                                                     fake_class_logits, fake_labels)
  return losses.global_batch_mean(per_example, global_batch_size), {
      "d_class_loss": losses.global_mean(tf.reduce_sum(per_example), tf.size(per_example)),
      "real_class_accuracy": class_accuracy(real_class_logits, real_labels)}


def acgan_generator_terms(fake_class_logits, labels, global_batch_size):
  """(G's unweighted class loss CE(c(G(z, y)), y) over the global batch; {g_class_loss})."""
  per_example = classification_loss_per_example(fake_class_logits, labels)
  return losses.global_batch_mean(per_example, global_batch_size), {
      "g_class_loss": losses.global_mean(tf.reduce_sum(per_example), tf.size(per_example))}


def class_accuracy(class_logits, labels) -> tf.Tensor:
  """The global-batch fraction of examples whose arg-max class is their label (for the logs)."""
  hits = tf.cast(tf.equal(tf.argmax(class_logits, axis=-1, output_type=tf.int32),
                          tf.cast(labels, tf.int32)), tf.float32)
  return losses.global_mean(tf.reduce_sum(hits), tf.size(hits))
