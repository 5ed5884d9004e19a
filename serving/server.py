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
  old version is dropped once the requests already running on it finish: none fails.
- gRPC `PredictionService.Predict` and `GetModelMetadata`, `ModelService.GetModelStatus`, with
  TF Serving's status codes: NOT_FOUND (unknown model or version), FAILED_PRECONDITION (unknown
  signature), INVALID_ARGUMENT (missing, extra, mistyped or misshaped inputs; failed in-graph
  validation).
- REST: `POST /v1/models/NAME[/versions/N]:predict` (`inputs` or `instances`; outputs whose
  names end in `_bytes` come back as `{"b64": ...}`), `GET /v1/models/NAME[/versions/N]` and
  `GET /v1/models/NAME[/versions/N]/metadata`.
- a bounded worker pool (`--max_workers`, for gRPC and REST each), a message size limit
  (`--max_message_bytes`), 127.0.0.1 unless `--host` says otherwise, and a clean stop on
  SIGTERM/SIGINT (running requests finish, within `--grace_seconds`).

Not implemented: Classify, Regress, MultiInference, version labels, model config files,
serving several models at once, server-side batching.
"""

import base64
import concurrent.futures
import http.server
import json
import logging
import os
import re
import signal
import sys
import threading
from typing import Dict, Optional

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tfgan_app.common import cli
from tfgan_app.exporting import contract as export

_LOG = logging.getLogger("serving.server")
# TF Serving's warmup convention, which our exports follow.
WARMUP_FILE = os.path.join(export.EXTRA_DIR, export.WARMUP_FILE)
DEFAULT_SIGNATURE = "serving_default"
_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}
# TF Serving's REST status for each error code (http_rest_api_handler / ToHTTPStatusCode).
_HTTP_STATUS = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.FAILED_PRECONDITION: 400,
                grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.NOT_FOUND: 404,
                grpc.StatusCode.ALREADY_EXISTS: 409, grpc.StatusCode.PERMISSION_DENIED: 403,
                grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
                grpc.StatusCode.UNIMPLEMENTED: 501, grpc.StatusCode.UNAVAILABLE: 503,
                grpc.StatusCode.DEADLINE_EXCEEDED: 504, grpc.StatusCode.CANCELLED: 499}


class ServingError(Exception):
  """A request that fails with a gRPC status code and TF Serving's kind of message."""

  def __init__(self, code: grpc.StatusCode, message: str):
    super().__init__(message)
    self.code = code
    self.message = message


def _op_error_message(error: tf.errors.OpError) -> str:
  """The useful line of a TF runtime error (its first line is 'Graph execution error:')."""
  lines = [line.strip() for line in str(error.message).splitlines() if line.strip()]
  for line in lines:
    if "assertion failed" in line:
      return line
  useful = [line for line in lines
            if not line.startswith(("Graph execution error", "Detected at node"))]
  return useful[0] if useful else str(error)


def _shape_compatible(shape: tuple, proto) -> bool:
  if proto.unknown_rank:
    return True
  if len(shape) != len(proto.dim):
    return False
  return all(dim.size < 0 or dim.size == size for dim, size in zip(proto.dim, shape))


def _shape_text(proto) -> str:
  if proto.unknown_rank:
    return "<unknown>"
  return "[" + ",".join("?" if d.size < 0 else str(d.size) for d in proto.dim) + "]"


class Servable:
  """One loaded version of the model: its signatures, callable concurrently."""

  def __init__(self, name: str, version: int, path: str):
    self.name = name
    self.version = version
    self.path = path
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
      saved_model = saved_model_pb2.SavedModel.FromString(f.read())
    graphs = [graph for graph in saved_model.meta_graphs
              if "serve" in graph.meta_info_def.tags]
    if not graphs:
      raise ValueError(f"{path} has no MetaGraph tagged 'serve'")
    # The SignatureDefs exactly as TF Serving reports them in GetModelMetadata.
    self.signature_defs: Dict[str, meta_graph_pb2.SignatureDef] = dict(graphs[0].signature_def)
    self._loaded = tf.saved_model.load(path, tags=["serve"])
    self._functions = {name: self._loaded.signatures[name] for name in self.signature_defs
                       if name in self._loaded.signatures}

  def signature(self, signature_name: str) -> meta_graph_pb2.SignatureDef:
    name = signature_name or DEFAULT_SIGNATURE
    if name not in self._functions:
      raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                         f'Serving signature key "{name}" not found.')
    return self.signature_defs[name]

  def predict(self, signature_name: str, inputs: Dict[str, np.ndarray],
              output_filter=()) -> Dict[str, np.ndarray]:
    """Runs a signature on numpy inputs after TF Serving's checks; raises ServingError."""
    name = signature_name or DEFAULT_SIGNATURE
    signature = self.signature(name)
    expected = sorted(signature.inputs)
    for alias in inputs:
      if alias not in signature.inputs:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"input tensor alias not found in signature: {alias}. Inputs expected to be in "
            f"the set {{{','.join(expected)}}}.")
    missing = [alias for alias in expected if alias not in inputs]
    if missing:
      raise ServingError(
          grpc.StatusCode.INVALID_ARGUMENT,
          f"Missing input(s) for signature '{name}': {','.join(missing)}. Inputs expected to "
          f"be in the set {{{','.join(expected)}}}.")
    tensors = {}
    for alias, value in inputs.items():
      info = signature.inputs[alias]
      dtype = tf.dtypes.as_dtype(info.dtype)
      if value.dtype != dtype.as_numpy_dtype and not (
          dtype == tf.string and value.dtype.kind in "OSU"):
        got = "string" if value.dtype.kind in "OSU" else tf.dtypes.as_dtype(value.dtype).name
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Expected input {alias} to be {types_pb2.DataType.Name(info.dtype)} but got {got}.")
      if not _shape_compatible(value.shape, info.tensor_shape):
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"input {alias} has shape [{','.join(map(str, value.shape))}]; signature '{name}' "
            f"expects {_shape_text(info.tensor_shape)}")
      tensors[alias] = tf.constant(value, dtype)
    for alias in output_filter:
      if alias not in signature.outputs:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"output tensor alias not found in signature: {alias} Outputs expected to be in "
            f"the set {{{','.join(sorted(signature.outputs))}}}.")
    try:
      outputs = self._functions[name](**tensors)
    except tf.errors.OpError as error:
      code = _GRPC_CODES.get(error.error_code, grpc.StatusCode.INTERNAL)
      raise ServingError(code, _op_error_message(error)) from error
    wanted = list(output_filter) or list(outputs)
    return {alias: outputs[alias].numpy() for alias in wanted}

  def predict_request(self, request: predict_pb2.PredictRequest) -> Dict[str, np.ndarray]:
    inputs = {}
    for alias, proto in request.inputs.items():
      try:
        inputs[alias] = tf.make_ndarray(proto)
      except Exception as error:  # pylint: disable=broad-except
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"tensor parsing error: {alias}") from error
    return self.predict(request.model_spec.signature_name, inputs,
                        list(request.output_filter))

  def warmup(self) -> int:
    """Replays the version's warmup requests (as TF Serving does before serving it)."""
    path = os.path.join(self.path, WARMUP_FILE)
    if not os.path.exists(path):
      return 0
    count = 0
    for record in tf.data.TFRecordDataset(path):
      log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
      if log.WhichOneof("log_type") != "predict_log":
        continue  # Classify/Regress/MultiInference are not served here.
      self.predict_request(log.predict_log.request)
      count += 1
    return count


class ModelManager:
  """Keeps the newest version of one model loaded; polls the base path for new versions."""

  def __init__(self, model_name: str, base_path: str, poll_seconds: float = 1.0):
    self.model_name = model_name
    self.base_path = base_path
    self.poll_seconds = poll_seconds
    self._current: Optional[Servable] = None
    self._failed = {}  # version -> error; not retried until the directory changes.
    self._lock = threading.Lock()
    self._poll_lock = threading.Lock()
    self._stop = threading.Event()
    self._thread = None

  def available_versions(self) -> list:
    try:
      names = os.listdir(self.base_path)
    except OSError:
      return []
    # Integer names only: staging directories (".tmp-...") are ignored, as by TF Serving.
    return sorted(int(name) for name in names
                  if name.isdigit() and
                  os.path.exists(os.path.join(self.base_path, name, "saved_model.pb")))

  def poll_once(self) -> None:
    """Loads the newest version if it is not the one served; logs and skips a broken one."""
    with self._poll_lock:
      versions = [v for v in self.available_versions() if v not in self._failed]
      current = self._current
      if not versions or (current is not None and current.version == versions[-1]):
        return
      version = versions[-1]
      path = os.path.join(self.base_path, str(version))
      try:
        servable = Servable(self.model_name, version, path)
        warmed = servable.warmup()
      except Exception as error:  # pylint: disable=broad-except
        self._failed[version] = str(error)
        _LOG.error("cannot load %s version %d from %s: %s", self.model_name, version, path,
                   error)
        return
      with self._lock:
        old, self._current = self._current, servable
      # The old version goes when its last running request drops its reference.
      _LOG.warning("serving %s version %d (%d warmup requests)%s", self.model_name, version,
                   warmed, f"; unloaded version {old.version}" if old else "")

  def get(self, model_name: str, version: Optional[int] = None) -> Servable:
    """The servable for a request's ModelSpec; NOT_FOUND as TF Serving says it."""
    with self._lock:
      current = self._current
    if model_name != self.model_name or current is None:
      what = f"Latest({model_name})" if version is None else f"Specific({model_name}, {version})"
      raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {what}")
    if version is not None and version != current.version:
      raise ServingError(grpc.StatusCode.NOT_FOUND,
                         f"Servable not found for request: Specific({model_name}, {version})")
    return current

  def status(self, model_name: str, version: Optional[int] = None) -> list:
    """[(version, state name, error message)] for GetModelStatus."""
    if model_name != self.model_name:
      raise ServingError(grpc.StatusCode.NOT_FOUND,
                         f"Could not find any versions of model {model_name}")
    with self._lock:
      current = self._current
    rows = []
    if current is not None:
      rows.append((current.version, "AVAILABLE", ""))
    rows += [(v, "END", message) for v, message in sorted(self._failed.items())]
    if version is not None:
      rows = [row for row in rows if row[0] == version]
      if not rows:
        raise ServingError(grpc.StatusCode.NOT_FOUND,
                           f"Could not find version {version} of model {model_name}")
    if not rows:
      raise ServingError(grpc.StatusCode.NOT_FOUND,
                         f"Could not find any versions of model {model_name}")
    return rows

  def start(self) -> None:
    self.poll_once()
    self._thread = threading.Thread(target=self._poll_loop, name="version-poller", daemon=True)
    self._thread.start()

  def _poll_loop(self) -> None:
    while not self._stop.wait(self.poll_seconds):
      try:
        self.poll_once()
      except Exception:  # pylint: disable=broad-except
        _LOG.exception("version poll failed")

  def stop(self) -> None:
    self._stop.set()
    if self._thread is not None:
      self._thread.join()


def _spec_version(model_spec) -> Optional[int]:
  if model_spec.version_label:
    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                       "Version labels are not supported by this server; use a version number")
  return model_spec.version.value if model_spec.HasField("version") else None


def _signature_def_map(servable: Servable) -> get_model_metadata_pb2.SignatureDefMap:
  result = get_model_metadata_pb2.SignatureDefMap()
  for name, signature in servable.signature_defs.items():
    result.signature_def[name].CopyFrom(signature)
  return result


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):

  def __init__(self, manager: ModelManager):
    self._manager = manager

  def Predict(self, request, context):  # pylint: disable=invalid-name
    try:
      servable = self._manager.get(request.model_spec.name, _spec_version(request.model_spec))
      outputs = servable.predict_request(request)
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
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           "GetModelMetadataRequest must specify at least one metadata_field")
      if any(field != "signature_def" for field in fields):
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           "Metadata field(s) not supported: "
                           + ",".join(f for f in fields if f != "signature_def"))
    except ServingError as error:
      context.abort(error.code, error.message)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.metadata["signature_def"].Pack(_signature_def_map(servable))
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


# ---------------------------------------------------------------------------------------------
# REST.


def _json_value(alias: str, value: np.ndarray):
  """An output as TF Serving's REST API writes it: `*_bytes` strings as {"b64": ...}."""
  if value.dtype.kind in "OSU":
    def convert(item):
      if isinstance(item, list):
        return [convert(element) for element in item]
      if isinstance(item, bytes):
        if alias.endswith("_bytes"):
          return {"b64": base64.b64encode(item).decode("ascii")}
        return item.decode("utf-8", errors="replace")
      return item
    return convert(value.tolist())
  return value.tolist()


def _decode_b64(value):
  if isinstance(value, dict):
    if set(value) != {"b64"}:
      raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                         'JSON object in a tensor must be {"b64": "..."}')
    try:
      return base64.b64decode(value["b64"], validate=True)
    except (ValueError, TypeError) as error:
      raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                         f"bad base64 string: {error}") from error
  if isinstance(value, list):
    return [_decode_b64(item) for item in value]
  return value


def _json_to_array(alias: str, value, info) -> np.ndarray:
  dtype = tf.dtypes.as_dtype(info.dtype)
  try:
    if dtype == tf.string:
      value = _decode_b64(value)
      return np.array(value, dtype=object)
    array = np.array(value)
    if array.dtype.kind not in "biuf" or (array.dtype.kind == "f" and dtype.is_integer):
      raise ValueError(f"got {array.dtype.name} values")
    if array.dtype.kind == "b" and dtype != tf.bool:
      raise ValueError("got booleans")
    return array.astype(dtype.as_numpy_dtype)
  except ServingError:
    raise
  except (ValueError, TypeError, OverflowError) as error:
    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                       f"input {alias} is not a {dtype.name} tensor: {error}") from error


def _rest_inputs(body: dict, signature) -> (Dict[str, np.ndarray], bool):
  """Numpy inputs from a REST predict body, and whether it used the row format."""
  if ("inputs" in body) == ("instances" in body):
    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                       "JSON Value must have exactly one of 'instances' or 'inputs'")
  names = list(signature.inputs)
  if "inputs" in body:
    inputs = body["inputs"]
    if not isinstance(inputs, dict) or (len(names) == 1 and names[0] not in inputs):
      inputs = {names[0]: inputs} if len(names) == 1 else inputs
    if not isinstance(inputs, dict):
      raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                         "'inputs' must be an object of named inputs for a signature with "
                         f"{len(names)} inputs")
    arrays = {}
    for alias, value in inputs.items():
      info = signature.inputs.get(alias)
      if info is None:  # Predict names the alias error.
        arrays[alias] = np.array(value)
        continue
      arrays[alias] = _json_to_array(alias, value, info)
    return arrays, False
  instances = body["instances"]
  if not isinstance(instances, list) or not instances:
    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "'instances' must be a non-empty list")
  if all(isinstance(row, dict) and "b64" not in row for row in instances):
    keys = set(instances[0])
    if any(set(row) != keys for row in instances):
      raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                         "every instance must name the same inputs")
    columns = {alias: [row[alias] for row in instances] for alias in keys}
  elif len(names) == 1:
    columns = {names[0]: instances}
  else:
    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                       "instances must be objects of named inputs for a signature with "
                       f"{len(names)} inputs")
  arrays = {alias: (_json_to_array(alias, value, signature.inputs[alias])
                    if alias in signature.inputs else np.array(value))
            for alias, value in columns.items()}
  return arrays, True


_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?"
                   r"(?P<rest>/metadata|:predict)?/?$")


class _RestHandler(http.server.BaseHTTPRequestHandler):
  server_version = "tfgan_app-model-server"
  manager: ModelManager = None  # Set on a subclass per server.
  max_body_bytes = 0

  def log_message(self, format, *args):  # pylint: disable=redefined-builtin
    _LOG.debug("REST %s " + format, self.client_address[0], *args)

  def _reply(self, status: int, payload) -> None:
    body = json.dumps(payload).encode("utf-8")
    self.send_response(status)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(body)))
    self.end_headers()
    self.wfile.write(body)

  def _error(self, error: ServingError) -> None:
    self._reply(_HTTP_STATUS.get(error.code, 500), {"error": error.message})

  def _route(self, method: str):
    match = _PATH.match(self.path.split("?", 1)[0])
    if match is None:
      raise ServingError(grpc.StatusCode.NOT_FOUND, f"Malformed request: {method} {self.path}")
    version = int(match["version"]) if match["version"] else None
    return match["name"], version, match["rest"] or ""

  def do_GET(self):  # pylint: disable=invalid-name
    try:
      name, version, rest = self._route("GET")
      if rest == ":predict":
        raise ServingError(grpc.StatusCode.NOT_FOUND, f"Malformed request: GET {self.path}")
      if rest == "/metadata":
        servable = self.manager.get(name, version)
        self._reply(200, {
            "model_spec": {"name": servable.name, "signature_name": "",
                           "version": str(servable.version)},
            "metadata": {"signature_def": json_format.MessageToDict(
                _signature_def_map(servable), preserving_proto_field_name=True)}})
        return
      rows = self.manager.status(name, version)
      self._reply(200, {"model_version_status": [
          {"version": str(v), "state": state,
           "status": {"error_code": "INTERNAL" if message else "OK",
                      "error_message": message}} for v, state, message in rows]})
    except ServingError as error:
      self._error(error)

  def do_POST(self):  # pylint: disable=invalid-name
    try:
      name, version, rest = self._route("POST")
      if rest != ":predict":
        raise ServingError(grpc.StatusCode.NOT_FOUND, f"Malformed request: POST {self.path}")
      length = int(self.headers.get("Content-Length") or 0)
      if length > self.max_body_bytes:
        raise ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                           f"request of {length} bytes exceeds the limit of "
                           f"{self.max_body_bytes}")
      try:
        body = json.loads(self.rfile.read(length) or b"null")
      except ValueError as error:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"JSON Parse error: {error}") from error
      if not isinstance(body, dict):
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           "JSON Value: request body must be an object")
      servable = self.manager.get(name, version)
      signature_name = body.get("signature_name") or DEFAULT_SIGNATURE
      inputs, rows = _rest_inputs(body, servable.signature(signature_name))
      outputs = servable.predict(signature_name, inputs)
    except ServingError as error:
      self._error(error)
      return
    if rows:
      count = min(len(value) for value in outputs.values()) if outputs else 0
      if len(outputs) == 1:
        (alias, value), = outputs.items()
        predictions = _json_value(alias, value)
      else:
        columns = {alias: _json_value(alias, value) for alias, value in outputs.items()}
        predictions = [{alias: column[i] for alias, column in columns.items()}
                       for i in range(count)]
      self._reply(200, {"predictions": predictions})
    elif len(outputs) == 1:
      (alias, value), = outputs.items()
      self._reply(200, {"outputs": _json_value(alias, value)})
    else:
      self._reply(200, {"outputs": {alias: _json_value(alias, value)
                                    for alias, value in outputs.items()}})


class _PooledHTTPServer(http.server.HTTPServer):
  """An HTTPServer whose requests run on a bounded thread pool (not a thread per request)."""

  def __init__(self, address, handler, pool: concurrent.futures.ThreadPoolExecutor):
    self._pool = pool
    super().__init__(address, handler)

  def process_request(self, request, client_address):
    self._pool.submit(self._process, request, client_address)

  def _process(self, request, client_address):
    try:
      self.finish_request(request, client_address)
    except Exception:  # pylint: disable=broad-except
      self.handle_error(request, client_address)
    finally:
      self.shutdown_request(request)


# ---------------------------------------------------------------------------------------------
# The server.


class ModelServer:
  """gRPC + REST server for one model; `start()`, then `stop()`.

  Port 0 picks a free port; `port` / `rest_api_port` then say which.
  """

  def __init__(self, model_name: str, model_base_path: str, port: int = 8500,
               rest_api_port: int = 8501, host: str = "127.0.0.1", max_workers: int = 8,
               max_message_bytes: int = 64 << 20, poll_seconds: float = 1.0):
    self.manager = ModelManager(model_name, model_base_path, poll_seconds)
    self.host = host
    self.port = port
    self.rest_api_port = rest_api_port
    self.max_workers = max_workers
    self.max_message_bytes = max_message_bytes
    self._grpc = None
    self._http = None
    self._http_pool = None
    self._http_thread = None

  def start(self) -> "ModelServer":
    self.manager.start()
    options = [("grpc.max_receive_message_length", self.max_message_bytes),
               ("grpc.max_send_message_length", self.max_message_bytes)]
    self._grpc = grpc.server(
        concurrent.futures.ThreadPoolExecutor(self.max_workers, "grpc-worker"),
        options=options, maximum_concurrent_rpcs=self.max_workers * 4)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        _PredictionService(self.manager), self._grpc)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        _ModelService(self.manager), self._grpc)
    bound = self._grpc.add_insecure_port(f"{self.host}:{self.port}")
    if not bound:
      raise OSError(f"cannot listen for gRPC on {self.host}:{self.port}")
    self.port = bound
    self._grpc.start()
    if self.rest_api_port is not None and self.rest_api_port >= 0:
      handler = type("RestHandler", (_RestHandler,),
                     {"manager": self.manager, "max_body_bytes": self.max_message_bytes})
      self._http_pool = concurrent.futures.ThreadPoolExecutor(self.max_workers, "rest-worker")
      self._http = _PooledHTTPServer((self.host, self.rest_api_port), handler, self._http_pool)
      self.rest_api_port = self._http.server_address[1]
      self._http_thread = threading.Thread(target=self._http.serve_forever,
                                           name="rest-acceptor", daemon=True)
      self._http_thread.start()
    return self

  def stop(self, grace_seconds: float = 5.0) -> None:
    """Stops accepting, lets running requests finish (up to `grace_seconds`), then exits."""
    if self._http is not None:
      self._http.shutdown()
      self._http_pool.shutdown(wait=True)
      self._http.server_close()
    if self._grpc is not None:
      self._grpc.stop(grace_seconds).wait()
    self.manager.stop()

  def __enter__(self):
    return self.start()

  def __exit__(self, *exc):
    self.stop()


_PROGRAM = "python -m serving.server"


def define_flags(flag_values) -> None:
  """The command's flags, on their own `FlagValues` (called only from `main`)."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  flags.DEFINE_string("model_name", "dcgan", "Model name clients ask for.",
                      flag_values=flag_values)
  flags.DEFINE_string("model_base_path", None,
                      "Directory holding the model's integer version directories "
                      "(<export_dir>/<model_name>).", flag_values=flag_values)
  flags.DEFINE_integer("port", 8500, "gRPC port (0: any free port).", lower_bound=0,
                       flag_values=flag_values)
  flags.DEFINE_integer("rest_api_port", 8501, "REST port (0: any free port; -1: no REST).",
                       lower_bound=-1, flag_values=flag_values)
  flags.DEFINE_string("host", "127.0.0.1",
                      "Address to listen on; 0.0.0.0 exposes the server to the network.",
                      flag_values=flag_values)
  flags.DEFINE_integer("max_workers", 8, "Request worker threads, for gRPC and REST each.",
                       lower_bound=1, flag_values=flag_values)
  flags.DEFINE_integer("max_message_bytes", 64 << 20,
                       "Largest request or response message in bytes.", lower_bound=1024,
                       flag_values=flag_values)
  flags.DEFINE_float("file_system_poll_wait_seconds", 1.0,
                     "Seconds between polls of --model_base_path for new versions (> 0).",
                     flag_values=flag_values)
  flags.DEFINE_float("grace_seconds", 5.0,
                     "On SIGTERM, seconds running requests get to finish.",
                     flag_values=flag_values)


def main(argv) -> int:
  """`python -m serving.server`; returns the exit status."""
  values, status = cli.parse_private_flags(
      _PROGRAM, define_flags, argv,
      "--model_name=NAME --model_base_path=DIR [--port=8500] [--rest_api_port=8501]",
      required=["model_base_path"])
  if values is None:
    return status
  if values.file_system_poll_wait_seconds <= 0:
    print(f"{_PROGRAM}: error: --file_system_poll_wait_seconds must be > 0", file=sys.stderr)
    return 2
  logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
  stop = threading.Event()
  for signum in (signal.SIGTERM, signal.SIGINT):
    signal.signal(signum, lambda *_: stop.set())
  server = ModelServer(values.model_name, os.path.abspath(values.model_base_path),
                       values.port, values.rest_api_port, values.host, values.max_workers,
                       values.max_message_bytes, values.file_system_poll_wait_seconds)
  try:
    server.start()
  except OSError as error:
    print(f"{_PROGRAM}: error: {error}", file=sys.stderr)
    server.stop(0)
    return 1
  if not server.manager.available_versions():
    print(f"{_PROGRAM}: warning: no version under {values.model_base_path} yet; polling",
          file=sys.stderr, flush=True)
  rest = (f", REST on {values.host}:{server.rest_api_port}"
          if server.rest_api_port is not None and server.rest_api_port >= 0 else "")
  print(f"Serving model {values.model_name} from {values.model_base_path}: gRPC on "
        f"{values.host}:{server.port}{rest}", flush=True)
  while not stop.wait(0.5):
    pass
  print("Stopping: finishing running requests", flush=True)
  server.stop(values.grace_seconds)
  print("Stopped", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
