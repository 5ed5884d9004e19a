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


def test_each_grid_point_is_judged_as_one_more_member_of_a_real_batch(tmp_path):
  # A minibatch-discrimination D judges each point against the rest of its batch: the surface
  # must show what it makes of a point arriving among real data, as in training.
  discriminator = models.build_discriminator("mlp", (2,), filters=0, hidden_units=(16, 16),
                                             dropout=0.0, minibatch_kernels=6,
                                             minibatch_kernel_dim=3)
  points = _grid(12)
  got = _monitor(tmp_path, discriminator, d_batch_size=32)._d_of(points)
  seen = []

  def recorder(batch, training=False):
    del training
    seen.append(batch.numpy())
    return tf.zeros([batch.shape[0], 1])

  _monitor(tmp_path, recorder, d_batch_size=32)._d_of(points)
  context = seen[0][-31:]
  ring8 = toy_data.get("ring8")  # The context is real data, the same in every call.
  distances = np.linalg.norm(context[:, None] - ring8.centres_array[None], axis=-1)
  assert np.all(distances.min(axis=1) < 5 * ring8.std)
  assert all(np.array_equal(batch[-31:], context) for batch in seen)
  assert np.array_equal(np.concatenate([batch[:-31] for batch in seen]), points)
  for i in (0, 50, 143):  # D of the point put in front of the 31 real points, on its own.
    alone = discriminator(np.concatenate([points[i:i + 1], context]), training=False)
    np.testing.assert_allclose(got[i], tf.sigmoid(alone).numpy()[0, 0], rtol=1e-5, atol=1e-6)
