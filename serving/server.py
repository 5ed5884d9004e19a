"""A model server that speaks TensorFlow Serving's gRPC and REST APIs, for one model.

  python -m serving.server --model_name=dcgan --model_base_path=runs/dcgan/export/dcgan \
      --port=8500 --rest_api_port=8501

For machines without `tensorflow_model_server` (shared/notes/stack.md §3: it cannot be installed
here): local use, tests and CI. A client written against TF Serving (a stock
`PredictionServiceStub`, or REST) works unchanged against either server.

What it does, as TF Serving does:
- serves the highest integer version under `--model_base_path` and polls the directory every
  `--file_system_poll_wait_seconds`; a new version is loaded, its warmup requests
  (`assets.extra/tf_serving_warmup_requests`) are replayed, and only then is it switched in. The
  old version is dropped once the requests already running on it finish: none fails. A version
  that fails to load is retried (serving/versions.py).
- gRPC `PredictionService.Predict` and `GetModelMetadata`, `ModelService.GetModelStatus`, with
  TF Serving's status codes: NOT_FOUND (unknown model or version), FAILED_PRECONDITION (unknown
  signature), INVALID_ARGUMENT (missing, extra, mistyped or misshaped inputs; failed in-graph
  validation; over a limit), DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED (too many calls at once).
- REST (serving/rest.py): `POST /v1/models/NAME[/versions/N]:predict`,
  `GET /v1/models/NAME[/versions/N]` and `GET /v1/models/NAME[/versions/N]/metadata`.
- bounded work per request (serving/limits.py): rows, declared tensor sizes, integer ranges and
  time, all checked before any tensor is built; bounded workers and connections; message size
  limit; 127.0.0.1 unless `--host` says otherwise; TLS with `--ssl_config`; on SIGTERM/SIGINT
  a stop within `--grace_seconds`, whatever the clients do.

Not implemented: Classify, Regress, MultiInference, version labels, model config files,
serving several models at once, server-side batching.
"""

import concurrent.futures
import logging
import os
import signal
import sys
import threading
import time
from typing import Optional

import grpc
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import limits
from serving import rest
from serving import tls
from serving.limits import ServingError  # pylint: disable=unused-import  (re-exported)
from serving.versions import DEFAULT_SIGNATURE
from serving.versions import ModelManager
from serving.versions import Servable  # pylint: disable=unused-import  (re-exported)
from serving.versions import WARMUP_FILE  # pylint: disable=unused-import  (re-exported)
from tfgan_app.common import cli

_LOG = logging.getLogger("serving.server")


def _spec_version(model_spec) -> Optional[int]:
  if model_spec.version_label:
    raise limits.invalid("Version labels are not supported by this server; use a version "
                         "number")
  return model_spec.version.value if model_spec.HasField("version") else None


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):

  def __init__(self, manager: ModelManager, request_timeout_ms: int):
    self._manager = manager
    self._request_timeout_ms = request_timeout_ms

  def Predict(self, request, context):  # pylint: disable=invalid-name
    deadline = limits.Deadline.for_grpc(context, self._request_timeout_ms)
    try:
      deadline.check()  # The client may have gone while the call waited for a worker.
      servable = self._manager.get(request.model_spec.name, _spec_version(request.model_spec))
      outputs = servable.predict_request(request, deadline)
      deadline.check()
    except ServingError as error:
      context.abort(error.code, error.message)
    response = predict_pb2.PredictResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.model_spec.signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    for alias, value in outputs.items():
      response.outputs[alias].CopyFrom(tf.make_tensor_proto(value))
    return response

  def GetModelMetadata(self, request, context):  # pylint: disable=invalid-name
    try:
      servable = self._manager.get(request.model_spec.name, _spec_version(request.model_spec))
      fields = list(request.metadata_field)
      if not fields:
        raise limits.invalid("GetModelMetadataRequest must specify at least one metadata_field")
      if any(field != "signature_def" for field in fields):
        raise limits.invalid("Metadata field(s) not supported: "
                             + ",".join(f for f in fields if f != "signature_def"))
    except ServingError as error:
      context.abort(error.code, error.message)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.metadata["signature_def"].Pack(servable.signature_def_map())
    return response


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):

  def __init__(self, manager: ModelManager):
    self._manager = manager

  def GetModelStatus(self, request, context):  # pylint: disable=invalid-name
    try:
      rows = self._manager.status(request.model_spec.name, _spec_version(request.model_spec))
    except ServingError as error:
      context.abort(error.code, error.message)
    response = get_model_status_pb2.GetModelStatusResponse()
    for version, state, message in rows:
      status = response.model_version_status.add()
      status.version = version
      status.state = get_model_status_pb2.ModelVersionStatus.State.Value(state)
      if message:
        status.status.error_code = 13  # INTERNAL: the version failed to load.
        status.status.error_message = message
    return response


class ModelServer:
  """gRPC + REST server for one model; `start()`, then `stop()`.

  Port 0 picks a free port; `port` / `rest_api_port` then say which. See `define_flags` for
  what each argument means (same names).
  """

  def __init__(self, model_name: str, model_base_path: str, port: int = 8500,
               rest_api_port: int = 8501, host: str = "127.0.0.1", max_workers: int = 8,
               max_message_bytes: int = 64 << 20, poll_seconds: float = 1.0, *,
               max_samples_per_request: Optional[int] = None,
               request_timeout_ms: int = limits.DEFAULT_REQUEST_TIMEOUT_MS,
               max_rest_connections: int = 64, rest_header_timeout_seconds: float = 10.0,
               rest_body_timeout_seconds: float = 30.0, max_load_retries: int = 5,
               load_retry_seconds: float = 5.0, chunk_rows: int = 64,
               ssl_config: Optional[tls.SslConfig] = None):
    self.manager = ModelManager(model_name, model_base_path, poll_seconds,
                                max_samples_per_request, chunk_rows, max_load_retries,
                                load_retry_seconds)
    self.host = host
    self.port = port
    self.rest_api_port = rest_api_port
    self.max_workers = max_workers
    self.max_message_bytes = max_message_bytes
    self.request_timeout_ms = request_timeout_ms
    self.max_rest_connections = max_rest_connections
    self.rest_header_timeout_seconds = rest_header_timeout_seconds
    self.rest_body_timeout_seconds = rest_body_timeout_seconds
    self.ssl_config = ssl_config
    self._grpc = None
    self._http = None
    self._http_thread = None

  def start(self) -> "ModelServer":
    self.manager.start()
    options = [("grpc.max_receive_message_length", self.max_message_bytes),
               ("grpc.max_send_message_length", self.max_message_bytes)]
    # Calls beyond max_workers * 4 (running or queued) fail at once with RESOURCE_EXHAUSTED.
    self._grpc = grpc.server(
        concurrent.futures.ThreadPoolExecutor(self.max_workers, "grpc-worker"),
        options=options, maximum_concurrent_rpcs=self.max_workers * 4)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        _PredictionService(self.manager, self.request_timeout_ms), self._grpc)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        _ModelService(self.manager), self._grpc)
    address = f"{self.host}:{self.port}"
    if self.ssl_config is not None:
      bound = self._grpc.add_secure_port(address, self.ssl_config.grpc_credentials())
    else:
      bound = self._grpc.add_insecure_port(address)
    if not bound:
      raise OSError(f"cannot listen for gRPC on {address}")
    self.port = bound
    self._grpc.start()
    if self.rest_api_port is not None and self.rest_api_port >= 0:
      handler = type("RestHandler", (rest.RestHandler,), {
          "manager": self.manager, "max_body_bytes": self.max_message_bytes,
          "header_timeout": self.rest_header_timeout_seconds,
          "body_timeout": self.rest_body_timeout_seconds,
          "request_timeout_ms": self.request_timeout_ms,
          "work_slots": threading.BoundedSemaphore(self.max_workers)})
      context = self.ssl_config.ssl_context() if self.ssl_config is not None else None
      # Bodies buffered at once: as many as can run, plus as many again waiting.
      self._http = rest.RestServer((self.host, self.rest_api_port), handler,
                                   self.max_rest_connections, context,
                                   2 * self.max_workers * self.max_message_bytes)
      self.rest_api_port = self._http.server_address[1]
      self._http_thread = threading.Thread(target=self._http.serve_forever, args=(0.1,),
                                           name="rest-acceptor", daemon=True)
      self._http_thread.start()
    return self

  def stop(self, grace_seconds: float = 5.0) -> None:
    """Stops accepting; running requests get `grace_seconds`, then are cut off."""
    deadline = time.monotonic() + max(0.0, grace_seconds)
    stopped = self._grpc.stop(grace_seconds) if self._grpc is not None else None
    if self._http is not None:
      self._http.stop(deadline)
    if stopped is not None:
      stopped.wait(max(0.0, deadline - time.monotonic()))
    self.manager.stop(max(0.0, deadline - time.monotonic()))

  def __enter__(self):
    return self.start()

  def __exit__(self, *exc):
    self.stop()


_PROGRAM = "python -m serving.server"


def define_flags(flag_values) -> None:
  """The command's flags, on their own `FlagValues` (called only from `main`)."""
  from absl import flags  # pylint: disable=import-outside-toplevel

  def define(kind, name, default, help_text, **kwargs):
    getattr(flags, "DEFINE_" + kind)(name, default, help_text, flag_values=flag_values,
                                     **kwargs)

  define("string", "model_name", "dcgan", "Model name clients ask for.")
  define("string", "model_base_path", None,
         "Directory holding the model's integer version directories "
         "(<export_dir>/<model_name>).")
  define("integer", "port", 8500, "gRPC port (0: any free port).", lower_bound=0)
  define("integer", "rest_api_port", 8501, "REST port (0: any free port; -1: no REST).",
         lower_bound=-1)
  define("string", "host", "127.0.0.1",
         "Address to listen on; 0.0.0.0 exposes the server to the network.")
  define("integer", "max_workers", 8,
         "Requests running the model at once, for gRPC and REST each; gRPC refuses calls "
         "beyond 4x this (running or queued) with RESOURCE_EXHAUSTED.", lower_bound=1)
  define("integer", "max_message_bytes", 64 << 20,
         "Largest request or response message (gRPC) and request body (REST) in bytes.",
         lower_bound=1024)
  define("integer", "max_samples_per_request", None,
         "Most rows (latents, seeds), num_samples or num_steps per request. Default: the "
         "export metadata's max_samples_per_request, else "
         f"{limits.DEFAULT_MAX_SAMPLES_PER_REQUEST}.", lower_bound=1)
  define("integer", "request_timeout_ms", limits.DEFAULT_REQUEST_TIMEOUT_MS,
         "Longest a request may run (the gRPC client's deadline if sooner); then "
         "DEADLINE_EXCEEDED.", lower_bound=1)
  define("integer", "max_rest_connections", 64,
         "Open REST connections at most; more get 503.", lower_bound=1)
  define("float", "rest_header_timeout_seconds", 10.0,
         "Time for a REST request line and headers (and a keep-alive connection's idle time).")
  define("float", "rest_body_timeout_seconds", 30.0, "Time for a REST request body.")
  define("integer", "max_load_retries", 5,
         "Retries of a version that failed to load (at once when its directory changes).",
         lower_bound=0)
  define("float", "load_retry_interval_seconds", 5.0,
         "First wait before a failed version is retried; doubles after each failure.")
  define("string", "ssl_config", None,
         "File naming the server certificate and key (serving/README.md, TLS): gRPC and REST "
         "then use TLS.")
  define("float", "file_system_poll_wait_seconds", 1.0,
         "Seconds between polls of --model_base_path for new versions (> 0).")
  define("float", "grace_seconds", 5.0,
         "On SIGTERM, seconds running requests get to finish; the process exits by then.")


def main(argv) -> int:
  """`python -m serving.server`; returns the exit status."""
  values, status = cli.parse_private_flags(
      _PROGRAM, define_flags, argv,
      "--model_name=NAME --model_base_path=DIR [--port=8500] [--rest_api_port=8501]",
      required=["model_base_path"])
  if values is None:
    return status
  for name in ("file_system_poll_wait_seconds", "rest_header_timeout_seconds",
               "rest_body_timeout_seconds", "load_retry_interval_seconds"):
    if getattr(values, name) <= 0:
      print(f"{_PROGRAM}: error: --{name} must be > 0", file=sys.stderr)
      return 2
  try:
    ssl_config = tls.read_ssl_config(values.ssl_config) if values.ssl_config else None
  except tls.SslConfigError as error:
    print(f"{_PROGRAM}: error: {error}", file=sys.stderr)
    return 2
  logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
  stop = threading.Event()
  for signum in (signal.SIGTERM, signal.SIGINT):
    signal.signal(signum, lambda *_: stop.set())
  server = ModelServer(
      values.model_name, os.path.abspath(values.model_base_path), values.port,
      values.rest_api_port, values.host, values.max_workers, values.max_message_bytes,
      values.file_system_poll_wait_seconds,
      max_samples_per_request=values.max_samples_per_request,
      request_timeout_ms=values.request_timeout_ms,
      max_rest_connections=values.max_rest_connections,
      rest_header_timeout_seconds=values.rest_header_timeout_seconds,
      rest_body_timeout_seconds=values.rest_body_timeout_seconds,
      max_load_retries=values.max_load_retries,
      load_retry_seconds=values.load_retry_interval_seconds, ssl_config=ssl_config)
  try:
    server.start()
  except OSError as error:
    print(f"{_PROGRAM}: error: {error}", file=sys.stderr)
    server.stop(0)
    return 1
  if not server.manager.available_versions():
    print(f"{_PROGRAM}: warning: no version under {values.model_base_path} yet; polling",
          file=sys.stderr, flush=True)
  rest_text = (f", REST on {values.host}:{server.rest_api_port}"
               if server.rest_api_port is not None and server.rest_api_port >= 0 else "")
  print(f"Serving model {values.model_name} from {values.model_base_path}: gRPC on "
        f"{values.host}:{server.port}{rest_text}{' (TLS)' if ssl_config else ''}", flush=True)
  while not stop.wait(0.1):
    pass
  print("Stopping: finishing running requests", flush=True)
  server.stop(values.grace_seconds)
  print("Stopped", flush=True)
  return 0


if __name__ == "__main__":
  _status = main(sys.argv)
  logging.shutdown()
  sys.stdout.flush()
  sys.stderr.flush()
  # Worker threads still inside a model call would hold a normal interpreter exit past the
  # grace period; their clients have been cut off already.
  os._exit(_status)  # pylint: disable=protected-access
