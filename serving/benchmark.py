"""Latency and throughput of `sample` over gRPC next to the same generation in-process.

  python -m serving.benchmark [--model_base_path=runs/dcgan/export/dcgan] [--requests=40]
  # about 2-4 minutes on 2 CPU cores; not a test

Without --model_base_path it exports a randomly initialised generator of the default training
configuration (DCGAN, latent_dim 100, 64 filters, 28x28x1) to a temporary directory: the cost of
a request does not depend on the weights. The gRPC server is `python -m serving.server` in its
own process (as a real deployment would be); each client thread has its own channel and
decodes the response into numpy, so the gRPC column includes protobuf conversion both ways.
In-process clients call the loaded SavedModel's `sample` signature directly.

For each request size (16, 256 images) and number of concurrent clients (1, 8) it prints p50 and
p99 latency in ms and images/s, and the gRPC images/s as a fraction of in-process.

  python -m serving.benchmark --soak [--soak_seconds=60] [--soak_clients=4]
  # a soak: mixed good and hostile traffic against a server it starts on 127.0.0.1

`--soak` starts `python -m serving.server` (gRPC and REST on free loopback ports, a
`--max_samples_per_request` of 16) and drives it from `--soak_clients` threads for
`--soak_seconds`: good gRPC and REST requests among malformed ones (a 59-byte request declaring
[1000000, latent_dim], too many rows, an unknown signature, bad Content-Length, an int32
overflow, 10,000-deep JSON, a client that sends half a body and leaves). It prints the number of
requests, failures (any outcome other than the expected one: 200/OK for good requests, the
promised 4xx/status code for bad ones), p50/p99 latency and the server's resident memory
(VmRSS) at the start and end, then one JSON line with the same numbers.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import client_lib
from serving import soak as soak_lib
from tfgan_app.exporting import saved_model as export

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
  with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1]


def _run(call, num_clients: int, requests_per_client: int, images_per_request: int) -> dict:
  """Runs `call()` from `num_clients` threads; latency percentiles and images/s."""
  latencies, lock = [], threading.Lock()

  def worker():
    mine = []
    for _ in range(requests_per_client):
      start = time.perf_counter()
      call()
      mine.append(time.perf_counter() - start)
    with lock:
      latencies.extend(mine)

  call()  # Warm the path (first-call tracing, connection setup).
  threads = [threading.Thread(target=worker) for _ in range(num_clients)]
  start = time.perf_counter()
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  wall = time.perf_counter() - start
  milliseconds = np.array(latencies) * 1000
  return {"p50": float(np.percentile(milliseconds, 50)),
          "p99": float(np.percentile(milliseconds, 99)),
          "images_per_s": num_clients * requests_per_client * images_per_request / wall}


def _default_export(directory: str) -> str:
  from tfgan_app.models import registry as models  # pylint: disable=import-outside-toplevel
  generator = models.build_generator("dcgan", 100, (28, 28, 1), filters=64)
  export.export_generator(generator, 100, directory, "dcgan", 1, {"benchmark": True})
  return os.path.join(directory, "dcgan")


def benchmark(model_base_path: str, sizes=(16, 256), clients=(1, 8),
              requests: int = 40) -> list:
  """Returns rows (size, clients, mode, p50 ms, p99 ms, images/s)."""
  version = max(int(v) for v in os.listdir(model_base_path) if v.isdigit())
  signature = tf.saved_model.load(
      os.path.join(model_base_path, str(version))).signatures[export.SAMPLE_SIGNATURE]
  port = _free_port()
  server = subprocess.Popen(
      [sys.executable, "-m", "serving.server", "--model_name=dcgan",
       f"--model_base_path={model_base_path}", f"--port={port}", "--rest_api_port=-1",
       "--max_workers=8"], cwd=_REPO_ROOT, stdout=subprocess.DEVNULL)
  rows = []
  try:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}",
                                    options=[("grpc.max_receive_message_length", 256 << 20)])
    grpc.channel_ready_future(channel).result(timeout=120)
    for size in sizes:
      request = client_lib.build_request("dcgan", export.SAMPLE_SIGNATURE, size, 7)
      inputs = {export.NUM_SAMPLES: tf.constant(size, tf.int32),
                export.SEED: tf.constant(7, tf.int64)}
      for num_clients in clients:
        per_client = max(2, requests // num_clients)
        local = _run(lambda: signature(**inputs)[export.IMAGES].numpy(), num_clients,
                     per_client, size)
        channels = [grpc.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 256 << 20)])
                    for _ in range(num_clients)]
        stubs = [prediction_service_pb2_grpc.PredictionServiceStub(c) for c in channels]
        counter = iter(range(10**9))

        def remote():
          stub = stubs[next(counter) % len(stubs)]
          response = stub.Predict(request, timeout=120)
          return tf.make_ndarray(response.outputs[export.IMAGES])

        served = _run(remote, num_clients, per_client, size)
        for c in channels:
          c.close()
        rows.append((size, num_clients, "in-process", local))
        rows.append((size, num_clients, "gRPC", served))
    channel.close()
  finally:
    server.terminate()
    server.wait(timeout=30)
  return rows


def main(argv) -> int:
  from absl import flags  # pylint: disable=import-outside-toplevel
  values = flags.FlagValues()
  flags.DEFINE_string("model_base_path", None,
                      "Export to serve (<export_dir>/<model_name>); default: a random-weight "
                      "DCGAN of the default size, exported to a temporary directory.",
                      flag_values=values)
  flags.DEFINE_integer("requests", 40, "Requests per configuration (split over the clients).",
                       lower_bound=2, flag_values=values)
  flags.DEFINE_list("sizes", ["16", "256"], "Images per request.", flag_values=values)
  flags.DEFINE_list("clients", ["1", "8"], "Concurrent clients.", flag_values=values)
  flags.DEFINE_bool("soak", False, "Run the soak (mixed good and bad traffic) instead.",
                    flag_values=values)
  flags.DEFINE_float("soak_seconds", 60.0, "How long the soak drives traffic.",
                     lower_bound=0.1, upper_bound=24 * 3600, flag_values=values)
  flags.DEFINE_integer("soak_clients", 4, "Concurrent soak clients.", lower_bound=1,
                       upper_bound=64, flag_values=values)
  try:
    values(argv)
  except flags.Error as error:
    print(f"python -m serving.benchmark: error: {error}", file=sys.stderr)
    return 2
  with tempfile.TemporaryDirectory() as scratch:
    base = values.model_base_path or _default_export(scratch)
    if values.soak:
      report = soak_lib.soak(base, values.soak_seconds, values.soak_clients)
      print(soak_lib.describe(report))
      print(json.dumps(report), flush=True)
      return 0 if report["failures"] == 0 else 1
    rows = benchmark(base, [int(s) for s in values.sizes], [int(c) for c in values.clients],
                     values.requests)
  print(f"{'images':>6} {'clients':>7} {'mode':>10} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'images/s':>9} {'vs local':>8}")
  local = {}
  for size, num_clients, mode, result in rows:
    if mode == "in-process":
      local[(size, num_clients)] = result["images_per_s"]
      ratio = ""
    else:
      ratio = f"{result['images_per_s'] / local[(size, num_clients)]:.0%}"
    print(f"{size:>6} {num_clients:>7} {mode:>10} {result['p50']:>8.1f} {result['p99']:>8.1f} "
          f"{result['images_per_s']:>9.0f} {ratio:>8}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
