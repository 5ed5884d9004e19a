"""The GAN as a `keras.Model` whose `train_step` plays the minimax game.

Two update schemes (`update`):
- `alternating` (Goodfellow et al. 2014, Algorithm 1): `d_steps` discriminator updates, each on
  its own real batch and fresh latents, then one generator update on fresh latents through the
  updated discriminator (the generator runs forward once more for its own step).
- `simultaneous` (TensorFlow's DCGAN tutorial): one generator forward pass on one latent batch;
  both players' gradients are taken from it and both are applied. Needs `d_steps` = 1.
No I/O, no flags.

Written for `tf.distribute`: losses are averaged over the global batch, logged values are
all-reduced to global means (the same numbers one replica would log for the same global batch),
and latents (and labels) are drawn statelessly for the global batch (`gan.replicas`).
Class-conditional GANs (`gan.conditioning`) take real batches of (images, labels).
"""

from typing import Optional

import keras
import tensorflow as tf

from tfgan_app.common import config as config_lib
from tfgan_app.gan import conditioning as conditioning_lib
from tfgan_app.gan import losses
from tfgan_app.gan import diffaugment
from tfgan_app.gan import objectives
from tfgan_app.gan import penalties as penalties_lib
from tfgan_app.gan import replicas
from tfgan_app.gan import updates

# Names of this module's interface that live in the smaller modules.
latent_seed = replicas.latent_seed
replica_latents = replicas.replica_latents
global_batch_feature_mean = replicas.global_batch_feature_mean
UPDATES = updates.UPDATES
check_update = updates.check_update

# Purposes folded into the latent seed, so that D and G steps never share latents.
_GENERATOR_STEP = 1 << 20
def _without_loss_scaling(optimizer):
  if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
    return optimizer.inner_optimizer
  return optimizer


class GAN(keras.Model):
  """Generator and discriminator trained together by `fit`.

  `fit` feeds tuples of `d_steps` real batches (see `data.make_train_dataset`). Logged values
  per step: d_loss, g_loss (the generator's objective: the `loss` generator loss, or the
  feature-matching distance), d_real (mean D(x)), d_fake (mean D(G(z))), and the divergence
  that the objective's D loss estimates, from the last discriminator step (`gan.objectives`:
  jsd = (V + log 4) / 2 under minimax and non_saturating, wasserstein, total_variation or
  triangular_discrimination under the others).
  """

  def __init__(self, generator: keras.Model, discriminator: keras.Model, latent_dim: int,
               d_steps: int = 1, loss: str = "non_saturating", seed: int = 0,
               ema_generator: Optional[keras.Model] = None, ema_decay: float = 0.999,
               label_smoothing: float = 0.0, g_objective: str = "standard",
               update: str = "alternating",
               penalties: penalties_lib.DiscriminatorPenalties = (
                   penalties_lib.DiscriminatorPenalties()),
               augment: diffaugment.DiffAugment = diffaugment.DiffAugment(),
               conditioning: str = "none", num_classes: int = 0, acgan_weight: float = 1.0,
               **kwargs):
    """Assembles the GAN.

    Args:
      generator, discriminator: built Keras models (D returns logits).
      latent_dim: dimension of z.
      d_steps: k, discriminator updates per generator update.
      loss: the adversarial objective, a key of `objectives.OBJECTIVES`.
      seed: seed of the latents.
      ema_generator: optional copy of `generator` (same architecture, built) that tracks an
        exponential moving average of its weights; it is what gets sampled and exported.
      ema_decay: decay of that average per generator update.
      label_smoothing: one-sided smoothing of D's real targets (Salimans et al. 2016).
      g_objective: "standard" (G minimises the `loss` generator loss) or "feature_matching"
        (G minimises ||E f(x) - E f(G(z))||^2 over `discriminator.features`, Salimans et al.
        2016 §3.1, with x the last discriminator step's real batch and both means over the
        global batch).
      update: `alternating` or `simultaneous` (see the module docstring).
      penalties: gradient penalties added to D's loss (`gan.penalties`: WGAN-GP, R1).
      augment: differentiable augmentation of every image D sees (`gan.diffaugment`).
      conditioning: none, projection or acgan (`gan.conditioning`); conditional players take
        `labels=` and real batches are (images, labels).
      num_classes: classes of a conditional GAN.
      acgan_weight: w of the acgan classification loss.

    Raises:
      ValueError: an unknown update or g_objective, `simultaneous` with d_steps != 1 or
        feature matching, a conditioning that cannot train with these settings, or lazy R1
        that the strategy's replicas cannot run (`DiscriminatorPenalties.check_discriminator`).
    """
    check_update(update, d_steps, g_objective)
    conditioning_lib.check(conditioning, update=update, g_objective=g_objective,
                           gradient_penalty=penalties.gradient_penalty,
                           acgan_weight=acgan_weight)
    super().__init__(**kwargs)
    self.update = update
    self.generator = generator
    self.discriminator = discriminator
    self.ema_generator = ema_generator
    self.ema_decay = float(ema_decay)
    self.label_smoothing = float(label_smoothing)
    self.latent_dim = int(latent_dim)
    self.d_steps = int(d_steps)
    self.loss_kind = loss
    self.objective = objectives.get(loss, label_smoothing)
    penalties.check_discriminator(discriminator,
                                  tf.distribute.get_strategy().num_replicas_in_sync)
    self.penalties = penalties
    self.augment = augment
    self.conditioning = conditioning
    self.num_classes = int(num_classes) if conditioning != "none" else 0
    self.acgan_weight = float(acgan_weight)
    # The last R1 value, logged by the discriminator updates that lazy R1 skips.
    self.r1_record = tf.Variable(0.0, trainable=False, name="r1_record",
                                 aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self._generator_loss = self.objective.generator_loss
    if g_objective not in config_lib.G_OBJECTIVES:
      raise ValueError(f"unknown g_objective {g_objective!r}; accepted: "
                       f"{', '.join(config_lib.G_OBJECTIVES)}")
    self.g_objective = g_objective
    # Training state beyond the weights, checkpointed with them: the generator updates done
    # so far (resume position) and the seed of the run (the random state: latents are a pure
    # function of (seed, step)).
    self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step",
                            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self.seed = tf.Variable(seed, dtype=tf.int64, trainable=False, name="seed",
                            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self.d_optimizer = None
    self.g_optimizer = None
    # The players arrive built (models.build_*), so the GAN is too; otherwise fit under
    # tf.distribute would try to build it by calling it on a real batch.
    self.built = True

  def compile(self, d_optimizer, g_optimizer, **kwargs):
    """Sets both optimizers and builds their slots now (before `fit`, in strategy scope)."""
    # Keras's own `optimizer` slot gets G's optimizer (already built below): left at its default,
    # it would hold an unbuilt RMSprop that makes fit re-trace the model symbolically under
    # tf.distribute, calling the GAN on real images.
    super().compile(optimizer=g_optimizer, **kwargs)
    self.d_optimizer = d_optimizer
    self.g_optimizer = g_optimizer
    # Slot variables created lazily inside a distributed train_step break fit
    # (shared/notes/stack.md §2), so build them here.
    self.d_optimizer.build(self.discriminator.trainable_variables)
    self.g_optimizer.build(self.generator.trainable_variables)

  def call(self, latents, training=False):
    return self.generator(latents, training=training)

  def _generate(self, latents, labels, training):
    if self.num_classes:
      return self.generator(latents, labels=labels, training=training)
    return self.generator(latents, training=training)

  def _judge(self, images, labels, training=True):
    """D's (logits [B, 1], class logits [B, K] under acgan else None) for `images`."""
    if self.num_classes:
      return self.discriminator.outputs(images, labels, training=training)
    return self.discriminator(images, training=training), None

  def _labels(self, purpose, global_batch, local_batch):
    """The generator's labels for `purpose` of this step (None when unconditional)."""
    if not self.num_classes:
      return None
    return replicas.replica_labels(self.seed, self.step, purpose, global_batch, local_batch,
                                   self.num_classes)

  def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    # Keras's TF trainer pulls a first batch and all-reduces it under any tf.distribute strategy
    # to build the model symbolically; under MultiWorkerMirroredStrategy that reduce of our tuple
    # of per-replica batches fails. Everything is built already (players, both optimizers), so
    # there is nothing to build.
    del iterator, data_batch

  @property
  def sampling_generator(self) -> keras.Model:
    """The generator to sample, evaluate and export: the EMA one when there is one."""
    return self.ema_generator if self.ema_generator is not None else self.generator

  def reset_ema(self):
    """Sets the EMA weights to the generator's (at the start of a run)."""
    for average, variable in zip(self.ema_generator.variables, self.generator.variables):
      average.assign(variable)

  def checkpoint_objects(self):
    """(required, optional) objects of the run's checkpoint (`runs.checkpoints`).

    Required: everything that decides the rest of a run: weights, optimizer slots, step, seed
    and the RNG state of D's dropout. Optional (a checkpoint without them still restores): lazy
    R1's last value, so a resumed run logs what the uninterrupted one does, and the dynamic loss
    scales of mixed_float16 (`keras.optimizers.LossScaleOptimizer`). The optimizers are saved
    without their loss-scaling wrapper, so a run resumes under any precision policy: a float16 run's
    checkpoint restores into a bfloat16 or float32 run (the scales are not needed there), and
    the other way round the scales start afresh.
    """
    required = dict(generator=self.generator, discriminator=self.discriminator,
                    g_optimizer=_without_loss_scaling(self.g_optimizer),
                    d_optimizer=_without_loss_scaling(self.d_optimizer),
                    step=self.step, seed=self.seed)
    if self.ema_generator is not None:
      required["ema_generator"] = self.ema_generator
    random_states = getattr(self.discriminator, "random_states", dict)()
    if random_states:  # Dropout masks (mlp, tf_tutorial): exact resume needs their RNG state.
      required["discriminator_random"] = tf.train.Checkpoint(**random_states)
    optional = {}
    if self.penalties.r1_gamma and self.penalties.r1_every > 1:
      optional["r1_record"] = self.r1_record
    for name in ("g_optimizer", "d_optimizer"):
      optimizer = getattr(self, name)
      if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optional[f"{name}_loss_scale"] = tf.train.Checkpoint(
            step_counter=optimizer.step_counter, dynamic_scale=optimizer.dynamic_scale)
    return required, optional

  def _update_ema(self):
    decay = self.ema_decay

    def update(strategy):
      # Cross-replica context: the weights are mirrored and equal on every replica, so one
      # assignment per variable updates all copies.
      del strategy
      for average, variable in zip(self.ema_generator.variables, self.generator.variables):
        average.assign(decay * average + (1.0 - decay) * variable)

    tf.distribute.get_replica_context().merge_call(update)

  @staticmethod
  def _scaled(optimizer, loss):
    # Under mixed_float16 the optimizers are keras.optimizers.LossScaleOptimizer: gradients of
    # the scaled loss keep small float16 values from flushing to zero, and `apply` unscales
    # them (and skips the update when they overflowed).
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
      return optimizer.scale_loss(loss)
    return loss

  def _discriminator_loss(self, real_logits, fake_logits, global_batch):
    if self.label_smoothing:
      per_example = self.objective.discriminator_loss(
          real_logits, fake_logits, label_smoothing=self.label_smoothing)
    else:
      per_example = self.objective.discriminator_loss(real_logits, fake_logits)
    return per_example, losses.global_batch_mean(per_example, global_batch)

  @staticmethod
  def _apply(optimizer, tape, scaled_loss, model):
    grads = tape.gradient(scaled_loss, model.trainable_variables)
    optimizer.apply(grads, model.trainable_variables)

  def _discriminator_step(self, real_images, real_labels, index, global_batch):
    local_batch = tf.shape(real_images)[0]
    latents = replica_latents(self.seed, self.step, index, global_batch, local_batch,
                              self.latent_dim)
    fake_labels = self._labels(index, global_batch, local_batch)
    fake_images = self._generate(latents, fake_labels, training=True)
    real_images = self._d_view(real_images, 2 * index, global_batch)
    fake_images = self._d_view(fake_images, 2 * index + 1, global_batch)
    with tf.GradientTape() as tape:
      real_logits, real_classes = self._judge(real_images, real_labels)
      fake_logits, fake_classes = self._judge(fake_images, fake_labels)
      per_example, loss = self._discriminator_loss(real_logits, fake_logits, global_batch)
      penalty, logs = self._penalty(real_images, real_labels, fake_images, index, global_batch)
      if real_classes is not None:
        class_loss, class_logs = conditioning_lib.acgan_discriminator_terms(
            real_classes, real_labels, fake_classes, fake_labels, global_batch)
        loss, logs = loss + self.acgan_weight * class_loss, {**logs, **class_logs}
      # Scaled inside the tape: the tape must record the multiplication.
      scaled_loss = self._scaled(self.d_optimizer, loss + penalty)
    self._apply(self.d_optimizer, tape, scaled_loss, self.discriminator)
    return per_example, real_logits, fake_logits, logs

  def _d_view(self, images, purpose, global_batch):
    """What D sees of `images`: their --diffaugment transformation of (seed, step, purpose)."""
    if not self.augment:
      return images
    return self.augment(images, seed=self.seed, update_index=self.step, purpose=purpose,
                        global_batch_size=global_batch)

  def _penalty(self, real_images, real_labels, fake_images, index, global_batch):
    """D's gradient penalties (`gan.penalties`) for discriminator update `index` of this step;
    a conditional D is judged with the real labels (R1 only: `conditioning.check`)."""
    if not self.penalties:
      return 0.0, {}
    discriminator = self.discriminator
    if self.num_classes:
      discriminator = lambda images, training: self._judge(images, real_labels, training)[0]
    optimizer = self.d_optimizer
    loss_scale = (optimizer.dynamic_scale
                  if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) else None)
    return self.penalties(
        discriminator, real_images, fake_images, seed=self.seed,
        update_index=self.step * self.d_steps + index, global_batch_size=global_batch,
        r1_record=self.r1_record, loss_scale=loss_scale)

  def _generator_step(self, real_images, global_batch, local_batch):
    """One generator update; returns the global value of its objective and extra logs."""
    latents = replica_latents(self.seed, self.step, _GENERATOR_STEP, global_batch, local_batch,
                              self.latent_dim)
    labels = self._labels(_GENERATOR_STEP, global_batch, local_batch)
    real_images = self._d_view(real_images, _GENERATOR_STEP, global_batch)
    logs = {}
    with tf.GradientTape() as tape:
      fake_images = self._d_view(self._generate(latents, labels, training=True),
                                 _GENERATOR_STEP + 1, global_batch)
      if self.g_objective == "feature_matching":
        real_mean = global_batch_feature_mean(
            self.discriminator.features(real_images, training=True), global_batch)
        fake_mean = global_batch_feature_mean(
            self.discriminator.features(fake_images, training=True), global_batch)
        # Already a global value: summing the replicas' gradients is right (see
        # global_batch_feature_mean), and so is logging it as it is.
        loss = logged = losses.feature_matching_loss(real_mean, fake_mean)
        fake_classes = self._judge(fake_images, labels)[1] if self.num_classes else None
      else:
        fake_logits, fake_classes = self._judge(fake_images, labels)
        per_example = self._generator_loss(fake_logits)
        loss = losses.global_batch_mean(per_example, global_batch)
        logged = losses.global_mean(tf.reduce_sum(per_example), tf.size(per_example))
      if fake_classes is not None:
        class_loss, logs = conditioning_lib.acgan_generator_terms(fake_classes, labels,
                                                                  global_batch)
        loss += self.acgan_weight * class_loss
      # Scaled inside the tape: the tape must record the multiplication.
      scaled_loss = self._scaled(self.g_optimizer, loss)
    self._apply(self.g_optimizer, tape, scaled_loss, self.generator)
    return logged, logs

  def _simultaneous_step(self, real_images, global_batch):
    """Both players' updates from one generator pass (the tutorial's step)."""
    local_batch = tf.shape(real_images)[0]
    latents = replica_latents(self.seed, self.step, 0, global_batch, local_batch,
                              self.latent_dim)
    real_images = self._d_view(real_images, 0, global_batch)
    with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
      fake_images = self._d_view(self.generator(latents, training=True), 1, global_batch)
      real_logits = self.discriminator(real_images, training=True)
      fake_logits = self.discriminator(fake_images, training=True)
      d_per_example, d_loss = self._discriminator_loss(real_logits, fake_logits, global_batch)
      penalty, penalty_logs = self._penalty(real_images, None, fake_images, 0, global_batch)
      g_per_example = self._generator_loss(fake_logits)
      g_loss = losses.global_batch_mean(g_per_example, global_batch)
      scaled_d_loss = self._scaled(self.d_optimizer, d_loss + penalty)
      scaled_g_loss = self._scaled(self.g_optimizer, g_loss)
    # Both gradients are taken before either update, so each player sees the other's weights
    # as they were in the forward pass.
    d_grads = d_tape.gradient(scaled_d_loss, self.discriminator.trainable_variables)
    g_grads = g_tape.gradient(scaled_g_loss, self.generator.trainable_variables)
    self.d_optimizer.apply(d_grads, self.discriminator.trainable_variables)
    self.g_optimizer.apply(g_grads, self.generator.trainable_variables)
    return d_per_example, real_logits, fake_logits, g_per_example, penalty_logs

  def train_step(self, data):
    real_batches = data if isinstance(data, (tuple, list)) else (data,)
    if len(real_batches) != self.d_steps:
      raise ValueError(f"expected {self.d_steps} real batches per step, got {len(real_batches)}")
    # Conditional runs get (images, labels) pairs; labels are None otherwise.
    real_batches = [batch if self.num_classes else (batch, None) for batch in real_batches]
    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync if context else 1
    local_batch = tf.shape(real_batches[0][0])[0]
    global_batch = local_batch * replicas

    if self.update == "simultaneous":
      d_per_example, real_logits, fake_logits, g_per_example, penalty_logs = (
          self._simultaneous_step(real_batches[0][0], global_batch))
      g_loss = losses.global_mean(tf.reduce_sum(g_per_example), tf.size(g_per_example))
    else:
      for index, (real_images, real_labels) in enumerate(real_batches):
        d_per_example, real_logits, fake_logits, penalty_logs = self._discriminator_step(
            real_images, real_labels, index, global_batch)
      g_loss, g_logs = self._generator_step(real_batches[-1][0], global_batch, local_batch)
      penalty_logs = {**penalty_logs, **g_logs}
    if self.ema_generator is not None:
      self._update_ema()
    self.step.assign_add(1)

    count = tf.size(d_per_example)
    # Keras reduces what train_step returns across workers with strategy.reduce(MEAN, axis=0),
    # which needs a batch axis: the values are global already, so give them a length-1 one.
    multi_worker = isinstance(tf.distribute.get_strategy(),
                              tf.distribute.MultiWorkerMirroredStrategy)
    as_log = (lambda x: tf.reshape(x, [1])) if multi_worker else (lambda x: x)
    estimate_terms = self.objective.estimate_terms(real_logits, fake_logits, d_per_example)
    estimate = self.objective.estimate_from_mean(
        losses.global_mean(tf.reduce_sum(estimate_terms), count))
    # Probabilities of "real" under the cross-entropy objectives, raw scores otherwise.
    output = tf.sigmoid if self.objective.probabilities else (lambda logits: logits)
    return {
        "d_loss": as_log(losses.global_mean(tf.reduce_sum(d_per_example), count)),
        "g_loss": as_log(g_loss),
        "d_real": as_log(losses.global_mean(tf.reduce_sum(output(real_logits)), count)),
        "d_fake": as_log(losses.global_mean(tf.reduce_sum(output(fake_logits)), count)),
        self.objective.estimate_name: as_log(estimate),
        **{name: as_log(value) for name, value in penalty_logs.items()},
    }
