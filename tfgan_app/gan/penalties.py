"""Gradient penalties on the discriminator, added to its loss (--gradient_penalty, --r1_gamma).

- WGAN-GP (Gulrajani et al. 2017, "Improved Training of Wasserstein GANs", Algorithm 1):
    lambda * E[(||grad_x D(x_hat)||_2 - 1)^2],  x_hat = eps x + (1 - eps) G(z),  eps ~ U(0, 1)
  with one eps per example (not per batch, and uniform: keras-io#415 drew it from N(0, 1)) and
  the norm per example over all of its pixels. It pushes the critic towards 1-Lipschitz on the
  lines between real and generated samples, where the optimal critic has gradient norm 1.
- R1 (Mescheder, Geiger & Nowozin 2018, "Which Training Methods for GANs do actually
  Converge?", eq. 9):  gamma / 2 * E_x[||grad_x D(x)||_2^2]  on real data only. It makes
  training converge locally at the equilibrium; with lazy regularisation (Karras et al. 2020,
  StyleGAN2 §3.1, --r1_every=N) it is computed on every N-th discriminator update only, times N,
  so that its expected weight stays gamma / 2.

Both are means over the global batch (each replica's per-example terms summed and divided by
the global batch size, as the losses are), and eps is drawn for the global batch from a
stateless seed of (seed, step, purpose), each replica taking its slice: one replica or many
compute the same penalty. Under mixed_float16 the inner gradient is taken of the loss-scaled
outputs and unscaled, so that small float16 gradients do not flush to zero.
"""

import dataclasses

import tensorflow as tf

from tfgan_app.gan import losses

# Folded into the eps seed, apart from the latents' purposes (gan/model.py).
_EPSILON_PURPOSE = 1 << 21


def replica_interpolation_weights(seed, step, index, global_batch_size, local_batch_size):
  """This replica's slice of the global batch of eps ~ U(0, 1), one per example: [b, 1]."""
  key = tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])
  key = tf.random.experimental.stateless_fold_in(key, tf.cast(_EPSILON_PURPOSE + index,
                                                              tf.int64))
  everyone = tf.random.stateless_uniform([global_batch_size, 1], seed=key)
  context = tf.distribute.get_replica_context()
  replica_id = tf.cast(context.replica_id_in_sync_group, tf.int32) if context else 0
  start = replica_id * local_batch_size
  return everyone[start:start + local_batch_size]


def input_gradients(discriminator, images, loss_scale=None) -> tf.Tensor:
  """grad_x sum_i D(x_i): per example, the gradient of D's output at x_i, float32 [b, D].

  `loss_scale`: multiply D's outputs by it before differentiating and divide the gradient by
  it afterwards (mixed_float16).
  """
  images = tf.convert_to_tensor(images)
  with tf.GradientTape() as tape:
    tape.watch(images)
    outputs = tf.reduce_sum(tf.cast(discriminator(images, training=True), tf.float32))
    if loss_scale is not None:
      outputs = outputs * tf.cast(loss_scale, tf.float32)
  gradients = tf.cast(tape.gradient(outputs, images), tf.float32)
  if loss_scale is not None:
    gradients = gradients / tf.cast(loss_scale, tf.float32)
  return tf.reshape(gradients, [tf.shape(gradients)[0], -1])


def wasserstein_gradient_penalty_per_example(discriminator, real_images, fake_images, epsilon,
                                             loss_scale=None) -> tf.Tensor:
  """(||grad D(x_hat)||_2 - 1)^2 per example, x_hat = eps x + (1 - eps) G(z); eps [b, 1]."""
  real = tf.cast(real_images, tf.float32)
  fake = tf.cast(fake_images, tf.float32)
  epsilon = tf.reshape(tf.cast(epsilon, tf.float32), [-1] + [1] * (len(real.shape) - 1))
  interpolated = epsilon * real + (1.0 - epsilon) * fake
  gradients = input_gradients(discriminator, interpolated, loss_scale)
  # The small constant keeps the norm's gradient finite where the gradient is exactly 0.
  norms = tf.sqrt(tf.reduce_sum(tf.square(gradients), axis=1) + 1e-12)
  return tf.square(norms - 1.0)


def r1_penalty_per_example(discriminator, real_images, loss_scale=None) -> tf.Tensor:
  """||grad_x D(x)||_2^2 per real example (R1 without its factor gamma / 2)."""
  gradients = input_gradients(discriminator, tf.cast(real_images, tf.float32), loss_scale)
  return tf.reduce_sum(tf.square(gradients), axis=1)


def is_lazy_step(update_index, every: int) -> tf.Tensor:
  """Whether discriminator update `update_index` (0, 1, ...) computes the lazy R1 term."""
  return tf.equal(tf.math.floormod(tf.cast(update_index, tf.int64), every), 0)


def _layers(layer):
  """`layer` and every layer inside it, depth first."""
  yield layer
  for child in getattr(layer, "layers", ()):
    yield from _layers(child)


@dataclasses.dataclass(frozen=True)
class DiscriminatorPenalties:
  """The penalties a run adds to D's loss: `gradient_penalty` (lambda of WGAN-GP) and
  `r1_gamma` (gamma of R1) every `r1_every` discriminator updates; 0 turns one off."""
  gradient_penalty: float = 0.0
  r1_gamma: float = 0.0
  r1_every: int = 1

  def __bool__(self):
    return bool(self.gradient_penalty or self.r1_gamma)

  def check_discriminator(self, discriminator, replicas: int) -> None:
    """Raises ValueError where lazy R1 cannot run: under several replicas, with a
    discriminator whose forward pass synchronises them (synchronised BatchNorm), since the
    lazy update's condition cannot hold a cross-replica call (see `__call__`)."""
    if not (self.r1_gamma and self.r1_every > 1 and replicas > 1):
      return
    synchronized = [layer.name for layer in _layers(discriminator)
                    if getattr(layer, "synchronized", False)]
    if synchronized:
      raise ValueError(
          f"--r1_every={self.r1_every} under {replicas} replicas needs a discriminator without "
          f"cross-replica BatchNorm ({', '.join(synchronized)} of --sync_batchnorm): use "
          "--r1_every=1, --spectral_norm (no BatchNorm in D) or no --sync_batchnorm")

  def __call__(self, discriminator, real_images, fake_images, *, seed, update_index,
               global_batch_size, r1_record, loss_scale=None):
    """The penalty term of D's loss (a global-batch mean, for `tape.gradient` in a replica)
    and the logged values: `gradient_penalty` E(||grad D(x_hat)|| - 1)^2 and `r1_penalty`
    E||grad D(x)||^2, without their weights.

    `update_index`: the discriminator update's number (step * d_steps + index), which seeds
    eps and decides the lazy R1 updates. `r1_record`: a float32 variable that holds the last
    computed R1 value, logged by the updates that skip it.
    """
    local_batch = tf.shape(real_images)[0]
    total, logs = tf.zeros([]), {}
    if self.gradient_penalty:
      epsilon = replica_interpolation_weights(seed, update_index, 0, global_batch_size,
                                              local_batch)
      per_example = wasserstein_gradient_penalty_per_example(
          discriminator, real_images, fake_images, epsilon, loss_scale)
      total += self.gradient_penalty * losses.global_batch_mean(per_example, global_batch_size)
      logs["gradient_penalty"] = losses.global_mean(tf.reduce_sum(per_example),
                                                    tf.size(per_example))
    if self.r1_gamma:
      r1 = lambda: r1_penalty_per_example(discriminator, real_images, loss_scale)
      if self.r1_every == 1:
        per_example, due = r1(), None
      else:
        # Lazy: the other updates skip the double backpropagation altogether. Only this
        # replica's own computation runs inside the condition: a cross-replica call there
        # (all-reduce, an assignment to a mirrored variable) is a merge_call, which
        # MirroredStrategy cannot trace inside control flow.
        due = is_lazy_step(update_index, self.r1_every)
        per_example = tf.cond(due, r1, lambda: tf.zeros([local_batch]))
      # All-reduces two floats on every update, the skipped ones too (their zeros unused).
      computed = losses.global_mean(tf.reduce_sum(per_example), tf.size(per_example))
      logged = computed if due is None else tf.where(due, computed, r1_record)
      r1_record.assign(logged)
      total += (self.r1_gamma / 2.0 * self.r1_every
                * losses.global_batch_mean(per_example, global_batch_size))
      logs["r1_penalty"] = logged
    return total, logs
