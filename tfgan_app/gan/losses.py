"""GAN losses over discriminator logits, via TF-GAN, averaged over the global batch.

Each function returns a scalar ready for `tape.gradient` inside a replica: per-example losses
summed and divided by the *global* batch size (`tf.nn.compute_average_loss`), so that summing
gradients over replicas gives the gradient of the global-batch mean.
"""

import tensorflow as tf

from tfgan_app.common.tfgan_compat import tfgan

_NONE = tf.compat.v1.losses.Reduction.NONE


def _per_example(loss: tf.Tensor) -> tf.Tensor:
  return tf.reshape(loss, [-1])


def minimax_discriminator_loss_per_example(real_logits, fake_logits,
                                           label_smoothing: float = 0.0) -> tf.Tensor:
  """-[log D(x) + log(1 - D(G(z)))] per example (Goodfellow et al. 2014, eq. 1).

  Minimising it maximises V(D, G) over D. With `label_smoothing` s > 0 the real term becomes
  the cross-entropy with target 1 - s: -[(1 - s) log D(x) + s log(1 - D(x))]; fake targets stay
  0 (one-sided label smoothing, Salimans et al. 2016 §3.4: smoothing the fake targets too would
  pull D towards the generator's samples).

  TF-GAN's `label_smoothing` (through `tf.compat.v1.losses.sigmoid_cross_entropy`) smooths
  towards 1/2, giving the real target 1 - s'/2, so we pass s' = 2s. Its own default of 0.25 is
  switched off unless asked for.
  """
  return _per_example(tfgan.losses.wargs.minimax_discriminator_loss(
      real_logits, fake_logits, label_smoothing=2.0 * label_smoothing, reduction=_NONE,
      add_summaries=False))


def non_saturating_generator_loss_per_example(fake_logits) -> tf.Tensor:
  """-log D(G(z)) per example: the generator loss used in practice (Goodfellow et al. 2014 §3).

  Same fixed point as the minimax loss but strong gradients early in training, when D rejects
  samples confidently and log(1 - D(G(z))) saturates.
  """
  return _per_example(tfgan.losses.wargs.modified_generator_loss(
      fake_logits, label_smoothing=0.0, reduction=_NONE, add_summaries=False))


def minimax_generator_loss_per_example(fake_logits) -> tf.Tensor:
  """log(1 - D(G(z))) per example: the generator's side of the minimax game V(D, G).

  TF-GAN computes it as -minimax_discriminator_loss(ones_like(logits), logits), i.e. it feeds
  1.0 as the *logit* of a real example, which adds the constant -softplus(-1) = log sigmoid(1)
  (about -0.3133). The gradient is unaffected; we remove the constant so that logged values are
  the true log(1 - D(G(z))).
  """
  tfgan_value = tfgan.losses.wargs.minimax_generator_loss(
      fake_logits, label_smoothing=0.0, reduction=_NONE, add_summaries=False)
  return _per_example(tfgan_value) + tf.math.softplus(-1.0)


def wasserstein_discriminator_loss_per_example(real_logits, fake_logits) -> tf.Tensor:
  """D(G(z)) - D(x) per example: the critic's loss of WGAN (Arjovsky, Chintala & Bottou 2017).

  Minimising E D(G(z)) - E D(x) over 1-Lipschitz critics D gives -W1(p_data, p_g) (the
  Kantorovich-Rubinstein duality); the Lipschitz constraint comes from a gradient penalty or
  spectral normalisation, not from this loss.
  """
  return _per_example(tfgan.losses.wargs.wasserstein_discriminator_loss(
      real_logits, fake_logits, reduction=_NONE, add_summaries=False))


def wasserstein_generator_loss_per_example(fake_logits) -> tf.Tensor:
  """-D(G(z)) per example: the generator's WGAN loss (Arjovsky et al. 2017); also the
  generator's loss under the hinge objective (Lim & Ye 2017; Miyato et al. 2018)."""
  return _per_example(tfgan.losses.wargs.wasserstein_generator_loss(
      fake_logits, reduction=_NONE, add_summaries=False))


def hinge_discriminator_loss_per_example(real_logits, fake_logits) -> tf.Tensor:
  """max(0, 1 - D(x)) + max(0, 1 + D(G(z))) per example: the hinge loss of the discriminator
  (Lim & Ye 2017, "Geometric GAN"; Miyato et al. 2018, SNGAN), TF-GAN's
  `wasserstein_hinge_discriminator_loss`."""
  return _per_example(tfgan.losses.wargs.wasserstein_hinge_discriminator_loss(
      real_logits, fake_logits, reduction=_NONE, add_summaries=False))


def least_squares_discriminator_loss_per_example(real_logits, fake_logits) -> tf.Tensor:
  """(D(x) - 1)^2 / 2 + D(G(z))^2 / 2 per example: LSGAN's discriminator loss with labels
  b = 1 (real) and a = 0 (fake) (Mao et al. 2017, eq. 2)."""
  return _per_example(tfgan.losses.wargs.least_squares_discriminator_loss(
      real_logits, fake_logits, real_label=1, fake_label=0, reduction=_NONE,
      add_summaries=False))


def least_squares_generator_loss_per_example(fake_logits) -> tf.Tensor:
  """(D(G(z)) - 1)^2 / 2 per example: LSGAN's generator loss with c = 1 (Mao et al. 2017,
  eq. 2): G pulls D's output on its samples towards the real label."""
  return _per_example(tfgan.losses.wargs.least_squares_generator_loss(
      fake_logits, real_label=1, reduction=_NONE, add_summaries=False))


def feature_matching_loss(real_feature_mean, fake_feature_mean) -> tf.Tensor:
  """||E_x f(x) - E_z f(G(z))||_2^2: feature matching (Salimans et al. 2016 §3.1).

  The generator matches the mean of an intermediate discriminator layer f on real data instead
  of maximising D's output, which keeps it from over-training on the current discriminator.

  Args:
    real_feature_mean: [F], the mean of f over a batch of real images.
    fake_feature_mean: [F], the mean of f over a batch of generated images.

  Returns:
    A scalar: the squared Euclidean distance of the two means. Not a per-example loss: both
    means must already be global-batch means (`gan.global_batch_feature_mean`).
  """
  difference = tf.cast(real_feature_mean, tf.float32) - tf.cast(fake_feature_mean, tf.float32)
  return tf.reduce_sum(tf.square(difference))


def global_batch_mean(per_example: tf.Tensor, global_batch_size) -> tf.Tensor:
  """Sum of this replica's per-example losses divided by the global batch size."""
  return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)


def global_mean(local_sum, local_count) -> tf.Tensor:
  """Sum over replicas of local sums divided by the sum of local counts: the global mean of a
  logged value, the same on every replica."""
  context = tf.distribute.get_replica_context()
  total = tf.stack([tf.cast(local_sum, tf.float32), tf.cast(local_count, tf.float32)])
  if context is not None:
    total = context.all_reduce(tf.distribute.ReduceOp.SUM, total)
  return total[0] / total[1]
