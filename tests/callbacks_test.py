"""Keras callbacks: the toy monitor's drawing of D's decision surface."""

import types

import numpy as np
import tensorflow as tf

from tfgan_app import callbacks
from tfgan_app import models
from tfgan_app import toy_data


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


def test_surface_batches_are_spread_over_the_grid(tmp_path):
  # A minibatch-discrimination D judges each point against the rest of its batch: batches of
  # neighbouring grid points would look like a collapsed generator everywhere.
  seen = []

  def recording_discriminator(batch, training=False):
    del training
    seen.append(batch.numpy())
    return tf.zeros([batch.shape[0], 1])

  points = _grid()
  values = _monitor(tmp_path, recording_discriminator, d_batch_size=64)._d_of(points)
  assert values.shape == (len(points),) and np.all(values == 0.5)
  assert sum(len(batch) for batch in seen) == len(points)
  assert max(len(batch) for batch in seen) == 64
  for batch in seen[:-1]:  # Each full batch spans most of the grid in both coordinates.
    assert np.all(batch.max(axis=0) - batch.min(axis=0) > 4.0)
  drawn = np.concatenate(seen)
  assert len(np.unique(drawn, axis=0)) == len(points)  # Every point exactly once.
