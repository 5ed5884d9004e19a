"""Stateless random draws of a training step, for the global batch, one slice per replica.

Latents (and a conditional generator's labels) are drawn for the global batch from
(seed, step, purpose) with a stateless RNG, each replica keeping its own slice: replicas see
different values, a run is reproducible from its seed, and one replica or many draw the very
same numbers. No I/O, no flags.
"""

import tensorflow as tf

# Folded into the label seed, so labels never share a seed with the latents of a purpose.
_LABEL_PURPOSE = 1 << 22


def latent_seed(seed, step, purpose) -> tf.Tensor:
  """A stateless-RNG seed pair unique to (seed, step, purpose)."""
  key = tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])
  key = tf.random.experimental.stateless_fold_in(key, tf.cast(purpose, tf.int64))
  return key


def replica_latents(seed, step, purpose, global_batch_size, local_batch_size, latent_dim):
  """This replica's slice of the global batch of latents N(0, I) for (seed, step, purpose)."""
  context = tf.distribute.get_replica_context()
  replica_id = tf.cast(context.replica_id_in_sync_group, tf.int32) if context else 0
  everyone = tf.random.stateless_normal([global_batch_size, latent_dim],
                                        seed=latent_seed(seed, step, purpose))
  start = replica_id * local_batch_size
  return everyone[start:start + local_batch_size]  # [local_batch, latent_dim]


def global_batch_feature_mean(local_features, global_batch_size) -> tf.Tensor:
  """The mean [F] over the global batch of features whose rows [b, F] this replica holds.

  The value is the same on every replica (the replicas' sums are all-reduced). Its gradient
  flows only through this replica's rows; the other replicas' sum enters as a constant. When
  the optimizer sums the replicas' gradients, as it does under tf.distribute, the result is
  the gradient of a loss of the global mean, counted once (differentiating through the
  all-reduce instead would count it once per replica).
  """
  local_sum = tf.reduce_sum(tf.cast(local_features, tf.float32), axis=0)  # [F]
  context = tf.distribute.get_replica_context()
  total = local_sum
  if context is not None:
    total = context.all_reduce(tf.distribute.ReduceOp.SUM, local_sum)
  others = tf.stop_gradient(total - local_sum)
  return (local_sum + others) / tf.cast(global_batch_size, tf.float32)


def replica_labels(seed, step, purpose, global_batch_size, local_batch_size, num_classes) -> tf.Tensor:
  """This replica's slice int32 [local_batch] of the global batch of generator labels, uniform
  over [0, num_classes), for (seed, step, purpose)."""
  context = tf.distribute.get_replica_context()
  replica_id = tf.cast(context.replica_id_in_sync_group, tf.int32) if context else 0
  everyone = tf.random.stateless_uniform(
      [global_batch_size], seed=latent_seed(seed, step, _LABEL_PURPOSE + purpose),
      minval=0, maxval=num_classes, dtype=tf.int32)
  start = replica_id * local_batch_size
  return everyone[start:start + local_batch_size]
