"""The data pipeline on the offline MNIST: dtype, range, shapes, order, resume, errors."""

import numpy as np
import pytest
import tensorflow as tf

from tfgan_app.data import datasets as data


def _stream(data_dir, start_step=0, d_steps=1, image_size=None, seed=5, split="train[:1000]"):
  info = data.prepare("mnist", split, data_dir, image_size=image_size, download=False)
  images = data.load_uint8_images(info, data_dir)
  return info, data.make_train_dataset(images, info.num_examples, batch_size=32,
                                       d_steps=d_steps, seed=seed, start_step=start_step,
                                       shuffle_buffer=10_000)


def test_batches_are_float32_nhwc_in_unit_range(data_dir):
  info, dataset = _stream(data_dir)
  assert info.image_shape == (28, 28, 1) and info.num_examples == 1000
  (batch,) = next(iter(dataset))
  assert batch.dtype == tf.float32
  assert batch.shape == (32, 28, 28, 1)
  values = batch.numpy()
  assert values.min() == -1.0 and values.max() == 1.0  # MNIST has both 0 and 255 pixels.


def test_resize_to_image_size(data_dir):
  info, dataset = _stream(data_dir, image_size=32)
  (batch,) = next(iter(dataset))
  assert info.image_shape == (32, 32, 1) and batch.shape == (32, 32, 32, 1)
  assert batch.numpy().min() >= -1.0 and batch.numpy().max() <= 1.0


def test_to_unit_range_eager_equals_in_tf_data():
  pixels = np.array([0, 1, 127, 128, 255], np.uint8)
  eager = data.to_unit_range(tf.constant(pixels)).numpy()
  in_pipeline = next(iter(tf.data.Dataset.from_tensors(pixels).map(data.to_unit_range))).numpy()
  np.testing.assert_array_equal(eager, in_pipeline)
  np.testing.assert_allclose(eager, pixels / 127.5 - 1.0, atol=1e-6)


def test_d_steps_gives_one_distinct_batch_per_discriminator_step(data_dir):
  _, dataset = _stream(data_dir, d_steps=2)
  first, second = next(iter(dataset))
  assert first.shape == second.shape == (32, 28, 28, 1)
  assert not np.array_equal(first.numpy(), second.numpy())


def test_stream_is_reproducible_and_resumes_exactly(data_dir):
  # 1000 images / 32 per step: step 40 lies in the second epoch.
  _, full = _stream(data_dir)
  steps = [batch.numpy() for (batch,) in full.take(45)]
  _, again = _stream(data_dir)
  np.testing.assert_array_equal(next(iter(again))[0].numpy(), steps[0])
  _, resumed = _stream(data_dir, start_step=40)
  for offset, (batch,) in enumerate(resumed.take(5)):
    np.testing.assert_array_equal(batch.numpy(), steps[40 + offset])
  _, other_seed = _stream(data_dir, seed=6)
  assert not np.array_equal(next(iter(other_seed))[0].numpy(), steps[0])


def test_epochs_are_permutations_of_the_split(data_dir):
  info = data.prepare("mnist", "train[:64]", data_dir, download=False)
  images = data.load_uint8_images(info, data_dir)
  originals = sorted(image.tobytes() for image in images.as_numpy_iterator())
  dataset = data.make_train_dataset(images, 64, batch_size=16, seed=1)
  epoch = np.concatenate([batch.numpy() for (batch,) in dataset.take(4)])
  restored = np.round((epoch + 1.0) * 127.5).astype(np.uint8)
  assert sorted(image.tobytes() for image in restored) == originals


@pytest.mark.parametrize("name,message", [
    ("no_such_dataset", "unknown dataset 'no_such_dataset'.*toy distribution: ring8, grid25"),
    ("imdb_reviews", "has no 'image' feature"),
])
def test_bad_datasets_are_refused(data_dir, name, message):
  with pytest.raises(data.DatasetError, match=message):
    data.prepare(name, "train", data_dir, download=False)


def test_unknown_split_and_missing_data(data_dir, tmp_path):
  with pytest.raises(data.DatasetError, match="no split 'validation'; accepted: test, train"):
    data.prepare("mnist", "validation", data_dir, download=False)
  with pytest.raises(data.DatasetError, match="not prepared"):
    data.prepare("mnist", "train", str(tmp_path), download=False)


def test_batch_larger_than_split(data_dir):
  info = data.prepare("mnist", "train[:10]", data_dir, download=False)
  with pytest.raises(data.DatasetError, match="fewer than --batch_size"):
    data.make_train_dataset(data.load_uint8_images(info, data_dir), 10, batch_size=32)


def test_toy_datasets_need_no_files_and_stream_points(tmp_path):
  info = data.prepare("ring8", "train", str(tmp_path), download=False)
  assert data.is_point_dataset(info) and info.example_shape == (2,)
  assert data.prepare("gaussian1d", "anything", None).example_shape == (1,)
  (batch,) = next(iter(data.training_stream(info, batch_size=32, seed=1)))
  assert batch.shape == (32, 2) and batch.dtype == tf.float32
  radii = np.linalg.norm(batch.numpy(), axis=1)
  assert np.all(np.abs(radii - 2.0) < 0.15)  # On the ring of radius 2 (std 0.02).
  with pytest.raises(data.DatasetError, match="--image_size=28 applies to image datasets"):
    data.prepare("ring8", "train", None, image_size=28)


def test_image_info_exposes_its_example_shape(data_dir):
  info = data.prepare("mnist", "train[:64]", data_dir, download=False)
  assert not data.is_point_dataset(info) and info.example_shape == (28, 28, 1)
  (batch,) = next(iter(data.training_stream(info, batch_size=16, data_dir=data_dir)))
  assert batch.shape == (16, 28, 28, 1)
