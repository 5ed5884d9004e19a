"""The model's versions: one loaded version (`Servable`) and the poller that swaps them.

Version directories are named as TF Serving names them: ASCII decimal digits only (`[0-9]+`,
at most int64), parsed as a number, so `0060` is version 60 (TF Serving's `safe_strto64`
reads it the same way; it also accepts surrounding spaces and a sign, which we ignore). Any
other name (`.tmp-...`, `²`, `v2`, `-1`) is not a version. When two names give one number
(`60`, `0060`), the canonical spelling wins, else the first in sorted order; listing and lookup
use the same map, so a version number always means one directory.

A version that fails to load or warm up is retried as TF Serving does: when its directory changes
(its files' names, sizes, times), else `max_load_retries` times, `retry_seconds` apart, doubling.
"""

import json
import logging
import os
import re
import threading
import time
from typing import Dict, Optional

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import prediction_log_pb2

from serving import limits
from serving.limits import ServingError
from tfgan_app.exporting import contract as export

_LOG = logging.getLogger("serving.server")
WARMUP_FILE = os.path.join(export.EXTRA_DIR, export.WARMUP_FILE)
DEFAULT_SIGNATURE = export.SERVING_SIGNATURE
_VERSION_NAME = re.compile(r"[0-9]+")
_INT64_MAX = 2**63 - 1
# Rows per graph call of a chunked request; the deadline is checked between chunks.
DEFAULT_CHUNK_ROWS = 64


def _op_error_message(error: tf.errors.OpError) -> str:
  """The useful line of a TF runtime error (its first line is 'Graph execution error:')."""
  lines = [line.strip() for line in str(error.message).splitlines() if line.strip()]
  for line in lines:
    if "assertion failed" in line:
      return line
  useful = [line for line in lines
            if not line.startswith(("Graph execution error", "Detected at node"))]
  return useful[0] if useful else str(error)


def parse_version(name: str) -> Optional[int]:
  """The version number of a directory name, or None if it is not a version."""
  if not _VERSION_NAME.fullmatch(name):
    return None
  value = int(name)
  return value if value <= _INT64_MAX else None


def version_dirs(base_path: str) -> Dict[int, str]:
  """{version: directory name} of the complete versions (with saved_model.pb) under base."""
  try:
    names = sorted(os.listdir(base_path))
  except OSError:
    return {}
  found = {}
  for name in names:
    version = parse_version(name)
    if version is None or not os.path.exists(os.path.join(base_path, name, "saved_model.pb")):
      continue
    if version not in found or name == str(version):
      found[version] = name
  return found


def dir_signature(path: str) -> tuple:
  """What changes when a version directory is rewritten: its files' names, sizes, mtimes."""
  entries = []
  for root, dirs, files in os.walk(path):
    dirs.sort()
    for name in sorted(files):
      try:
        stat = os.stat(os.path.join(root, name))
      except OSError:
        continue
      entries.append((os.path.relpath(os.path.join(root, name), path), stat.st_size,
                      stat.st_mtime_ns))
  try:
    entries.append(("", 0, os.stat(path).st_mtime_ns))
  except OSError:
    pass
  return tuple(entries)


class Servable:
  """One loaded version of the model: its signatures, callable concurrently.

  `max_rows`: the row limit (None: the export metadata's `max_samples_per_request`, else
  `limits.DEFAULT_MAX_SAMPLES_PER_REQUEST`).
  """

  def __init__(self, name: str, version: int, path: str, max_rows: Optional[int] = None,
               chunk_rows: int = DEFAULT_CHUNK_ROWS):
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
    try:
      with open(os.path.join(path, export.EXTRA_DIR, export.METADATA_FILE)) as f:
        metadata = json.load(f)
    except (OSError, ValueError):
      metadata = None
    # The export's own limit, when declared: the graph enforces it too, so chunks may run.
    self.declared_max_rows = limits.max_rows_from_metadata(metadata)
    self.max_rows = max_rows or self.declared_max_rows or limits.DEFAULT_MAX_SAMPLES_PER_REQUEST
    self.chunk_rows = max(1, chunk_rows)
    self._loaded = tf.saved_model.load(path, tags=["serve"])
    self._functions = {name: self._loaded.signatures[name] for name in self.signature_defs
                       if name in self._loaded.signatures}

  def signature(self, signature_name: str) -> meta_graph_pb2.SignatureDef:
    name = signature_name or DEFAULT_SIGNATURE
    if name not in self._functions:
      raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                         f'Serving signature key "{name}" not found.')
    return self.signature_defs[name]

  def signature_def_map(self) -> get_model_metadata_pb2.SignatureDefMap:
    """The SignatureDefs as GetModelMetadata reports them."""
    result = get_model_metadata_pb2.SignatureDefMap()
    for name, signature in self.signature_defs.items():
      result.signature_def[name].CopyFrom(signature)
    return result

  def _check_aliases(self, name: str, signature, aliases) -> None:
    expected = sorted(signature.inputs)
    for alias in aliases:
      if alias not in signature.inputs:
        raise limits.invalid(
            f"input tensor alias not found in signature: {alias}. Inputs expected to be in "
            f"the set {{{','.join(expected)}}}.")
    missing = [alias for alias in expected if alias not in aliases]
    if missing:
      raise limits.invalid(
          f"Missing input(s) for signature '{name}': {','.join(missing)}. Inputs expected to "
          f"be in the set {{{','.join(expected)}}}.")

  def predict(self, signature_name: str, inputs: Dict[str, np.ndarray], output_filter=(),
              deadline: Optional[limits.Deadline] = None) -> Dict[str, np.ndarray]:
    """Runs a signature on numpy inputs after TF Serving's checks; raises ServingError."""
    name = signature_name or DEFAULT_SIGNATURE
    signature = self.signature(name)
    self._check_aliases(name, signature, list(inputs))
    tensors = {}
    for alias, value in inputs.items():
      info = signature.inputs[alias]
      dtype = tf.dtypes.as_dtype(info.dtype)
      if value.dtype != dtype.as_numpy_dtype and not (
          dtype == tf.string and value.dtype.kind in "OSU"):
        got = "string" if value.dtype.kind in "OSU" else tf.dtypes.as_dtype(value.dtype).name
        raise limits.invalid(f"Expected input {alias} to be "
                             f"{types_pb2.DataType.Name(info.dtype)} but got {got}.")
      if not limits.shape_compatible(value.shape, info.tensor_shape):
        raise limits.invalid(
            f"input {alias} has shape [{','.join(map(str, value.shape))}]; signature '{name}' "
            f"expects {limits.shape_text(info.tensor_shape)}")
      limits.check_rows(name, alias, value.shape, info, self.max_rows)
      limits.check_count_value(alias, value, self.max_rows)
      tensors[alias] = value
    for alias in output_filter:
      if alias not in signature.outputs:
        raise limits.invalid(
            f"output tensor alias not found in signature: {alias} Outputs expected to be in "
            f"the set {{{','.join(sorted(signature.outputs))}}}.")
    wanted = list(output_filter) or None
    pieces = []
    for chunk in self._chunks(name, signature, tensors):
      if deadline is not None:
        deadline.check()
      pieces.append(self._call(name, chunk, wanted))
    if len(pieces) == 1:
      return pieces[0]
    return {alias: np.concatenate([piece[alias] for piece in pieces]) for alias in pieces[0]}

  def _call(self, name: str, tensors: dict, wanted) -> Dict[str, np.ndarray]:
    signature = self.signature_defs[name]
    try:
      outputs = self._functions[name](**{
          alias: tf.constant(value, tf.dtypes.as_dtype(signature.inputs[alias].dtype))
          for alias, value in tensors.items()})
    except tf.errors.OpError as error:
      code = limits.GRPC_CODES.get(error.error_code, grpc.StatusCode.INTERNAL)
      raise ServingError(code, _op_error_message(error)) from error
    return {alias: outputs[alias].numpy() for alias in (wanted or list(outputs))}

  def _chunks(self, name: str, signature, tensors: dict) -> list:
    """The request as pieces of at most `chunk_rows` rows (outputs concatenate to the same).

    Split: signatures whose every input has a batch dimension (rows split), and `sample` (row i:
    seed+i; a conditional `label` goes to every chunk). A signature checking its own row count
    in the graph is split only up to the export's declared limit, never past what it refuses.
    """
    whole = [tensors]
    dims = {alias: signature.inputs[alias].tensor_shape for alias in tensors}
    if all(not d.unknown_rank and d.dim and d.dim[0].size < 0 for d in dims.values()):
      rows = {len(value) for value in tensors.values()}
      if len(rows) != 1:
        return whole
      count = rows.pop()
      if count <= self.chunk_rows or (name != export.SERVING_SIGNATURE and (
          self.declared_max_rows is None or count > self.declared_max_rows)):
        return whole
      return [{alias: value[start:start + self.chunk_rows] for alias, value in tensors.items()}
              for start in range(0, count, self.chunk_rows)]
    if name == export.SAMPLE_SIGNATURE and \
        set(tensors) - {export.LABEL} == {export.NUM_SAMPLES, export.SEED}:
      count, seed = int(tensors[export.NUM_SAMPLES]), int(tensors[export.SEED])
      if (count <= self.chunk_rows or self.declared_max_rows is None or
          count > self.declared_max_rows or seed + count > _INT64_MAX):
        return whole
      return [dict(tensors, **{export.NUM_SAMPLES: np.int32(min(self.chunk_rows, count - start)),
                               export.SEED: np.int64(seed + start)})
              for start in range(0, count, self.chunk_rows)]
    return whole

  def predict_request(self, request, deadline: Optional[limits.Deadline] = None
                      ) -> Dict[str, np.ndarray]:
    """Runs a PredictRequest; every tensor is checked before it is converted."""
    name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    signature = self.signature(name)
    self._check_aliases(name, signature, list(request.inputs))
    inputs = {}
    for alias, proto in request.inputs.items():
      limits.check_tensor_proto(name, alias, proto, signature.inputs[alias], self.max_rows)
      try:
        inputs[alias] = tf.make_ndarray(proto)
      except Exception as error:  # pylint: disable=broad-except
        raise limits.invalid(f"tensor parsing error: {alias}") from error
    return self.predict(name, inputs, list(request.output_filter), deadline)

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


class _Failure:
  """A version that failed to load: why, when to retry, and what its directory looked like."""

  def __init__(self, message: str, signature: tuple):
    self.message = message
    self.signature = signature
    self.attempts = 1
    self.next_retry = 0.0


class ModelManager:
  """Keeps the newest version of one model loaded; polls the base path for new versions."""

  def __init__(self, model_name: str, base_path: str, poll_seconds: float = 1.0,
               max_rows: Optional[int] = None, chunk_rows: int = DEFAULT_CHUNK_ROWS,
               max_load_retries: int = 5, retry_seconds: float = 5.0):
    self.model_name = model_name
    self.base_path = base_path
    self.poll_seconds = poll_seconds
    self.max_rows = max_rows
    self.chunk_rows = chunk_rows
    self.max_load_retries = max_load_retries
    self.retry_seconds = retry_seconds
    self._current: Optional[Servable] = None
    self._failed: Dict[int, _Failure] = {}
    self._lock = threading.Lock()
    self._poll_lock = threading.Lock()
    self._stop = threading.Event()
    self._thread = None

  def available_versions(self) -> list:
    return sorted(version_dirs(self.base_path))

  def _eligible(self, version: int, path: str, now: float) -> bool:
    failure = self._failed.get(version)
    if failure is None:
      return True
    if dir_signature(path) != failure.signature:
      return True  # Rewritten: try again at once.
    return failure.attempts <= self.max_load_retries and now >= failure.next_retry

  def poll_once(self) -> None:
    """Loads the newest loadable version if it is not the one served; logs a broken one."""
    with self._poll_lock:
      dirs = version_dirs(self.base_path)
      for version in list(self._failed):
        if version not in dirs:
          del self._failed[version]  # Gone: a later copy is a fresh start.
      current = self._current
      now = time.monotonic()
      candidates = [v for v in sorted(dirs, reverse=True)
                    if (current is not None and v == current.version) or
                    self._eligible(v, os.path.join(self.base_path, dirs[v]), now)]
      for version in candidates:
        if current is not None and current.version == version:
          return
        if self._load(version, os.path.join(self.base_path, dirs[version])):
          return

  def _load(self, version: int, path: str) -> bool:
    """Loads, warms up and switches in one version; False (recorded) if it fails."""
    before = dir_signature(path)
    try:
      servable = Servable(self.model_name, version, path, self.max_rows, self.chunk_rows)
      warmed = servable.warmup()
    except Exception as error:  # pylint: disable=broad-except
      self._record_failure(version, str(error), before)
      _LOG.error("cannot load %s version %d from %s: %s", self.model_name, version, path, error)
      return False
    self._failed.pop(version, None)
    with self._lock:
      old, self._current = self._current, servable
    # The old version goes when its last running request drops its reference.
    _LOG.warning("serving %s version %d (%d warmup requests)%s", self.model_name, version,
                 warmed, f"; unloaded version {old.version}" if old else "")
    return True

  def _record_failure(self, version: int, message: str, signature: tuple) -> None:
    failure = self._failed.get(version)
    if failure is None or failure.signature != signature:
      failure = self._failed[version] = _Failure(message, signature)
    else:
      failure.attempts += 1
      failure.message = message
    failure.next_retry = time.monotonic() + self.retry_seconds * 2 ** (failure.attempts - 1)

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
    rows += [(v, "END", failure.message) for v, failure in sorted(self._failed.items())]
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

  def stop(self, timeout: Optional[float] = None) -> None:
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout)
