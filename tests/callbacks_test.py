"""Keras callbacks: the toy monitor's drawing of D's decision surface."""

import itertools
import types

import numpy as np
import tensorflow as tf

from tfgan_app.common import periodic
from tfgan_app.models import registry as models
from tfgan_app.toy import distributions as toy_data
from tfgan_app.training import callbacks


def _monitor(tmp_path, discriminator, d_batch_size):
  writer = tf.summary.create_noop_writer()
  monitor = callbacks.ToyMonitor(writer, str(tmp_path), toy_data.get("ring8"),
                                 tf.zeros([8, 2]), sample_every=1, print_fn=None,
                                 d_batch_size=d_batch_size)
  monitor.set_model(types.SimpleNamespace(discriminator=discriminator))
  return monitor


def _grid(size=40):
  xs = np.linspace(-3.0, 3.0, size)
  return np.stack(np.meshgrid(xs, xs), axis=-1).reshape(-1, 2).astype(np.float32)


def test_surface_of_a_plain_discriminator_does_not_depend_on_the_batching(tmp_path):
  discriminator = models.build_discriminator("mlp", (2,), filters=0, hidden_units=(16, 16),
                                             dropout=0.0)
  points = _grid()
  expected = tf.sigmoid(discriminator(points, training=False)).numpy()[:, 0]
  got = _monitor(tmp_path, discriminator, d_batch_size=37)._d_of(points)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_each_grid_point_is_judged_as_one_more_member_of_a_real_batch(tmp_path):
  # A minibatch-discrimination D judges each point against the rest of its batch: the surface
  # must show what it makes of a point arriving among real data, as in training.
  discriminator = models.build_discriminator("mlp", (2,), filters=0, hidden_units=(16, 16),
                                             dropout=0.0, minibatch_kernels=6,
                                             minibatch_kernel_dim=3)
  points = _grid(12)
  got = _monitor(tmp_path, discriminator, d_batch_size=32)._d_of(points)
  seen = []

  def recorder(batch, training=False):  # D is called inside a tf.function.
    del training

    def record(values):
      seen.append(values.copy())
      return np.zeros([len(values), 1], np.float32)

    logits = tf.numpy_function(record, [batch], tf.float32)
    logits.set_shape([batch.shape[0], 1])
    return logits

  _monitor(tmp_path, recorder, d_batch_size=32)._d_of(points)
  context = seen[0][-31:]
  ring8 = toy_data.get("ring8")  # The context is real data, the same in every call.
  distances = np.linalg.norm(context[:, None] - ring8.centres_array[None], axis=-1)
  assert np.all(distances.min(axis=1) < 5 * ring8.std)
  assert all(np.array_equal(batch[-31:], context) for batch in seen)
  # 144 points in chunks of 32: the last chunk is padded to the others' shape.
  grid_rows = np.concatenate([batch[:-31] for batch in seen])
  assert len(seen) == 5 and np.array_equal(grid_rows[:len(points)], points)
  for i in (0, 50, 143):  # D of the point put in front of the 31 real points, on its own.
    alone = discriminator(np.concatenate([points[i:i + 1], context]), training=False)
    np.testing.assert_allclose(got[i], tf.sigmoid(alone).numpy()[0, 0], rtol=1e-5, atol=1e-6)


def test_log_lines_carry_steps_per_second_and_the_time_left(capsys, monkeypatch):
  clock = itertools.chain([100.0, 104.0], itertools.repeat(104.0))  # 4 s to step 20.
  monkeypatch.setattr(callbacks.time, "perf_counter", lambda: next(clock))
  logger = callbacks.MetricsLogger(tf.summary.create_noop_writer(), log_every=10,
                                   images_per_step=64, total_steps=1000, print_lines=True)
  model = types.SimpleNamespace(step=tf.Variable(0, dtype=tf.int64))
  logger.set_model(model)
  logger.on_train_begin()
  model.step.assign(20)
  logger.on_train_batch_end(0, {"d_loss": 0.5})
  # 20 steps in 4 s: 5 steps/s, 320 images/s, 980 steps left = 196 s.
  assert capsys.readouterr().out.strip() == (
      "step 20/1000 d_loss=0.5000 steps/s=5.00 images/s=320 eta=3m16s")


def test_log_lines_follow_the_step_across_executions_and_at_the_last_step(capsys):
  # With --steps_per_execution > 1 the step moves in jumps that may skip the multiples of
  # log_every; a line is due whenever one is crossed, and at the run's last step.
  logger = callbacks.MetricsLogger(tf.summary.create_noop_writer(), log_every=10,
                                   images_per_step=8, total_steps=47, print_lines=True)
  assert isinstance(logger, periodic.PeriodicCallback)
  model = types.SimpleNamespace(step=tf.Variable(0, dtype=tf.int64))
  logger.set_model(model)
  logger.on_train_begin()
  logged = []
  for step in (7, 14, 21, 28, 35, 42, 47):
    model.step.assign(step)
    logger.on_train_batch_end(0, {"d_loss": float(step)})
    logged += [line.split()[1] for line in capsys.readouterr().out.splitlines()]
  logger.on_train_end()
  assert capsys.readouterr().out == ""  # The last step was logged from its batch.
  assert logged == ["14/47", "21/47", "35/47", "42/47", "47/47"]


def test_format_duration():
  assert [callbacks.format_duration(seconds) for seconds in (0, 59.4, 61, 3599, 3600, 11220)] == [
      "0s", "59s", "1m01s", "59m59s", "1h00m", "3h07m"]
