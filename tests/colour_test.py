"""Colour end to end: a 32x32 RGB DCGAN trains, draws colour grids, exports and is served.

Most tests' data is TFDS's CIFAR-10 under `tfds.testing.mock_data` (random uint8 images of the
real feature spec, [32, 32, 3]; no files, no network), with split metadata written to a
temporary data_dir so that the split has a size, as a prepared dataset has. The last test trains
configs/cifar10.cfg on a folder of the offline CIFAR-10 JPEGs.
"""

import base64
import glob
import json
import os
import shutil
import subprocess
import sys
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import client
from serving import server as server_lib
from tfgan_app.exporting import saved_model as export
from tfgan_app.runs import restore
from tfgan_app.training import loop as train
from conftest import HANG_TIMEOUT_S, REPO_ROOT, assert_images_match, tiny_config

SIZE = 32
LATENT_DIM = 8
MOCK_EXAMPLES = 64
# Added to the generator's output-layer bias per channel (R, G, B) before export: a generator
# whose channels differ by construction, so that a swapped or dropped channel shows.
TINT = np.array([-1.0, 0.0, 1.0], np.float32)


def _mock_cifar10_dir(root) -> str:
  """A data_dir holding CIFAR-10's dataset_info (from TFDS's code) with a train split size."""
  builder = tfds.builder("cifar10", data_dir=str(root))
  split = tfds.core.SplitInfo(name="train", shard_lengths=[MOCK_EXAMPLES], num_bytes=0,
                              filename_template=None)
  builder.info.set_splits(tfds.core.SplitDict([split]))
  os.makedirs(builder.data_dir)
  builder.info.write_to_directory(builder.data_dir)
  return str(root)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """(config, TrainResult) of 2 steps of a tiny colour DCGAN on mock CIFAR-10."""
  data_dir = _mock_cifar10_dir(tmp_path_factory.mktemp("tfds"))
  config = tiny_config(tmp_path_factory.mktemp("run") / "cifar10", data_dir, dataset="cifar10",
                       split="train", train_steps=2, checkpoint_every=2, sample_every=2,
                       log_every=2, latent_dim=LATENT_DIM, model_name="cifar10",
                       channels=3)
  with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES, data_dir=data_dir,
                              policy=tfds.testing.MockPolicy.USE_FILES):
    result = train.train_and_export(config)
  assert result.step == 2
  return config, result


def _assert_colour(images):
  images = np.asarray(images)
  assert images.dtype == np.uint8 and images.shape[-1] == 3
  # A colour generator (random weights) gives each channel its own values.
  assert np.mean(images[..., 0] != images[..., 1]) > 0.5
  assert np.mean(images[..., 1] != images[..., 2]) > 0.5


def test_run_records_colour_shapes_and_draws_colour_grids(run):
  config, result = run
  spec = json.loads(open(os.path.join(config.workdir, "run_spec.json")).read())
  assert spec["image_shape"] == [SIZE, SIZE, 3]
  metadata = export.read_metadata(result.export_path)
  assert metadata["image_shape"] == [SIZE, SIZE, 3] and metadata["dataset"] == "cifar10"
  # num_sample_images=4: a 2x2 grid with 1px gaps.
  grid = tf.io.decode_png(open(os.path.join(config.workdir, "samples", "step_0000002.png"),
                               "rb").read()).numpy()
  assert grid.shape == (2 * SIZE + 1, 2 * SIZE + 1, 3)
  _assert_colour(grid[:SIZE, :SIZE])
  summaries = []
  for path in glob.glob(os.path.join(config.workdir, "train", "events.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      summaries += [value for value in event.summary.value if value.tag == "samples"]
  assert summaries
  # TensorBoard's image summary: [width, height, PNG bytes].
  np.testing.assert_array_equal(
      tf.io.decode_png(tf.make_ndarray(summaries[-1].tensor)[2]).numpy(), grid)


def test_trained_export_returns_colour_images_and_pngs(run):
  _, result = run
  loaded = tf.saved_model.load(result.export_path)
  outputs = loaded.signatures[export.SAMPLE_SIGNATURE](
      num_samples=tf.constant(3, tf.int32), seed=tf.constant(5, tf.int64))
  images = outputs[export.IMAGES].numpy()
  assert images.shape == (3, SIZE, SIZE, 3)
  _assert_colour(images)
  for png, image in zip(outputs[export.PNG_BYTES].numpy(), images):
    decoded = tf.io.decode_png(png).numpy()
    assert decoded.shape == (SIZE, SIZE, 3)
    np.testing.assert_array_equal(decoded, image)
  latents = tf.random.stateless_normal([2, LATENT_DIM], seed=[1, 2])
  served = loaded.signatures[export.SERVING_SIGNATURE](latents=latents)[export.IMAGES]
  assert served.shape == (2, SIZE, SIZE, 3) and served.dtype == tf.uint8


@pytest.fixture(scope="module")
def tinted(run, tmp_path_factory):
  """(generator, model base path): the run's generator with TINT added per channel, exported."""
  config, _ = run
  generator = restore.restore_run(config.workdir).model.generator
  generator.to_image.bias.assign(generator.to_image.bias + TINT)
  base = tmp_path_factory.mktemp("models")
  export.export_generator(generator, LATENT_DIM, str(base), "cifar10", 2, {},
                          max_samples_per_request=16)
  return generator, str(base / "cifar10")


def _expected(generator, seeds):
  latents = tf.stack([tf.random.stateless_normal([LATENT_DIM], seed=[s, 0]) for s in seeds])
  return export.to_uint8(generator(latents, training=False)).numpy()


def _assert_tinted(images):
  means = np.asarray(images, np.float64).mean(axis=(0, 1, 2))  # R, G, B
  assert means[0] + 40 < means[1] < means[2] - 40, means


@pytest.fixture(scope="module")
def server(tinted):
  _, model_base = tinted
  running = server_lib.ModelServer("cifar10", model_base, port=0, rest_api_port=0,
                                   max_workers=2).start()
  yield running
  running.stop(1)


def test_grpc_server_returns_colour_images_and_pngs(server, tinted):
  generator, _ = tinted
  request = predict_pb2.PredictRequest()
  request.model_spec.name = "cifar10"
  request.model_spec.signature_name = export.SAMPLE_SIGNATURE
  request.inputs[export.NUM_SAMPLES].CopyFrom(tf.make_tensor_proto(np.int32(3)))
  request.inputs[export.SEED].CopyFrom(tf.make_tensor_proto(np.int64(5)))
  with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
    response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request,
                                                                                 timeout=60)
  images = tf.make_ndarray(response.outputs[export.IMAGES])
  assert images.shape == (3, SIZE, SIZE, 3) and images.dtype == np.uint8
  assert_images_match(images, _expected(generator, [5, 6, 7]))
  _assert_tinted(images)
  pngs = tf.make_ndarray(response.outputs[export.PNG_BYTES])
  np.testing.assert_array_equal(tf.io.decode_png(pngs[2]).numpy(), images[2])


def test_rest_server_returns_colour_images_and_pngs(server, tinted):
  generator, _ = tinted
  body = {"signature_name": export.SAMPLE_SEEDS_SIGNATURE, "inputs": {"seeds": [6, 5]}}
  request = urllib.request.Request(
      f"http://127.0.0.1:{server.rest_api_port}/v1/models/cifar10:predict", method="POST",
      data=json.dumps(body).encode())
  with urllib.request.urlopen(request, timeout=60) as response:
    outputs = json.loads(response.read())["outputs"]
  images = np.array(outputs["images"], np.uint8)
  assert images.shape == (2, SIZE, SIZE, 3)
  assert_images_match(images, _expected(generator, [6, 5]))
  _assert_tinted(images)
  png = tf.io.decode_png(base64.b64decode(outputs["png_bytes"][0]["b64"])).numpy()
  np.testing.assert_array_equal(png, images[0])


def test_client_writes_an_rgb_grid(server, tinted, tmp_path):
  generator, _ = tinted
  out = tmp_path / "grid.png"
  assert client.main(["client", f"--server=127.0.0.1:{server.port}", "--model_name=cifar10",
                      "--num_samples=5", "--seed=7", f"--out={out}",
                      f"--out_dir={tmp_path / 'each'}"]) == 0
  grid = tf.io.decode_png(out.read_bytes()).numpy()
  # 5 images: 3 columns, 2 rows, 1px gaps; RGB.
  assert grid.shape == (2 * (SIZE + 1) - 1, 3 * (SIZE + 1) - 1, 3)
  expected = _expected(generator, range(7, 12))
  assert_images_match(grid[SIZE + 1:2 * SIZE + 1, SIZE + 1:2 * SIZE + 1], expected[4])
  _assert_tinted(grid[:SIZE, :SIZE][None])
  single = tf.io.decode_png((tmp_path / "each" / "sample_0000.png").read_bytes()).numpy()
  assert single.shape == (SIZE, SIZE, 3)
  assert_images_match(single, expected[0])


def test_cifar10_config_trains_on_a_folder_of_cifar_jpegs(tmp_path):
  # configs/cifar10.cfg as its header documents it offline, at test size: a folder of CIFAR-10
  # JPEGs in three classes, one of them corrupt.
  source = os.path.join(REPO_ROOT, "..", "shared", "images", "cifar10_jpeg", "train")
  if not os.path.isdir(source):
    pytest.fail(f"the offline CIFAR-10 JPEGs are not under {source}")
  folder = tmp_path / "images"
  for name in ("airplane", "cat", "ship"):
    os.makedirs(folder / name)
    for file in sorted(os.listdir(os.path.join(source, name)))[:8]:
      shutil.copy(os.path.join(source, name, file), folder / name / file)
  (folder / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a JPEG")
  workdir = tmp_path / "run"
  result = subprocess.run(
      [sys.executable, "-m", "tfgan_app.train", "--flagfile=configs/cifar10.cfg",
       f"--dataset=folder:{folder}", f"--workdir={workdir}", "--train_steps=2",
       "--batch_size=8", "--latent_dim=8", "--g_filters=8", "--d_filters=8",
       "--mixed_precision=float32", "--num_sample_images=4"],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=HANG_TIMEOUT_S,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert str(folder / "cat" / "broken.jpg") in result.stderr
  version = workdir / "export" / "cifar10" / "2"
  metadata = export.read_metadata(str(version))
  assert metadata["image_shape"] == [SIZE, SIZE, 3]
  assert metadata["class_names"] == ["airplane", "cat", "ship"]
  outputs = tf.saved_model.load(str(version)).signatures[export.SAMPLE_SIGNATURE](
      num_samples=tf.constant(2, tf.int32), seed=tf.constant(0, tf.int64))
  assert outputs[export.IMAGES].shape == (2, SIZE, SIZE, 3)
  assert outputs[export.IMAGES].dtype == tf.uint8
  assert tf.io.decode_png(outputs[export.PNG_BYTES][0]).shape == (SIZE, SIZE, 3)
