"""D's gradient penalties (gan/penalties.py): WGAN-GP and R1 against closed forms, eps per
example and uniform, lazy R1, the loss-scaled inner gradient of mixed_float16, the GAN
training with them, exact resume, and lazy R1's refusal of D's cross-replica BatchNorm."""


import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgan_app.gan import build as gan_build
from tfgan_app.gan import penalties
from conftest import (logged_scalars, run_script_ok, straight_and_resumed_checkpoints,
                      tiny_config)


class Linear(keras.Model):
  """D(x) = <w, x>: its input gradient is w everywhere."""

  def __init__(self, weights):
    super().__init__()
    self.w = tf.constant(weights, tf.float32)

  def call(self, images, training=False):
    flat = tf.reshape(tf.cast(images, tf.float32), [tf.shape(images)[0], -1])
    return tf.reduce_sum(flat * self.w, axis=1, keepdims=True)


class Quadratic(keras.Model):
  """D(x) = ||x||^2 / 2: its input gradient is x."""

  def call(self, images, training=False):
    flat = tf.reshape(images, [tf.shape(images)[0], -1])
    return 0.5 * tf.reduce_sum(tf.square(flat), axis=1, keepdims=True)


RNG = np.random.default_rng(0)
REAL = RNG.normal(size=(5, 2, 2, 1)).astype(np.float32)
FAKE = RNG.normal(size=(5, 2, 2, 1)).astype(np.float32)
EPS = np.array([0.0, 0.25, 0.5, 0.9, 1.0], np.float32)[:, None]


def test_gradient_penalty_of_a_linear_critic_is_the_squared_distance_of_its_norm_from_one():
  w = np.array([0.5, -1.0, 2.0, 0.25], np.float32)
  got = penalties.wasserstein_gradient_penalty_per_example(Linear(w), REAL, FAKE, EPS).numpy()
  np.testing.assert_allclose(got, np.full(5, (np.linalg.norm(w) - 1.0) ** 2), rtol=1e-5)


def test_gradient_penalty_is_taken_at_the_interpolates_per_example():
  got = penalties.wasserstein_gradient_penalty_per_example(Quadratic(), REAL, FAKE, EPS).numpy()
  x_hat = (EPS[:, :, None, None] * REAL + (1 - EPS[:, :, None, None]) * FAKE).reshape(5, -1)
  np.testing.assert_allclose(got, (np.linalg.norm(x_hat, axis=1) - 1.0) ** 2, rtol=1e-5)
  # eps = 1 is the real image, eps = 0 the generated one.
  assert got[-1] == pytest.approx((np.linalg.norm(REAL[-1]) - 1) ** 2, rel=1e-5)
  assert got[0] == pytest.approx((np.linalg.norm(FAKE[0]) - 1) ** 2, rel=1e-5)


def test_r1_is_the_squared_gradient_norm_on_real_images():
  got = penalties.r1_penalty_per_example(Quadratic(), REAL).numpy()
  np.testing.assert_allclose(got, np.sum(REAL.reshape(5, -1) ** 2, axis=1), rtol=1e-5)
  w = np.array([0.5, -1.0, 2.0, 0.25], np.float32)
  np.testing.assert_allclose(penalties.r1_penalty_per_example(Linear(w), REAL).numpy(),
                             np.full(5, np.sum(w ** 2)), rtol=1e-5)


def test_interpolation_weights_are_uniform_per_example_and_stateless():
  eps = penalties.replica_interpolation_weights(7, 3, 0, 4096, 4096).numpy()
  assert eps.shape == (4096, 1)
  assert eps.min() >= 0.0 and eps.max() < 1.0
  assert abs(eps.mean() - 0.5) < 0.02 and abs(eps.var() - 1 / 12) < 0.005  # U(0, 1), not N(0, 1).
  assert len(np.unique(eps)) > 4000  # One per example, not one per batch.
  np.testing.assert_array_equal(eps, penalties.replica_interpolation_weights(7, 3, 0, 4096,
                                                                             4096).numpy())
  assert not np.array_equal(eps, penalties.replica_interpolation_weights(7, 4, 0, 4096,
                                                                         4096).numpy())


def test_lazy_r1_weighs_every_nth_update_by_n_and_logs_the_last_value():
  lazy = penalties.DiscriminatorPenalties(r1_gamma=2.0, r1_every=4)
  record = tf.Variable(0.0)
  expected_r1 = np.mean(np.sum(REAL.reshape(5, -1) ** 2, axis=1))
  terms, logged = [], []
  for update in range(6):
    total, logs = lazy(Quadratic(), REAL, FAKE, seed=0, update_index=update, global_batch_size=5,
                       r1_record=record)
    terms.append(float(total))
    logged.append(float(logs["r1_penalty"]))
  # gamma / 2 * N * E||grad||^2 on updates 0 and 4, nothing in between.
  np.testing.assert_allclose(terms, [4 * expected_r1, 0, 0, 0, 4 * expected_r1, 0], rtol=1e-5)
  np.testing.assert_allclose(logged, np.full(6, expected_r1), rtol=1e-5)


def test_loss_scaled_inner_gradient_keeps_small_float16_gradients():
  # A critic whose input gradient (1e-8) is below float16's smallest subnormal (6e-8).
  w = np.full(4, 1e-8, np.float32)

  class Half(Linear):
    def call(self, images, training=False):
      flat = tf.reshape(tf.cast(images, tf.float16), [tf.shape(images)[0], -1])
      return tf.reduce_sum(flat * tf.cast(self.w * 1e4, tf.float16), axis=1, keepdims=True) / 1e4

  plain = penalties.r1_penalty_per_example(Half(w), REAL).numpy()
  scaled = penalties.r1_penalty_per_example(Half(w), REAL, loss_scale=2.0 ** 15).numpy()
  assert np.all(plain == 0.0)
  np.testing.assert_allclose(scaled, np.full(5, 4e-16), rtol=0.01)


@pytest.mark.parametrize("overrides, logged", [
    (dict(loss="wasserstein", gradient_penalty=10.0), "gradient_penalty"),
    (dict(r1_gamma=1.0, r1_every=2, d_steps=2), "r1_penalty"),
    (dict(r1_gamma=1.0, update="simultaneous"), "r1_penalty")])
def test_gan_adds_the_penalty_to_d_loss_and_logs_it(tmp_path, overrides, logged):
  config = tiny_config(tmp_path, None, **overrides)
  keras.utils.set_random_seed(0)
  model = gan_build.build_gan(config, (28, 28, 1))
  d_steps = overrides.get("d_steps", 1)
  real = tuple(tf.random.stateless_uniform([16, 28, 28, 1], seed=[i, 9], minval=-1, maxval=1)
               for i in range(d_steps))
  logs = model.train_step(real)
  assert float(logs[logged]) > 0 and np.isfinite(float(logs[logged]))
  # The same first step without the penalty moves D differently.
  keras.utils.set_random_seed(0)
  plain = gan_build.build_gan(config.with_updates(gradient_penalty=0.0, r1_gamma=0.0),
                              (28, 28, 1))
  plain_logs = plain.train_step(real)
  assert logged not in plain_logs
  differs = [not np.allclose(a.numpy(), b.numpy()) for a, b in
             zip(model.discriminator.trainable_variables, plain.discriminator.trainable_variables)]
  assert any(differs)


def test_penalties_summed_over_two_replicas_equal_one_replicas():
  script = """
import numpy as np, tensorflow as tf
from tfgan_app.gan import penalties
from tfgan_app.hardware import distribute
strategy = distribute.build_strategy("mirrored", num_cpu_replicas=2)
rng = np.random.default_rng(1)
real = rng.normal(size=(8, 3)).astype(np.float32)
fake = rng.normal(size=(8, 3)).astype(np.float32)
with strategy.scope():
  weights = tf.Variable(rng.normal(size=(3, 4)).astype(np.float32))
  record = tf.Variable(0.0, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
critic = lambda x, training=False: tf.reduce_sum(tf.tanh(tf.matmul(x, weights)), axis=1)
both = penalties.DiscriminatorPenalties(gradient_penalty=10.0, r1_gamma=3.0)

def gradient(local_real, local_fake):
  with tf.GradientTape() as tape:
    total, logs = both(critic, local_real, local_fake, seed=5, update_index=2,
                       global_batch_size=8, r1_record=record)
  return tape.gradient(total, weights), total, logs

shard = lambda array: strategy.experimental_distribute_values_from_function(
    lambda context: array[4 * context.replica_id_in_sync_group:][:4])
grads, totals, logs = strategy.run(gradient, args=(shard(real), shard(fake)))
summed = strategy.reduce(tf.distribute.ReduceOp.SUM, grads, axis=None).numpy()
total_sum = strategy.reduce(tf.distribute.ReduceOp.SUM, totals, axis=None).numpy()
one_grad, one_total, one_logs = gradient(tf.constant(real), tf.constant(fake))
np.testing.assert_allclose(summed, one_grad.numpy(), rtol=1e-5)
np.testing.assert_allclose(total_sum, one_total.numpy(), rtol=1e-5)
for name in ("gradient_penalty", "r1_penalty"):
  for value in strategy.experimental_local_results(logs[name]):
    np.testing.assert_allclose(value.numpy(), one_logs[name].numpy(), rtol=1e-5)

# Lazy R1 traced as Keras traces train_step (strategy.run in a tf.function): its condition holds
# no cross-replica call. Update 0 computes it (times N), update 1 skips it and logs the record.
lazy = penalties.DiscriminatorPenalties(r1_gamma=1.5, r1_every=2)
@tf.function
def lazy_step(update):
  def replica(local_real, local_fake):
    with tf.GradientTape() as tape:
      total, logs = lazy(critic, local_real, local_fake, seed=5, update_index=update,
                         global_batch_size=8, r1_record=record)
    return tape.gradient(total, weights), total, logs["r1_penalty"]
  grads, totals, logged = strategy.run(replica, args=(shard(real), shard(fake)))
  return (strategy.reduce(tf.distribute.ReduceOp.SUM, grads, axis=None),
          strategy.reduce(tf.distribute.ReduceOp.SUM, totals, axis=None),
          strategy.experimental_local_results(logged))
only_r1 = penalties.DiscriminatorPenalties(r1_gamma=3.0)
with tf.GradientTape() as tape:
  r1_total, r1_logs = only_r1(critic, tf.constant(real), tf.constant(fake), seed=5,
                              update_index=0, global_batch_size=8, r1_record=record)
r1_grad = tape.gradient(r1_total, weights)
for update, scale in ((0, 1.0), (1, 0.0)):
  grads, total, logged = lazy_step(tf.constant(update))
  np.testing.assert_allclose(grads.numpy(), scale * r1_grad.numpy(), rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(total.numpy(), scale * r1_total.numpy(), rtol=1e-5, atol=1e-7)
  for value in logged:
    np.testing.assert_allclose(value.numpy(), r1_logs["r1_penalty"].numpy(), rtol=1e-5)
print("ok")
"""
  run_script_ok(script)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_penalties_under_mixed_precision_match_float32(tmp_path, policy):
  config = tiny_config(tmp_path, None, loss="wasserstein", gradient_penalty=10.0, r1_gamma=1.0,
                       mixed_precision=policy)
  real = (tf.random.stateless_uniform([16, 28, 28, 1], seed=[0, 9], minval=-1, maxval=1),)
  logged = {}
  for name in ("float32", policy):
    keras.mixed_precision.set_global_policy(name)
    try:
      keras.utils.set_random_seed(0)
      model = gan_build.build_gan(config, (28, 28, 1), name)
      logged[name] = {key: float(value) for key, value in model.train_step(real).items()}
    finally:
      keras.mixed_precision.set_global_policy("float32")
  # float16 runs through the loss-scaled inner gradient (LossScaleOptimizer's scale).
  for key in ("gradient_penalty", "r1_penalty"):
    assert logged[policy][key] == pytest.approx(logged["float32"][key], rel=0.05), key


def test_resume_with_both_penalties_and_lazy_r1_is_exact(tmp_path, data_dir):
  # Lazy R1 on updates 0 and 3: the resumed half skips update 2 and computes update 3, from
  # the step alone (eps and the lazy schedule are functions of the update's number).
  straight = tiny_config(tmp_path / "straight", data_dir, loss="wasserstein",
                         gradient_penalty=10.0, r1_gamma=1.0, r1_every=3, export=False)
  expected, got = straight_and_resumed_checkpoints(straight)
  assert set(expected) == set(got) and any("_trainable_variables" in name for name in got)
  for name in expected:
    np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


def test_a_resumed_run_logs_the_r1_value_of_the_skipped_updates(tmp_path, data_dir):
  # Lazy R1 on update 0 of 4 only: after a resume at step 2, updates 2 and 3 log the value
  # update 0 computed, which the checkpoint carries (not 0).
  straight = tiny_config(tmp_path / "straight", data_dir, r1_gamma=1.0, r1_every=4,
                         export=False)
  expected, got = straight_and_resumed_checkpoints(straight)
  record = [name for name in got if name.startswith("r1_record/")]
  assert record and expected[record[0]] > 0
  np.testing.assert_array_equal(got[record[0]], expected[record[0]])
  logged = [logged_scalars(workdir)[("r1_penalty", 4)]
            for workdir in (straight.workdir, straight.workdir + "_resumed")]
  assert logged[0] == logged[1] == pytest.approx(float(expected[record[0]]))


def test_lazy_r1_refuses_a_discriminator_that_synchronises_replicas(tmp_path):
  # Its cross-replica BatchNorm would run inside the lazy update's condition, which
  # MirroredStrategy cannot trace (merge_call inside control flow).
  config = tiny_config(tmp_path, None, sync_batchnorm=True)
  discriminator = gan_build.build_gan(config, (28, 28, 1)).discriminator
  lazy = penalties.DiscriminatorPenalties(r1_gamma=1.0, r1_every=2)
  with pytest.raises(ValueError, match=r"--r1_every=2 under 2 replicas needs a discriminator "
                                       r"without cross-replica BatchNorm \(down1_bn of"):
    lazy.check_discriminator(discriminator, replicas=2)
  lazy.check_discriminator(discriminator, replicas=1)
  penalties.DiscriminatorPenalties(r1_gamma=1.0).check_discriminator(discriminator, replicas=2)
  spectral = gan_build.build_gan(config.with_updates(spectral_norm=True), (28, 28, 1))
  lazy.check_discriminator(spectral.discriminator, replicas=2)
