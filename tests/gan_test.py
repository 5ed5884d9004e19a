"""The GAN's train_step: what it updates, what it logs, and the latents it draws."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgan_app.gan import build as gan_build
from tfgan_app.gan import losses
from tfgan_app.gan import model as gan_lib
from conftest import tiny_config


def _gan(tmp_path, **overrides):
  config = tiny_config(tmp_path, None, **overrides)
  keras.utils.set_random_seed(0)
  return gan_build.build_gan(config, (28, 28, 1))


def _real(d_steps, batch=16):
  return tuple(tf.random.stateless_uniform([batch, 28, 28, 1], seed=[i, 9], minval=-1, maxval=1)
               for i in range(d_steps))


def _weights(model):
  return [v.numpy().copy() for v in model.trainable_variables]


@pytest.mark.parametrize("d_steps", [1, 2])
def test_train_step_updates_both_players_d_steps_to_one(tmp_path, d_steps):
  model = _gan(tmp_path, d_steps=d_steps)
  g_before, d_before = _weights(model.generator), _weights(model.discriminator)
  logs = model.train_step(_real(d_steps))
  assert int(model.d_optimizer.iterations.numpy()) == d_steps
  assert int(model.g_optimizer.iterations.numpy()) == 1
  assert int(model.step.numpy()) == 1
  assert any(not np.array_equal(a, b) for a, b in zip(g_before, _weights(model.generator)))
  assert any(not np.array_equal(a, b) for a, b in zip(d_before, _weights(model.discriminator)))
  assert set(logs) == {"d_loss", "g_loss", "d_real", "d_fake", "jsd"}
  for name in ("d_real", "d_fake"):
    assert 0.0 <= float(logs[name]) <= 1.0
  assert all(np.isfinite(float(value)) for value in logs.values())


def test_logged_values_are_consistent_with_the_theory(tmp_path):
  model = _gan(tmp_path)
  logs = model.train_step(_real(1))
  # d_loss = -V for the minimax discriminator loss, and jsd = (V + log 4) / 2.
  value = -float(logs["d_loss"])
  assert float(logs["jsd"]) == pytest.approx((value + np.log(4.0)) / 2.0, abs=1e-5)


def test_latents_differ_by_step_and_purpose_and_replica_slices_tile_the_batch():
  a = gan_lib.replica_latents(1, 0, 0, 8, 8, 4).numpy()
  assert not np.array_equal(a, gan_lib.replica_latents(1, 1, 0, 8, 8, 4).numpy())
  assert not np.array_equal(a, gan_lib.replica_latents(1, 0, 1, 8, 8, 4).numpy())
  assert not np.array_equal(a, gan_lib.replica_latents(2, 0, 0, 8, 8, 4).numpy())
  np.testing.assert_array_equal(a, gan_lib.replica_latents(1, 0, 0, 8, 8, 4).numpy())
  assert abs(a.mean()) < 1.0 and 0.3 < a.std() < 2.0


def test_minimax_loss_choice(tmp_path):
  model = _gan(tmp_path, loss="minimax")
  assert model._generator_loss is losses.minimax_generator_loss_per_example
  logs = model.train_step(_real(1))
  # log(1 - D(G(z))) is negative.
  assert float(logs["g_loss"]) < 0.0


def test_label_smoothing_reaches_the_discriminator_loss(tmp_path):
  # d_loss of a step is computed from D's logits before its update: recompute them with the
  # step's latents and compare with real targets 1 - s and fake targets 0.
  smoothing = 0.2
  model = _gan(tmp_path, label_smoothing=smoothing)
  real = _real(1)
  latents = gan_lib.replica_latents(model.seed, model.step, 0, 16, 16, model.latent_dim)
  real_logits = model.discriminator(real[0], training=True).numpy().ravel().astype(np.float64)
  fake_logits = model.discriminator(model.generator(latents, training=True),
                                    training=True).numpy().ravel().astype(np.float64)
  log_sigmoid = lambda x: -np.logaddexp(0.0, -x)
  expected = np.mean(-(1 - smoothing) * log_sigmoid(real_logits)
                     - smoothing * log_sigmoid(-real_logits) - log_sigmoid(-fake_logits))
  logs = model.train_step(real)
  assert float(logs["d_loss"]) == pytest.approx(expected, rel=1e-4)


def test_global_batch_feature_mean_value_and_gradient():
  features = tf.Variable(np.arange(12, dtype=np.float32).reshape(4, 3))
  with tf.GradientTape() as tape:
    mean = gan_lib.global_batch_feature_mean(features, 4)
    total = tf.reduce_sum(mean * tf.constant([1.0, 2.0, 3.0]))
  np.testing.assert_allclose(mean.numpy(), features.numpy().mean(axis=0))
  np.testing.assert_allclose(tape.gradient(total, features).numpy(),
                             np.tile([[0.25, 0.5, 0.75]], (4, 1)))


def _feature_gap(model, real, latents):
  real_mean = np.mean(model.discriminator.features(real, training=True).numpy(), axis=0)
  fake = model.generator(latents, training=True)
  fake_mean = np.mean(model.discriminator.features(fake, training=True).numpy(), axis=0)
  return float(np.sum((real_mean.astype(np.float64) - fake_mean) ** 2))


def test_feature_matching_generator_steps_close_the_feature_gap(tmp_path):
  model = _gan(tmp_path, g_objective="feature_matching", g_lr=1e-3)
  real = _real(1, batch=32)[0]
  # _generator_step draws its latents from (seed, step): the step is not advanced here, so
  # every call below sees the same latents and the same (frozen) discriminator.
  latents = gan_lib.replica_latents(model.seed, model.step, gan_lib._GENERATOR_STEP, 32, 32,
                                    model.latent_dim)
  gaps = [_feature_gap(model, real, latents)]
  for _ in range(5):
    logged = float(model._generator_step(real, 32, 32)[0])  # (objective, extra logs)
    assert logged == pytest.approx(gaps[-1], rel=1e-4)  # g_loss is the gap G started from.
    gaps.append(_feature_gap(model, real, latents))
  assert gaps[-1] < 0.8 * gaps[0], gaps
  assert int(model.g_optimizer.iterations.numpy()) == 5


def test_feature_matching_train_step_logs_the_gap_and_trains_both(tmp_path):
  model = _gan(tmp_path, g_objective="feature_matching")
  d_before = _weights(model.discriminator)
  logs = model.train_step(_real(1))
  assert float(logs["g_loss"]) > 0.0 and np.isfinite(float(logs["g_loss"]))
  assert any(not np.array_equal(a, b) for a, b in zip(d_before, _weights(model.discriminator)))
  with pytest.raises(ValueError, match="accepted: standard, feature_matching"):
    gan_lib.GAN(model.generator, model.discriminator, 8, g_objective="mean_matching")


@pytest.mark.parametrize("loss", ["minimax", "non_saturating"])
def test_both_losses_train_the_mlp_on_points(tmp_path, loss):
  config = tiny_config(tmp_path, None, dataset="ring8", architecture="mlp", g_units="16,16",
                       d_units="16,16", d_dropout=0.5, loss=loss)
  keras.utils.set_random_seed(0)
  model = gan_build.build_gan(config, (2,))
  points = (tf.random.stateless_normal([16, 2], seed=[1, 2]),)
  g_before, d_before = _weights(model.generator), _weights(model.discriminator)
  logs = model.train_step(points)
  assert all(np.isfinite(float(value)) for value in logs.values())
  assert any(not np.array_equal(a, b) for a, b in zip(g_before, _weights(model.generator)))
  assert any(not np.array_equal(a, b) for a, b in zip(d_before, _weights(model.discriminator)))
  # g_loss is the chosen loss of D's output on the generator's batch: -log D or log(1 - D).
  assert (float(logs["g_loss"]) < 0.0) == (loss == "minimax")


def test_feature_matching_and_minibatch_discrimination_train_the_mlp_on_points(tmp_path):
  config = tiny_config(tmp_path, None, dataset="ring8", architecture="mlp", g_units="16",
                       d_units="16,8", d_dropout=0.2, g_objective="feature_matching",
                       minibatch_discrimination=True, minibatch_kernels=4,
                       minibatch_kernel_dim=3)
  keras.utils.set_random_seed(0)
  model = gan_build.build_gan(config, (2,))
  points = tf.random.stateless_normal([16, 2], seed=[1, 2])
  assert model.discriminator.features(points, training=False).shape == (16, 8)
  assert model.discriminator.minibatch.num_kernels == 4
  g_before = _weights(model.generator)
  logs = model.train_step((points,))
  assert float(logs["g_loss"]) > 0.0 and np.isfinite(float(logs["d_loss"]))
  assert any(not np.array_equal(a, b) for a, b in zip(g_before, _weights(model.generator)))


def _first_adam_step(optimizer, gradient):
  """The change Adam's first update makes: lr * m_hat / (sqrt(v_hat) + eps), Keras's form."""
  g = gradient.numpy()
  beta_1, beta_2 = optimizer.beta_1, optimizer.beta_2
  alpha = float(optimizer.learning_rate) * np.sqrt(1 - beta_2) / (1 - beta_1)
  return alpha * (1 - beta_1) * g / (np.sqrt((1 - beta_2) * g * g) + optimizer.epsilon)


def test_simultaneous_update_is_the_tutorials_step(tmp_path):
  """Both players' gradients come from one generator pass, taken before either update."""
  model = _gan(tmp_path, update="simultaneous")
  real = _real(1)[0]
  generator, discriminator = model.generator, model.discriminator
  g_before, d_before = _weights(generator), _weights(discriminator)
  # The expected step, written out independently: the latents the step draws, two tapes,
  # then both Adam updates (fresh copies of the optimizers, so the model's stay untouched).
  latents = gan_lib.replica_latents(model.seed, 0, 0, 16, 16, model.latent_dim)
  with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
    fake = generator(latents, training=True)
    real_logits = discriminator(real, training=True)
    fake_logits = discriminator(fake, training=True)
    d_loss = tf.reduce_mean(tf.nn.softplus(-real_logits) + tf.nn.softplus(fake_logits))
    g_loss = tf.reduce_mean(tf.nn.softplus(-fake_logits))
  g_grads = g_tape.gradient(g_loss, generator.trainable_variables)
  d_grads = d_tape.gradient(d_loss, discriminator.trainable_variables)
  expected_g = [w - _first_adam_step(model.g_optimizer, g) for w, g in zip(g_before, g_grads)]
  expected_d = [w - _first_adam_step(model.d_optimizer, g) for w, g in zip(d_before, d_grads)]
  logs = model.train_step((real,))
  assert int(model.d_optimizer.iterations.numpy()) == 1
  assert int(model.g_optimizer.iterations.numpy()) == 1
  # The model's update equals the one from these gradients: D's update did not see an updated
  # G, nor G's an updated D.
  for expected, got in ((expected_g, _weights(generator)), (expected_d, _weights(discriminator))):
    for want, have in zip(expected, got):
      np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-6)
  assert float(logs["d_loss"]) == pytest.approx(float(d_loss), rel=1e-4)
  assert float(logs["g_loss"]) == pytest.approx(float(g_loss), rel=1e-4)


def test_simultaneous_update_needs_one_discriminator_step(tmp_path):
  with pytest.raises(ValueError, match="needs --d_steps=1"):
    _gan(tmp_path, update="simultaneous", d_steps=2)
  with pytest.raises(ValueError, match="accepted: alternating, simultaneous"):
    _gan(tmp_path, update="sometimes")
