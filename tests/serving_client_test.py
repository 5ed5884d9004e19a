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
from conftest import HANG_TIMEOUT_S, assert_images_match, conditional_standin

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


def test_client_label_by_index_and_by_name_writes_that_class(tmp_path, capsys):
  generator = conditional_standin(4, (8, 8, 1), 3)
  names = ["T-shirt/top", "Sneaker", "Bag"]
  export.export_generator(generator, 4, str(tmp_path), "cgan", 1, {"class_names": names})
  with server_lib.ModelServer("cgan", str(tmp_path / "cgan"), port=0, rest_api_port=-1,
                              max_workers=2) as server:
    address = f"--server=127.0.0.1:{server.port}"
    latents = export.latents_from_seeds(tf.range(7, 11, dtype=tf.int64), 4)
    sneakers = export.to_uint8(generator(latents, labels=tf.fill([4], 1), training=False))
    for label in ("1", "sneaker"):
      out = tmp_path / f"{label}.png"
      assert client.main(["client", address, "--model_name=cgan", "--num_samples=4",
                          "--seed=7", f"--out={out}", f"--label={label}",
                          f"--out_dir={tmp_path / label}"]) == 0
      assert "class 1" in capsys.readouterr().out
      assert tf.io.decode_png(out.read_bytes()).numpy().shape == (2 * 9 - 1, 2 * 9 - 1, 1)
      np.testing.assert_array_equal(tf.io.decode_png(
          (tmp_path / label / "sample_0003.png").read_bytes()).numpy(), sneakers[3].numpy())
    assert client.main(["client", address, "--model_name=cgan", "--label=boot",
                        f"--out={tmp_path / 'x.png'}"]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert error == ["python -m serving.client: error: unknown class --label=boot; accepted: "
                     "0 to 2 or T-shirt/top, Sneaker, Bag"]
    assert client.main(["client", address, "--model_name=cgan", "--label=3",
                        f"--out={tmp_path / 'x.png'}"]) == 1
    assert "INVALID_ARGUMENT" in capsys.readouterr().err
    # Without --label: each image's class from its seed (sample), or cycled (sample_seeds).
    result = client_lib.sample(f"127.0.0.1:{server.port}", "cgan", 4, 7,
                               export.SAMPLE_SEEDS_SIGNATURE)
    cycled = export.to_uint8(generator(latents, labels=tf.constant([0, 1, 2, 0]),
                                       training=False))
    np.testing.assert_array_equal(result["images"], cycled.numpy())


def test_client_label_for_an_unconditional_model_is_one_line(running, tmp_path, capsys):
  assert client.main(["client", f"--server=127.0.0.1:{running.port}", "--model_name=dcgan",
                      "--label=3", f"--out={tmp_path / 'x.png'}"]) == 1
  assert capsys.readouterr().err.strip() == (
      "python -m serving.client: error: model 'dcgan' is not class-conditional (its "
      "signatures take no labels); drop --label")
