"""The Inception path end to end on a stand-in network, both resize protocols, checked in numpy.

No Inception can be downloaded here, so a tiny Keras network with Inception's interface
(float32 [N, 299, 299, 3] in -> `logits` [N, 1008], `pool_3` [N, 16]) stands in for it. The
evaluator's numbers are compared with FID, KID and IS computed in numpy/scipy from the stand-in's
outputs on images resized independently (PIL for `clean`, a numpy bilinear for `tf_bilinear`).
"""

import glob
import os

import keras
from keras import layers
import numpy as np
from PIL import Image
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from conftest import REPO_ROOT, numpy_frechet_distance, numpy_unbiased_mmd2, tfds_data_dir
from tfgan_app.evaluation import evaluator
from tfgan_app.evaluation import inception
from tfgan_app.exporting import saved_model as export
from tfgan_app.models import registry as models

_LATENT_DIM = 8
_NUM_SAMPLES = 40
_CIFAR_JPEGS = os.path.join(REPO_ROOT, "..", "shared", "images", "cifar10_jpeg", "test")


def build_stand_in(seed: int = 0, feature_dim: int = 16) -> keras.Model:
  """Inception's interface on a tiny net: [N, 299, 299, 3] -> {"logits", "pool_3"}."""
  keras.utils.set_random_seed(seed)
  images = keras.Input((299, 299, 3))
  x = layers.AveragePooling2D(23)(images)  # [N, 13, 13, 3]
  x = layers.Flatten()(x)
  pool = layers.Dense(feature_dim, activation="tanh", name="pool_3")(x)  # [N, feature_dim]
  logits = layers.Dense(1008, name="logits")(pool)  # [N, 1008]
  return keras.Model(images, {"pool_3": pool, "logits": logits})


def save_stand_in(path: str, seed: int = 0) -> str:
  build_stand_in(seed).save(path)
  return path


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
  return save_stand_in(str(tmp_path_factory.mktemp("inception") / "stand_in.keras"))


@pytest.fixture(scope="module")
def mnist_export(tmp_path_factory):
  if not os.path.isdir(os.path.join(tfds_data_dir(), "mnist")):
    pytest.fail(f"MNIST for TFDS not found under {tfds_data_dir()}; set TFDS_DATA_DIR")
  generator = models.build_generator("dcgan", _LATENT_DIM, (28, 28, 1), filters=8)
  return export.export_generator(generator, _LATENT_DIM, str(tmp_path_factory.mktemp("export")),
                                 "tiny", 1, {"dataset": "mnist", "latent_dim": _LATENT_DIM,
                                             "image_shape": [28, 28, 1], "step": 1},
                                 warmup=False)


def _cifar_images(count: int) -> np.ndarray:
  paths = sorted(glob.glob(os.path.join(_CIFAR_JPEGS, "*", "*.jpg")))[:count]
  if len(paths) < count:
    pytest.fail(f"CIFAR-10 JPEGs not found under {_CIFAR_JPEGS}")
  return np.stack([np.asarray(Image.open(path).convert("RGB")) for path in paths])


def _numpy_bilinear(images: np.ndarray, size: int) -> np.ndarray:
  """Half-pixel-centre bilinear resize without antialiasing (tf.image.resize's "bilinear")."""

  def weights(in_size):
    source = np.clip((np.arange(size) + 0.5) * in_size / size - 0.5, 0, in_size - 1)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, in_size - 1)
    return low, high, source - low

  (y0, y1, wy), (x0, x1, wx) = weights(images.shape[1]), weights(images.shape[2])
  rows = (images[:, y0] * (1 - wy)[None, :, None, None]
          + images[:, y1] * wy[None, :, None, None])
  return rows[:, :, x0] * (1 - wx)[None, None, :, None] + rows[:, :, x1] * wx[None, None, :, None]


def _bicubic_matrix(in_size: int, out_size: int) -> np.ndarray:
  """[out_size, in_size] weights of an upsampling cubic convolution (Keys 1981, a = -0.5)."""

  def cubic(x, a=-0.5):
    x = abs(x)
    if x < 1:
      return ((a + 2) * x - (a + 3)) * x * x + 1
    return (((x - 5) * x + 8) * x - 4) * a if x < 2 else 0.0

  matrix = np.zeros((out_size, in_size))
  for out in range(out_size):
    centre = (out + 0.5) * in_size / out_size  # Pixel centres, in input pixels.
    for source in range(max(int(centre - 2 + 0.5), 0), min(int(centre + 2 + 0.5), in_size)):
      matrix[out, source] = cubic(source + 0.5 - centre)
  return matrix / matrix.sum(axis=1, keepdims=True)  # Edge rows renormalised, as PIL does.


def _independent_preprocess(images_uint8: np.ndarray, resize_method: str) -> np.ndarray:
  images = images_uint8.astype(np.float64)
  if images.shape[-1] == 1:
    images = np.repeat(images, 3, axis=-1)
  if resize_method == "clean":
    resized = np.stack([np.stack([np.asarray(
        Image.fromarray(image[:, :, c].astype(np.float32), mode="F").resize(
            (299, 299), Image.BICUBIC)) for c in range(3)], axis=-1) for image in images])
    resized = np.clip(resized, 0, 255)
  else:
    resized = _numpy_bilinear(images, 299)
  return ((resized - 128.0) / 128.0).astype(np.float32)


def _numpy_is(logits):
  logits = logits - logits.max(1, keepdims=True)
  p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  kl = np.sum(p * (np.log(p) - np.log(p.mean(0, keepdims=True))), axis=1)
  return float(np.exp(kl.mean()))


def _assert_metrics_match_numpy(record, stand_in, real_images, generated_images, resize_method):
  """The evaluator's FID, KID and IS equal numpy's on the stand-in's outputs for the images."""
  network = keras.saving.load_model(stand_in)
  real_out = network(_independent_preprocess(real_images, resize_method))
  generated_out = network(_independent_preprocess(generated_images, resize_method))
  real_features = np.asarray(real_out["pool_3"], np.float64)
  generated_features = np.asarray(generated_out["pool_3"], np.float64)
  np.testing.assert_allclose(record["fid"],
                             numpy_frechet_distance(real_features, generated_features),
                             rtol=2e-3, atol=1e-5)
  np.testing.assert_allclose(record["kid"], numpy_unbiased_mmd2(real_features, generated_features),
                             rtol=2e-3, atol=1e-6)
  np.testing.assert_allclose(record["is"],
                             _numpy_is(np.asarray(generated_out["logits"], np.float64)),
                             rtol=1e-4)


def test_clean_resize_is_pil_bicubic_and_tf_bilinear_is_bilinear():
  images = _cifar_images(3)  # uint8 [3, 32, 32, 3], colour
  clean = inception.preprocess(images / 127.5 - 1.0, "clean")
  assert clean.shape == (3, 299, 299, 3) and clean.dtype == np.float32
  np.testing.assert_allclose(clean, _independent_preprocess(images, "clean"), atol=1e-6)
  # A numpy bicubic (Keys, a = -0.5, PIL's sampling grid) gives the same upsampled images.
  rows, columns = _bicubic_matrix(32, 299), _bicubic_matrix(32, 299)
  expected = np.clip(np.einsum("oh,nhwc,pw->nopc", rows, images.astype(np.float64), columns),
                     0, 255)
  np.testing.assert_allclose(clean, (expected - 128.0) / 128.0, atol=1e-4)
  bilinear = inception.preprocess(images / 127.5 - 1.0, "tf_bilinear")
  np.testing.assert_allclose(bilinear, _independent_preprocess(images, "tf_bilinear"),
                             atol=1e-4)
  # The protocols differ: bicubic overshoots near edges, bilinear does not.
  assert np.max(np.abs(clean - bilinear)) > 0.01
  # Greyscale is repeated to three channels; a constant image stays constant.
  grey = np.full((1, 20, 24, 1), 0.5, np.float32)
  for method in inception.RESIZE_METHODS:
    out = inception.preprocess(grey, method)
    assert out.shape == (1, 299, 299, 3)
    np.testing.assert_allclose(out, (np.round(1.5 * 127.5) - 128) / 128 if method == "clean"
                               else (1.5 * 127.5 - 128) / 128, atol=1e-5)
  with pytest.raises(evaluator.EvaluationError, match="accepted: clean, tf_bilinear"):
    inception.preprocess(grey, "bicubic")


def test_loaders_keras_file_and_saved_model_give_the_same_activations(stand_in, tmp_path):
  model = keras.saving.load_model(stand_in)
  module = tf.Module()
  module.variables_ = [v.value for v in model.variables]
  module.__call__ = tf.function(lambda images: model(images, training=False),
                                input_signature=[tf.TensorSpec([None, 299, 299, 3])])
  tf.saved_model.save(module, str(tmp_path / "saved"))
  images = _cifar_images(5) / 127.5 - 1.0
  from_keras = evaluator.load_evaluation_classifier(stand_in)
  from_saved = evaluator.load_evaluation_classifier(str(tmp_path / "saved"), "tf_bilinear")
  assert isinstance(from_saved, evaluator.InceptionClassifier)
  assert from_keras.resize_method == "clean" and from_saved.resize_method == "tf_bilinear"
  from_saved.resize_method = "clean"
  first = from_keras.activations(images, ("features", "logits"))
  second = from_saved.activations(images, ("features", "logits"))
  assert first.features.shape == (5, 16) and first.logits.shape == (5, 1008)
  np.testing.assert_allclose(first.features, second.features, atol=1e-5)
  np.testing.assert_allclose(first.logits, second.logits, atol=1e-4)
  # Batching does not change the numbers.
  from_keras.batch_size = 2
  np.testing.assert_allclose(from_keras.activations(images, ("features",)).features,
                             first.features, atol=1e-5)
  with pytest.raises(evaluator.EvaluationError, match="1- or 3-channel"):
    from_keras.check_image_shape((8, 8, 2))


@pytest.mark.parametrize("resize_method", ["clean", "tf_bilinear"])
def test_evaluation_through_the_stand_in_matches_numpy(resize_method, stand_in, mnist_export,
                                                        tmp_path):
  cache_dir = str(tmp_path / "cache")
  generator = evaluator.load_saved_model_generator(mnist_export)
  record = evaluator.evaluate(generator, stand_in, ("fid", "is", "kid"), _NUM_SAMPLES, seed=3,
                              data_dir=tfds_data_dir(), cache_dir=cache_dir,
                              resize_method=resize_method)
  assert record["resize_method"] == resize_method
  assert record["resize"].endswith(inception._DESCRIPTIONS[resize_method])  # pylint: disable=protected-access
  assert record["classifier_sha256"] == inception.network_sha256(stand_in)
  assert not record["real_stats_cached"]
  [cached] = os.listdir(os.path.join(cache_dir, "real_stats"))
  assert resize_method in cached

  # The same images, resized and measured independently.
  real = tfds.as_numpy(tfds.load("mnist", split="test", data_dir=tfds_data_dir(),
                                 shuffle_files=False, download=False, batch_size=-1))
  real_images = real["image"][:_NUM_SAMPLES]
  latents = np.random.default_rng(3).standard_normal((_NUM_SAMPLES, _LATENT_DIM),
                                                     dtype=np.float32)
  generated_images = generator.generate_fn(tf.constant(latents)).numpy()
  assert generated_images.dtype == np.uint8
  _assert_metrics_match_numpy(record, stand_in, real_images, generated_images, resize_method)
  assert record["fid"] > 0.01  # Digits against an untrained generator's noise differ.

  # The cache answers the second time, with the same numbers.
  again = evaluator.evaluate(generator, stand_in, ("fid", "is", "kid"), _NUM_SAMPLES, seed=3,
                             data_dir=tfds_data_dir(), cache_dir=cache_dir,
                             resize_method=resize_method)
  assert again["real_stats_cached"]
  assert (again["fid"], again["kid"], again["is"]) == (record["fid"], record["kid"],
                                                       record["is"])


def test_colour_folder_through_the_stand_in_matches_numpy(stand_in, tmp_path):
  """32x32 RGB: CIFAR-10 JPEGs in a folder as the real data, a colour generator's export."""
  files = []
  for class_name in ("airplane", "automobile"):
    sources = sorted(glob.glob(os.path.join(_CIFAR_JPEGS, class_name, "*.jpg")))[:12]
    os.makedirs(tmp_path / "colour" / "test" / class_name)
    for source in sources:
      target = tmp_path / "colour" / "test" / class_name / os.path.basename(source)
      target.write_bytes(open(source, "rb").read())
      files.append(str(target))
  if len(files) < 24:
    pytest.fail(f"CIFAR-10 JPEGs not found under {_CIFAR_JPEGS}")
  dataset = f"folder:{tmp_path / 'colour'}"
  generator_model = models.build_generator("dcgan", _LATENT_DIM, (32, 32, 3), filters=8)
  export_dir = export.export_generator(
      generator_model, _LATENT_DIM, str(tmp_path / "export"), "colour", 1,
      {"dataset": dataset, "latent_dim": _LATENT_DIM, "image_shape": [32, 32, 3], "step": 1},
      warmup=False)
  generator = evaluator.load_saved_model_generator(export_dir)
  record = evaluator.evaluate(generator, stand_in, ("fid", "is", "kid"), 24, seed=1,
                              cache_dir=str(tmp_path / "cache"))
  assert record["resize_method"] == "clean" and record["num_real"] == 24
  assert record["image_shape"] == [32, 32, 3]

  # The folder's order is sorted paths; decode them here and measure independently.
  real_images = np.stack([tf.io.decode_image(open(path, "rb").read(), channels=3).numpy()
                          for path in sorted(files)])
  latents = np.random.default_rng(1).standard_normal((24, _LATENT_DIM), dtype=np.float32)
  generated_images = generator.generate_fn(tf.constant(latents)).numpy()
  assert generated_images.shape == (24, 32, 32, 3)
  _assert_metrics_match_numpy(record, stand_in, real_images, generated_images, "clean")


def test_default_classifier_comes_from_the_dataset_variable(monkeypatch):
  from tfgan_app.evaluation import classifiers  # pylint: disable=import-outside-toplevel
  assert classifiers.classifier_variable("mnist") == "TFGAN_APP_MNIST_CLASSIFIER"
  assert (classifiers.classifier_variable("folder:../shared/images/cifar10_jpeg/")
          == "TFGAN_APP_CIFAR10_JPEG_CLASSIFIER")
  monkeypatch.delenv("TFGAN_APP_CIFAR10_CLASSIFIER", raising=False)
  assert classifiers.default_classifier("cifar10", 3) == "inception"
  monkeypatch.setenv("TFGAN_APP_CIFAR10_CLASSIFIER", "/somewhere/cifar10")
  assert classifiers.default_classifier("cifar10", 3) == "/somewhere/cifar10"
