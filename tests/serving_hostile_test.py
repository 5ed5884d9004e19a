"""serving.server under hostile input: bounded work, memory, time, and a JSON answer to each.

One server subprocess per module (its resident memory is measured from /proc); every wait is
bounded and no timing bound is tighter than a generous multiple of what it needs.
"""

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import server as server_lib
from serving import soak
from serving import tls
from serving import versions
from tfgan_app.exporting import saved_model as export
from tfgan_app.models import registry as models

MAX_ROWS = 8  # --max_samples_per_request of the module's server (the graph allows 16).
GRACE_SECONDS = 2
BODY_TIMEOUT_SECONDS = 2


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  keras.utils.set_random_seed(3)
  generator = models.build_generator("dcgan", 8, (28, 28, 1), filters=8)
  base = tmp_path_factory.mktemp("models")
  return export.export_generator(generator, 8, str(base), "dcgan", 1, {},
                                 max_samples_per_request=16)


class _Server:
  """`python -m serving.server` in a subprocess, with its ports."""

  def __init__(self, model_base_path: str, *flags):
    self.process, self.port, self.rest_port = soak.start_server(
        model_base_path, "--max_workers=2", f"--grace_seconds={GRACE_SECONDS}",
        "--rest_header_timeout_seconds=5",
        f"--rest_body_timeout_seconds={BODY_TIMEOUT_SECONDS}", "--max_rest_connections=32",
        *flags, max_rows=MAX_ROWS)
    self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
    self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

  def close(self):
    self.channel.close()
    if self.process.poll() is None:
      self.process.kill()
    self.process.wait(timeout=60)


@pytest.fixture(scope="module")
def served(exported):
  server = _Server(os.path.dirname(exported))
  yield server
  server.close()


def _request(signature, **tensors):
  request = predict_pb2.PredictRequest()
  request.model_spec.name = "dcgan"
  request.model_spec.signature_name = signature
  for name, proto in tensors.items():
    request.inputs[name].CopyFrom(proto if isinstance(proto, tensor_pb2.TensorProto)
                                  else tf.make_tensor_proto(proto))
  return request


def _good_request():
  return _request(export.SAMPLE_SIGNATURE, num_samples=np.int32(2), seed=np.int64(1))


def _grpc_error(stub, request) -> grpc.RpcError:
  with pytest.raises(grpc.RpcError) as raised:
    stub.Predict(request, timeout=60)
  return raised.value


def _raw_http(port: int, data: bytes, timeout: float = 60) -> tuple:
  """Sends raw bytes; returns (status, JSON body) of the response."""
  with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
    sock.sendall(data)
    received = b""
    while b"\r\n\r\n" not in received:
      chunk = sock.recv(65536)
      assert chunk, f"connection closed without a response: {received!r}"
      received += chunk
    head, body = received.split(b"\r\n\r\n", 1)
    length = int([line.split(b":")[1] for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:")][0])
    while len(body) < length:
      chunk = sock.recv(65536)
      assert chunk
      body += chunk
  return int(head.split()[1]), json.loads(body)


def _post(path: str, body: bytes, headers: str = None) -> bytes:
  if headers is None:
    headers = f"Content-Length: {len(body)}\r\n"
  return (f"POST {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n").encode() + body


PREDICT = "/v1/models/dcgan:predict"


def test_huge_declared_shapes_are_refused_before_any_tensor_is_built(served):
  rss_before = soak.rss_bytes(served.process.pid)
  # The 59-byte request: one float declared as [1000000, 100] (then [1000000, 8]).
  for shape in ([1000000, 100], [1000000, 8]):
    proto = tensor_pb2.TensorProto(dtype=tf.float32.as_datatype_enum, float_val=[0.5])
    for size in shape:
      proto.tensor_shape.dim.add(size=size)
    request = _request(export.SERVING_SIGNATURE, latents=proto)
    assert request.ByteSize() < 80
    error = _grpc_error(served.stub, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
  # Bytes that do not match the declared shape; a count that is neither 1 nor the elements.
  proto = tf.make_tensor_proto(np.zeros([2, 8], np.float32))
  proto.tensor_shape.dim[0].size = 4
  error = _grpc_error(served.stub, _request(export.SERVING_SIGNATURE, latents=proto))
  assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "bytes" in error.details()
  proto = tensor_pb2.TensorProto(dtype=tf.int64.as_datatype_enum, int64_val=[1, 2, 3])
  proto.tensor_shape.dim.add(size=2)
  error = _grpc_error(served.stub, _request(export.SAMPLE_SEEDS_SIGNATURE, seeds=proto))
  assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "3 values" in error.details()
  # Many real rows (2 MB), over the row limit.
  error = _grpc_error(served.stub, _request(export.SERVING_SIGNATURE,
                                            latents=np.zeros([65536, 8], np.float32)))
  assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "at most 8" in error.details()
  # REST: the equivalent of 200,000 rows (refused before json.loads), and 100,000-deep JSON.
  rows = json.dumps({"instances": [[0.0] * 8] * 20000}).encode()
  status, reply = _raw_http(served.rest_port, _post(PREDICT, rows))
  assert status == 400 and "at most 8 rows" in reply["error"]
  status, reply = _raw_http(served.rest_port, _post(PREDICT, b"[" * 100000 + b"]" * 100000))
  assert status == 400 and reply["error"]
  growth = soak.rss_bytes(served.process.pid) - rss_before
  assert growth < 100 << 20, f"server memory grew by {growth >> 20} MB"
  assert served.stub.Predict(_good_request(), timeout=60).outputs[export.IMAGES]


@pytest.mark.parametrize("signature,inputs,message", [
    (export.SERVING_SIGNATURE, {"latents": np.zeros([9, 8], np.float32)}, "9 rows"),
    (export.SAMPLE_SEEDS_SIGNATURE, {"seeds": np.arange(9, dtype=np.int64)}, "9 rows"),
    (export.SAMPLE_SIGNATURE, {"num_samples": np.int32(9), "seed": np.int64(0)},
     "num_samples is 9; at most 8"),
    (export.INTERPOLATE_SIGNATURE, {"seed_a": np.int64(0), "seed_b": np.int64(1),
                                    "num_steps": np.int32(9)}, "num_steps is 9; at most 8"),
])
def test_requests_over_max_samples_per_request_are_invalid(served, signature, inputs, message):
  error = _grpc_error(served.stub, _request(signature, **inputs))
  assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
  assert message in error.details()
  body = json.dumps({"signature_name": signature,
                     "inputs": {k: v.tolist() for k, v in inputs.items()}}).encode()
  status, reply = _raw_http(served.rest_port, _post(PREDICT, body))
  assert status == 400 and message in reply["error"], reply


def _json_post(payload) -> bytes:
  return _post(PREDICT, json.dumps(payload).encode())


@pytest.mark.parametrize("data,status,message", [
    (_post(PREDICT, b"{}", "Content-Length: -1\r\n"), 400, "Content-Length"),
    (_post(PREDICT, b"{}", "Content-Length: abc\r\n"), 400, "Content-Length"),
    (_post(PREDICT, b"{}", "Content-Length: 2\r\nContent-Length: 3\r\n"), 400,
     "Content-Length"),
    (_post(PREDICT, b"{}", ""), 411, "Content-Length required"),
    (_post(PREDICT, b"", "Transfer-Encoding: chunked\r\n"), 411, "Transfer-Encoding"),
    (_post(PREDICT, b"", "Content-Length: 999999999999\r\n"), 413, "exceeds the limit"),
    (b"NONSENSE\r\n\r\n", 400, ""),
    (_post(PREDICT, b"{not json"), 400, "JSON Parse error"),
    (_json_post({"signature_name": {"a": 1}, "inputs": [[0.0] * 8]}), 400, "signature_name"),
    (_json_post({"signature_name": ["sample"], "inputs": [[0.0] * 8]}), 400,
     "signature_name"),
    (_json_post({"signature_name": "sample", "inputs": {"num_samples": 2**32 + 3, "seed": 1}}),
     400, "4294967299 is out of range for int32"),
    (_json_post({"signature_name": "sample", "inputs": {"num_samples": 2**40, "seed": 1}}),
     400, "1099511627776"),
    (_json_post({"signature_name": "sample", "inputs": {"num_samples": 2, "seed": 2**63 + 5}}),
     400, "9223372036854775813 is out of range for int64"),
    (_json_post({"signature_name": "sample_seeds", "instances": [1, 2**70]}), 400,
     "out of range for int64"),
    (_json_post({"signature_name": "sample", "inputs": {"num_samples": 2, "seed": 1.5}}), 400,
     "int64"),
])
def test_bad_rest_requests_get_4xx_with_a_json_error(served, data, status, message):
  got, reply = _raw_http(served.rest_port, data)
  assert got == status and message in reply["error"], reply


def test_keep_alive_serves_several_requests_on_one_connection(served):
  body = json.dumps({"signature_name": "sample", "inputs": {"num_samples": 1, "seed": 2}})
  with socket.create_connection(("127.0.0.1", served.rest_port), timeout=60) as sock:
    stream = sock.makefile("rb")
    for _ in range(2):
      sock.sendall(_post(PREDICT, body.encode()))
      assert stream.readline().split()[1] == b"200"
      length = 0
      while True:
        line = stream.readline().strip()
        if not line:
          break
        if line.lower().startswith(b"content-length:"):
          length = int(line.split(b":")[1])
        assert line.lower() != b"connection: close"
      assert "outputs" in json.loads(stream.read(length))
    stream.close()


def _stalled_clients(port: int, count: int) -> list:
  """Connections that promise a 1000-byte body and send half of it."""
  sockets = []
  for _ in range(count):
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.sendall(_post(PREDICT, b"x" * 500, "Content-Length: 1000\r\n"))
    sockets.append(sock)
  return sockets


def test_stalled_rest_clients_do_not_stall_others(served):
  stalled = _stalled_clients(served.rest_port, 8)
  try:
    body = json.dumps({"signature_name": "sample", "inputs": {"num_samples": 1, "seed": 3}})
    status, reply = _raw_http(served.rest_port, _post(PREDICT, body.encode()))
    assert status == 200 and "outputs" in reply
    assert served.stub.Predict(_good_request(), timeout=60).outputs[export.IMAGES]
    # Each stalled client gets 408 once the body timeout passes, then its connection closes.
    stalled[0].settimeout(BODY_TIMEOUT_SECONDS + 60)
    answer = b""
    while True:  # The answer comes in pieces; the server then stops sending (EOF).
      chunk = stalled[0].recv(65536)
      if not chunk:
        break
      answer += chunk
    assert b" 408 " in answer.split(b"\r\n")[0] and b'"error"' in answer, answer
  finally:
    for sock in stalled:
      sock.close()


def test_deadline_exceeded_abandons_the_work(exported):
  server = server_lib.ModelServer("dcgan", os.path.dirname(exported), port=0,
                                  rest_api_port=0, max_workers=1, request_timeout_ms=1,
                                  chunk_rows=1).start()
  try:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      request = _request(export.SERVING_SIGNATURE, latents=np.zeros([16, 8], np.float32))
      error = _grpc_error(stub, request)
      assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, error.details()
      assert "abandoned" in error.details()
    body = json.dumps({"instances": [[0.0] * 8] * 16}).encode()
    status, reply = _raw_http(server.rest_api_port, _post(PREDICT, body))
    assert status == 504 and "Deadline exceeded" in reply["error"], reply
  finally:
    server.stop(1)


def test_rest_connections_beyond_the_cap_get_503(exported):
  server = server_lib.ModelServer("dcgan", os.path.dirname(exported), port=0,
                                  rest_api_port=0, max_workers=1,
                                  max_rest_connections=2).start()
  held = [socket.create_connection(("127.0.0.1", server.rest_api_port), timeout=60)
          for _ in range(2)]
  try:
    time.sleep(0.5)  # Both accepted (a bounded wait; the answer below does not depend on it).
    status, reply = _raw_http(server.rest_api_port, b"GET /v1/models/dcgan HTTP/1.1\r\n\r\n")
    assert status == 503 and "too many connections" in reply["error"]
  finally:
    for sock in held:
      sock.close()
    server.stop(1)


def test_rest_body_bytes_in_flight_are_bounded(exported):
  # Budget 2 x max_workers x max_message_bytes = 8 KiB: two stalled 4 KiB bodies fill it.
  server = server_lib.ModelServer("dcgan", os.path.dirname(exported), port=0,
                                  rest_api_port=0, max_workers=1, max_message_bytes=4096,
                                  rest_body_timeout_seconds=60).start()
  held = []
  try:
    for _ in range(2):
      sock = socket.create_connection(("127.0.0.1", server.rest_api_port), timeout=60)
      sock.sendall(_post(PREDICT, b"x" * 100, "Content-Length: 4096\r\n"))
      held.append(sock)
    deadline = time.monotonic() + 60
    while True:  # Until both stalled bodies hold their share (bounded wait).
      status, reply = _raw_http(server.rest_api_port, _post(PREDICT, b"{}"))
      if status == 503 or time.monotonic() > deadline:
        break
      time.sleep(0.1)
    assert status == 503 and "in flight" in reply["error"], reply
  finally:
    for sock in held:
      sock.close()
    server.stop(1)


def test_versions_named_as_tf_serving_names_them(exported, tmp_path):
  base = tmp_path / "dcgan"
  base.mkdir()
  shutil.copytree(exported, base / "0060")
  for name in ("²", "٣", "-1", " 7", ".tmp-70-x", "99999999999999999999"):
    shutil.copytree(exported, base / name)
  assert versions.version_dirs(str(base)) == {60: "0060"}
  manager = versions.ModelManager("dcgan", str(base))
  manager.poll_once()
  assert manager.get("dcgan", 60).path == str(base / "0060")


def test_failed_version_is_retried_and_replaced_by_a_good_copy(exported, tmp_path):
  base = tmp_path / "dcgan"
  shutil.copytree(exported, base / "1")
  (base / "2").mkdir()
  (base / "2" / "saved_model.pb").write_bytes(b"not a SavedModel")
  manager = versions.ModelManager("dcgan", str(base), max_load_retries=2, retry_seconds=0.01)
  manager.poll_once()
  assert manager.get("dcgan").version == 1
  assert [row[:2] for row in manager.status("dcgan")] == [(1, "AVAILABLE"), (2, "END")]
  for _ in range(6):  # Retried with backoff, at most max_load_retries times.
    time.sleep(0.05)
    manager.poll_once()
  assert manager._failed[2].attempts == 3  # pylint: disable=protected-access
  # A good copy put in its place is loaded at once (the directory changed).
  shutil.rmtree(base / "2")
  shutil.copytree(exported, base / "2")
  manager.poll_once()
  assert manager.get("dcgan").version == 2
  assert [row[:2] for row in manager.status("dcgan")] == [(2, "AVAILABLE")]


def test_tls_for_grpc_and_rest(exported, tmp_path):
  if shutil.which("openssl") is None:
    pytest.skip("no openssl command to make a self-signed certificate")
  cert, key = tmp_path / "server.crt", tmp_path / "server.key"
  made = subprocess.run(
      ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
       "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
       "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
      capture_output=True, timeout=60)
  if made.returncode:
    pytest.skip(f"openssl could not make a certificate: {made.stderr[-200:]!r}")
  config_path = tmp_path / "ssl.cfg"
  config_path.write_text(f"# test\nserver_cert: {cert}\nserver_key: {key}\n")
  config = tls.read_ssl_config(str(config_path))
  server = server_lib.ModelServer("dcgan", os.path.dirname(exported), port=0, rest_api_port=0,
                                  max_workers=1, ssl_config=config).start()
  try:
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{server.port}", credentials,
                             options=[("grpc.ssl_target_name_override", "localhost")]) as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      assert stub.Predict(_good_request(), timeout=60).outputs[export.IMAGES]
    context = ssl.create_default_context(cafile=str(cert))
    with urllib.request.urlopen(f"https://localhost:{server.rest_api_port}/v1/models/dcgan",
                                timeout=60, context=context) as response:
      assert json.loads(response.read())["model_version_status"][0]["state"] == "AVAILABLE"
    with pytest.raises(grpc.RpcError):  # Plain text is refused.
      with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            _good_request(), timeout=10)
  finally:
    server.stop(1)
  with pytest.raises(tls.SslConfigError):
    config_path.write_text(f"server_cert: {cert}\n")
    tls.read_ssl_config(str(config_path))


def test_sigterm_exits_within_grace_with_stalled_clients(served):
  """Last: it stops the module's server."""
  stalled = _stalled_clients(served.rest_port, 4)
  idle = socket.create_connection(("127.0.0.1", served.rest_port), timeout=60)
  slow = threading.Thread(target=lambda: _grpc_error_or_ok(served))
  slow.start()
  try:
    start = time.monotonic()
    served.process.send_signal(signal.SIGTERM)
    served.process.wait(timeout=GRACE_SECONDS + 60)
    elapsed = time.monotonic() - start
    assert served.process.returncode == 0
    # Generous: the grace period plus start-up slack of a loaded CI machine.
    assert elapsed < GRACE_SECONDS + 30, elapsed
  finally:
    slow.join(timeout=60)
    idle.close()
    for sock in stalled:
      sock.close()


def _grpc_error_or_ok(served):
  try:
    served.stub.Predict(_good_request(), timeout=30)
  except grpc.RpcError:
    pass


def test_benchmark_soak_reports_no_unexpected_outcome(exported):
  report = soak.soak(os.path.dirname(exported), seconds=3, num_clients=2)
  assert report["requests"] > 0
  assert report["failures"] == 0, report["unexpected"]
  assert report["p99_ms"] >= report["p50_ms"] > 0
  if report["server_rss_growth_mb"] is not None:
    assert report["server_rss_growth_mb"] < 100
  assert report["server_exit_status"] == 0
  assert "failures" in soak.describe(report)
