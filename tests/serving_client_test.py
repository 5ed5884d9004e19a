"""serving.client against serving.server: the real entry points, PNG outputs, one-line errors."""

import os
import signal
import socket
import subprocess
import sys

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc

from serving import client
from serving import client_lib
from serving import server as server_lib
from tfgan_app.exporting import saved_model as export
from tfgan_app.models import registry as models
from conftest import HANG_TIMEOUT_S, assert_images_match

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def generator():
  keras.utils.set_random_seed(5)
  return models.build_generator("dcgan", 8, (28, 28, 1), filters=8)


@pytest.fixture(scope="module")
def model_base(tmp_path_factory, generator):
  base = tmp_path_factory.mktemp("models")
  export.export_generator(generator, 8, str(base), "dcgan", 3, {})
  return str(base / "dcgan")


@pytest.fixture(scope="module")
def running(model_base):
  server = server_lib.ModelServer("dcgan", model_base, port=0, rest_api_port=-1,
                                  max_workers=2).start()
  yield server
  server.stop(1)


def _expected(generator, seeds):
  latents = tf.stack([tf.random.stateless_normal([8], seed=[s, 0]) for s in seeds])
  return export.to_uint8(generator(latents, training=False)).numpy()


@pytest.mark.parametrize("signature", [export.SAMPLE_SIGNATURE, export.SAMPLE_SEEDS_SIGNATURE])
def test_client_writes_the_grid_and_single_pngs(running, generator, tmp_path, signature,
                                                capsys):
  out = tmp_path / "grid.png"
  code = client.main(["client", f"--server=127.0.0.1:{running.port}", "--model_name=dcgan",
                      "--num_samples=5", "--seed=7", f"--out={out}",
                      f"--out_dir={tmp_path / 'each'}", f"--signature={signature}"])
  assert code == 0
  assert "Wrote 5 images from dcgan version 3" in capsys.readouterr().out
  expected = _expected(generator, range(7, 12))
  grid = tf.io.decode_png(out.read_bytes()).numpy()
  assert grid.shape == (2 * 29 - 1, 3 * 29 - 1, 1)  # 5 images: 3 columns, 2 rows, 1px gaps.
  assert_images_match(grid[29:57, 29:57], expected[4])
  files = sorted(os.listdir(tmp_path / "each"))
  assert files == [f"sample_{i:04d}.png" for i in range(5)]
  for name, image in zip(files, expected):
    assert_images_match(tf.io.decode_png((tmp_path / "each" / name).read_bytes()).numpy(), image)


def test_client_interpolate_and_serving_default(running, generator, tmp_path):
  result = client_lib.sample(f"127.0.0.1:{running.port}", "dcgan", 4, 7,
                         export.INTERPOLATE_SIGNATURE)
  assert_images_match(result["images"][[0, -1]], _expected(generator, [7, 8]))
  result = client_lib.sample(f"127.0.0.1:{running.port}", "dcgan", 2, 7, export.SERVING_SIGNATURE)
  latents = np.random.default_rng(7).standard_normal((2, 8)).astype(np.float32)
  assert_images_match(result["images"],
                      export.to_uint8(generator(latents, training=False)).numpy())


def _free_port():
  with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1]


def test_unreachable_server_and_unknown_model_give_one_line_errors(running, tmp_path, capsys):
  out = tmp_path / "x.png"
  code = client.main(["client", f"--server=127.0.0.1:{_free_port()}", f"--out={out}",
                      "--timeout=5"])
  error = capsys.readouterr().err
  assert code == 1 and "cannot reach a model server" in error and error.count("\n") == 1
  code = client.main(["client", f"--server=127.0.0.1:{running.port}", "--model_name=nope",
                      f"--out={out}"])
  error = capsys.readouterr().err
  assert code == 1 and "model 'nope' not found" in error and error.count("\n") == 1
  code = client.main(["client", f"--server=127.0.0.1:{running.port}", "--num_samples=300",
                      f"--out={out}"])
  error = capsys.readouterr().err
  assert code == 1 and "INVALID_ARGUMENT" in error
  assert "num_samples is 300; at most 256 per request" in error
  assert not out.exists()


def test_server_entry_point_serves_and_stops_cleanly_on_sigterm(model_base, tmp_path):
  port = _free_port()
  process = subprocess.Popen(
      [sys.executable, "-m", "serving.server", "--model_name=dcgan",
       f"--model_base_path={model_base}", f"--port={port}", "--rest_api_port=-1"],
      cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  try:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
      grpc.channel_ready_future(channel).result(timeout=HANG_TIMEOUT_S)
      request = get_model_status_pb2.GetModelStatusRequest()
      request.model_spec.name = "dcgan"
      status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
          request, timeout=HANG_TIMEOUT_S)
      assert status.model_version_status[0].version == 3
    assert client.main(["client", f"--server=127.0.0.1:{port}", "--num_samples=2",
                        f"--out={tmp_path / 'grid.png'}"]) == 0
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=HANG_TIMEOUT_S)
  finally:
    if process.poll() is None:
      process.kill()
      process.communicate()
  assert process.returncode == 0, output[-2000:]
  assert "Stopped" in output
