"""DiffAugment (gan/diffaugment.py): each policy's transformation, its randomness (per image,
stateless, the same across replicas), gradients through it, and the GAN training with it."""


import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgan_app.gan import build as gan_build
from tfgan_app.gan import diffaugment
from conftest import run_script_ok, tiny_config

IMAGES = tf.random.stateless_uniform([64, 16, 16, 3], seed=[1, 2], minval=-1, maxval=1)


def _augment(policy, images=IMAGES, update=0, purpose=0):
  augment = diffaugment.DiffAugment(diffaugment.parse_policy(policy))
  return augment(images, seed=3, update_index=update, purpose=purpose,
                 global_batch_size=int(images.shape[0])).numpy()


def test_parse_policy_accepts_subsets_and_refuses_the_rest():
  assert diffaugment.parse_policy("") == ()
  assert diffaugment.parse_policy("color, cutout") == ("color", "cutout")
  with pytest.raises(ValueError, match="expected a comma-separated subset of "
                                       "color,translation,cutout"):
    diffaugment.parse_policy("color,flip")
  with pytest.raises(ValueError, match="each at most once"):
    diffaugment.parse_policy("color,color")


def test_translation_shifts_whole_images_and_fills_with_zeros():
  image = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1) + 1
  shifted = diffaugment.translate(tf.constant(image), tf.constant([1]),
                                  tf.constant([-2])).numpy()[0, :, :, 0]
  expected = np.zeros((4, 4), np.float32)
  expected[1:, :2] = image[0, :3, 2:, 0]  # Down one row, left two columns.
  np.testing.assert_array_equal(shifted, expected)
  out = _augment("translation")
  # Every image is itself shifted by at most round(16 / 8) = 2 pixels in each direction.
  for original, moved in zip(IMAGES.numpy(), out):
    assert any(np.array_equal(moved, diffaugment.translate(
        original[None], tf.constant([dy]), tf.constant([dx])).numpy()[0])
               for dy in range(-2, 3) for dx in range(-2, 3))


def test_cutout_zeroes_one_square_of_half_the_size_per_image():
  mask = diffaugment.cutout_mask(8, 8, tf.constant([4, 0]), tf.constant([4, 7]), 4, 4).numpy()
  assert mask.shape == (2, 8, 8, 1)
  expected = np.ones((8, 8))
  expected[2:6, 2:6] = 0
  np.testing.assert_array_equal(mask[0, :, :, 0], expected)
  expected = np.ones((8, 8))
  expected[0:2, 5:8] = 0  # Cut off at the border.
  np.testing.assert_array_equal(mask[1, :, :, 0], expected)
  out = _augment("cutout", images=IMAGES + 5.0)  # No pixel is 0 before.
  zeros = (out == 0).all(axis=3).sum(axis=(1, 2))
  assert zeros.max() == 64 and zeros.min() >= 8  # An 8x8 square, possibly cut off.


def _draws(update=0, purpose=0, batch=64):
  """The three colour uniforms per image, drawn as the module documents: from
  fold_in((seed, update), 2**22 + purpose) split seven ways, keys 0-2."""
  key = tf.random.experimental.stateless_fold_in(tf.constant([3, update], tf.int64),
                                                 tf.constant((1 << 22) + purpose, tf.int64))
  keys = tf.random.experimental.stateless_split(key, num=7)
  return [tf.random.stateless_uniform([batch, 1, 1, 1], seed=keys[i]).numpy() for i in range(3)]


def test_color_matches_the_papers_formulas():
  u_brightness, u_saturation, u_contrast = _draws()
  x = IMAGES.numpy().astype(np.float64) + (u_brightness - 0.5)
  mean = x.mean(axis=3, keepdims=True)
  x = (x - mean) * (u_saturation * 2) + mean
  mean = x.mean(axis=(1, 2, 3), keepdims=True)
  x = (x - mean) * (u_contrast + 0.5) + mean
  np.testing.assert_allclose(_augment("color"), x, rtol=1e-5, atol=1e-5)
  # Brightness alone moves a flat image, by a shift in [-0.5, 0.5) that differs per image.
  shift = _augment("color", images=tf.fill([64, 4, 4, 3], 0.25)) - 0.25
  assert np.allclose(shift, shift[:, :1, :1, :1], atol=1e-6)
  assert shift.min() >= -0.5 and shift.max() < 0.5 and shift.std() > 0.2


def test_randomness_is_per_image_stateless_and_keyed_by_update_and_purpose():
  a = _augment("color,translation,cutout")
  np.testing.assert_array_equal(a, _augment("color,translation,cutout"))
  assert not np.allclose(a, _augment("color,translation,cutout", update=1))
  assert not np.allclose(a, _augment("color,translation,cutout", purpose=1))
  copies = tf.repeat(IMAGES[:1], 64, axis=0)
  out = _augment("color,translation,cutout", images=copies)
  assert len({out[i].tobytes() for i in range(64)}) == 64


def test_gradients_flow_through_every_policy():
  images = tf.Variable(IMAGES)
  augment = diffaugment.DiffAugment(("color", "translation", "cutout"))
  with tf.GradientTape() as tape:
    out = augment(images, seed=3, update_index=0, purpose=0, global_batch_size=64)
    loss = tf.reduce_sum(out * out)
  gradient = tape.gradient(loss, images).numpy()
  assert np.isfinite(gradient).all() and np.abs(gradient).sum() > 0


def test_replicas_augment_their_slice_like_one_replica():
  script = """
import numpy as np, tensorflow as tf
from tfgan_app.gan import diffaugment
from tfgan_app.hardware import distribute
strategy = distribute.build_strategy("mirrored", num_cpu_replicas=2)
images = tf.random.stateless_uniform([8, 8, 8, 3], seed=[1, 2], minval=-1, maxval=1)
augment = diffaugment.DiffAugment(("color", "translation", "cutout"))
run = lambda x: augment(x, seed=3, update_index=5, purpose=2, global_batch_size=8)
shards = strategy.experimental_distribute_values_from_function(
    lambda context: images[4 * context.replica_id_in_sync_group:][:4])
parts = strategy.experimental_local_results(strategy.run(run, args=(shards,)))
np.testing.assert_array_equal(np.concatenate([p.numpy() for p in parts]), run(images).numpy())
print("ok")
"""
  run_script_ok(script)


@pytest.mark.parametrize("update", ["alternating", "simultaneous"])
def test_gan_trains_with_diffaugment_and_it_changes_what_d_sees(tmp_path, update):
  real = (tf.random.stateless_uniform([16, 28, 28, 1], seed=[0, 9], minval=-1, maxval=1),)
  logs = {}
  for policy in ("", "color,translation,cutout"):
    config = tiny_config(tmp_path, None, diffaugment=policy, update=update)
    keras.utils.set_random_seed(0)
    model = gan_build.build_gan(config, (28, 28, 1))
    logs[policy] = {key: float(value) for key, value in model.train_step(real).items()}
  assert all(np.isfinite(value) for value in logs["color,translation,cutout"].values())
  assert logs[""]["d_real"] != pytest.approx(logs["color,translation,cutout"]["d_real"],
                                             abs=1e-6)
