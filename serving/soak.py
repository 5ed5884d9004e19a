"""A soak of `serving.server`: mixed good and hostile traffic, outcomes, latency and memory.

Used by `python -m serving.benchmark --soak` (see its docstring). Loopback only: the server is
started here, on 127.0.0.1, and every loop is bounded by time and by a request count.
"""

import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from typing import Optional

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tfgan_app.exporting import contract as export

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_ROWS = 16  # The server's --max_samples_per_request during a soak.
_MAX_REQUESTS = 10**6  # Per client: a bound on the loop whatever the clock does.


def rss_bytes(pid: int) -> Optional[int]:
  """Resident memory of a process (VmRSS from /proc), or None where /proc has no such file."""
  try:
    with open(f"/proc/{pid}/status") as f:
      for line in f:
        if line.startswith("VmRSS:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return None


def start_server(model_base_path: str, *flags: str, max_rows: int = MAX_ROWS,
                 timeout: float = 180):
  """Starts `python -m serving.server` on free loopback ports; (process, grpc, rest port).

  Raises:
    RuntimeError: it did not say it was serving within `timeout` seconds.
  """
  process = subprocess.Popen(
      [sys.executable, "-m", "serving.server", "--model_name=dcgan", "--host=127.0.0.1",
       f"--model_base_path={model_base_path}", "--port=0", "--rest_api_port=0",
       f"--max_samples_per_request={max_rows}", *flags],
      cwd=_REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  deadline = time.monotonic() + timeout
  line = ""
  while "Serving model" not in line:
    remaining = deadline - time.monotonic()
    if remaining <= 0 or process.poll() is not None:
      process.kill()
      process.wait()
      raise RuntimeError(f"serving.server did not start: {line!r}")
    ready, _, _ = select.select([process.stdout], [], [], remaining)
    if ready:
      line = process.stdout.readline()
  # "... gRPC on 127.0.0.1:PORT, REST on 127.0.0.1:PORT"
  grpc_port = int(line.split("gRPC on ")[1].split(",")[0].rsplit(":", 1)[1])
  rest_port = int(line.split("REST on ")[1].split()[0].rsplit(":", 1)[1])
  return process, grpc_port, rest_port


def _predict_request(signature: str, **tensors) -> predict_pb2.PredictRequest:
  request = predict_pb2.PredictRequest()
  request.model_spec.name = "dcgan"
  request.model_spec.signature_name = signature
  for name, value in tensors.items():
    request.inputs[name].CopyFrom(value if isinstance(value, tensor_pb2.TensorProto)
                                  else tf.make_tensor_proto(value))
  return request


def _huge_shape(latent_dim: int) -> tensor_pb2.TensorProto:
  proto = tensor_pb2.TensorProto(dtype=tf.float32.as_datatype_enum, float_val=[0.5])
  proto.tensor_shape.dim.add(size=1000000)
  proto.tensor_shape.dim.add(size=latent_dim)
  return proto


def _http(port: int, data: bytes, timeout: float = 30) -> int:
  """Sends raw bytes; the response's status, or 0 if the connection closed without one."""
  with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
    sock.sendall(data)
    received = b""
    while b"\r\n" not in received and len(received) < 65536:
      chunk = sock.recv(65536)
      if not chunk:
        return 0
      received += chunk
  return int(received.split()[1])


def _post(body: bytes, length: Optional[str] = None) -> bytes:
  length = str(len(body)) if length is None else length
  return (f"POST /v1/models/dcgan:predict HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n"
          f"Content-Length: {length}\r\n\r\n").encode() + body


def _half_body(port: int) -> int:
  """A client that promises 1000 bytes, sends 500 and leaves; 0 (no answer expected)."""
  with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
    sock.sendall(_post(b"x" * 500, "1000"))
    time.sleep(0.05)
  return 0


def _traffic(stub, rest_port: int, latent_dim: int) -> list:
  """(name, call returning an outcome, expected outcome); a status code name or HTTP status."""

  def grpc_call(request):
    def call():
      try:
        stub.Predict(request, timeout=30)
        return "OK"
      except grpc.RpcError as error:
        return error.code().name
    return call

  good = json.dumps({"signature_name": export.SAMPLE_SIGNATURE,
                     "inputs": {export.NUM_SAMPLES: 4, export.SEED: 1}}).encode()
  overflow = json.dumps({"signature_name": export.SAMPLE_SIGNATURE,
                         "inputs": {export.NUM_SAMPLES: 2**32 + 3, export.SEED: 1}}).encode()
  return [
      ("grpc_sample", grpc_call(_predict_request(
          export.SAMPLE_SIGNATURE, num_samples=np.int32(4), seed=np.int64(7))), "OK"),
      ("grpc_huge_shape", grpc_call(_predict_request(
          export.SERVING_SIGNATURE, latents=_huge_shape(latent_dim))), "INVALID_ARGUMENT"),
      ("grpc_too_many_rows", grpc_call(_predict_request(
          export.SAMPLE_SEEDS_SIGNATURE, seeds=np.arange(MAX_ROWS + 1, dtype=np.int64))),
       "INVALID_ARGUMENT"),
      ("grpc_unknown_signature", grpc_call(_predict_request(
          "nope", seeds=np.arange(2, dtype=np.int64))), "FAILED_PRECONDITION"),
      ("rest_sample", lambda: _http(rest_port, _post(good)), 200),
      ("rest_bad_length", lambda: _http(rest_port, _post(b"{}", "-1")), 400),
      ("rest_int_overflow", lambda: _http(rest_port, _post(overflow)), 400),
      ("rest_deep_json", lambda: _http(rest_port, _post(b"[" * 10000 + b"]" * 10000)), 400),
      ("rest_half_body", lambda: _half_body(rest_port), 0),
  ]


def soak(model_base_path: str, seconds: float, num_clients: int = 4) -> dict:
  """Starts a server, drives mixed traffic for `seconds`, stops it; returns the report."""
  version = max(int(v) for v in os.listdir(model_base_path) if v.isdigit())
  latent_dim = _latent_dim(os.path.join(model_base_path, str(version)))
  process, grpc_port, rest_port = start_server(model_base_path, "--max_workers=4",
                                               "--rest_body_timeout_seconds=2")
  latencies, unexpected, counts, lock = [], {}, {"requests": 0}, threading.Lock()
  try:
    rss_start = rss_bytes(process.pid)
    end = time.monotonic() + seconds

    def client(index: int):
      with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        traffic = _traffic(stub, rest_port, latent_dim)
        mine, bad, sent = [], {}, 0
        for count in range(_MAX_REQUESTS):
          if time.monotonic() >= end:
            break
          name, call, expected = traffic[(index + count) % len(traffic)]
          start = time.perf_counter()
          try:
            outcome = call()
          except OSError as error:
            outcome = f"{type(error).__name__}"
          if expected != 0:  # Latency of answered requests (not the half-body client's).
            mine.append(time.perf_counter() - start)
          sent += 1
          if outcome != expected:
            bad[f"{name}: {outcome}"] = bad.get(f"{name}: {outcome}", 0) + 1
      with lock:
        latencies.extend(mine)
        counts["requests"] += sent
        for key, value in bad.items():
          unexpected[key] = unexpected.get(key, 0) + value

    threads = [threading.Thread(target=client, args=(i,)) for i in range(num_clients)]
    for thread in threads:
      thread.start()
    for thread in threads:
      thread.join()
    rss_end = rss_bytes(process.pid)
  finally:
    process.terminate()
    try:
      process.wait(timeout=60)
    except subprocess.TimeoutExpired:
      process.kill()
      process.wait()
  milliseconds = np.array(latencies or [0.0]) * 1000
  return {"seconds": seconds, "clients": num_clients, "requests": counts["requests"],
          "failures": sum(unexpected.values()), "unexpected": unexpected,
          "p50_ms": float(np.percentile(milliseconds, 50)),
          "p99_ms": float(np.percentile(milliseconds, 99)),
          "server_rss_start_mb": None if rss_start is None else rss_start / 2**20,
          "server_rss_end_mb": None if rss_end is None else rss_end / 2**20,
          "server_rss_growth_mb": None if rss_start is None or rss_end is None
                                  else (rss_end - rss_start) / 2**20,
          "server_exit_status": process.returncode}


def _latent_dim(version_path: str) -> int:
  """The export's latent size, from its serving_default SignatureDef (no model load)."""
  with open(os.path.join(version_path, "saved_model.pb"), "rb") as f:
    saved_model = saved_model_pb2.SavedModel.FromString(f.read())
  signature = saved_model.meta_graphs[0].signature_def[export.SERVING_SIGNATURE]
  return int(signature.inputs[export.LATENTS].tensor_shape.dim[1].size)


def describe(report: dict) -> str:
  """The report as a few lines of text."""
  lines = [f"soak: {report['requests']} requests in {report['seconds']:g} s from "
           f"{report['clients']} clients; {report['failures']} failures (unexpected outcomes)",
           f"latency p50 {report['p50_ms']:.1f} ms, p99 {report['p99_ms']:.1f} ms"]
  if report["server_rss_growth_mb"] is not None:
    lines.append(f"server RSS {report['server_rss_start_mb']:.0f} MB -> "
                 f"{report['server_rss_end_mb']:.0f} MB "
                 f"({report['server_rss_growth_mb']:+.1f} MB)")
  for key, value in sorted(report["unexpected"].items()):
    lines.append(f"  unexpected {key}: {value}")
  return "\n".join(lines)
