"""Bounds on the work one request may cause, checked before any tensor is built.

The server's error type and status mapping live here too: every check below answers with
TF Serving's status codes (INVALID_ARGUMENT, DEADLINE_EXCEEDED, ...).

- Rows: the batch dimension of `latents`, `seeds` and `labels`, and the values of
  `num_samples` and `num_steps`, are at most `max_samples_per_request`. (Classes are checked by
  the export's graph.)
- Declared sizes: a TensorProto's shape is checked against the signature (rank, fixed dims,
  the batch dimension against the row limit) and against the values it carries, before
  `tf.make_ndarray` could expand a single repeated value to the declared shape.
- Integers: values given in JSON must lie in the range of the input's dtype (int32/int64), as
  TF Serving's REST API requires; nothing wraps.
- Time: a `Deadline` per request (the client's gRPC deadline, capped by
  `--request_timeout_ms`), checked before work starts and between chunks.
"""

import time
from typing import Optional

import grpc
import numpy as np
from tensorflow.core.framework import types_pb2

from tfgan_app.exporting import contract as export

# The default row limit when neither --max_samples_per_request nor the export's metadata
# (key `max_samples_per_request` in assets.extra/tfgan_app_metadata.json) gives one.
DEFAULT_MAX_SAMPLES_PER_REQUEST = 1024
# TF Serving's default for --grpc... / --rest_api_timeout_in_ms.
DEFAULT_REQUEST_TIMEOUT_MS = 30000
# Scalar inputs of the export contract that count rows.
COUNT_INPUTS = (export.NUM_SAMPLES, export.NUM_STEPS)

GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}
# TF Serving's REST status for each error code (http_rest_api_handler / ToHTTPStatusCode).
HTTP_STATUS = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.FAILED_PRECONDITION: 400,
               grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.NOT_FOUND: 404,
               grpc.StatusCode.ALREADY_EXISTS: 409, grpc.StatusCode.PERMISSION_DENIED: 403,
               grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
               grpc.StatusCode.UNIMPLEMENTED: 501, grpc.StatusCode.UNAVAILABLE: 503,
               grpc.StatusCode.DEADLINE_EXCEEDED: 504, grpc.StatusCode.CANCELLED: 499}

# The TensorProto field that holds each dtype's values (and values per element).
_VALUE_FIELDS = {
    types_pb2.DT_FLOAT: ("float_val", 1), types_pb2.DT_DOUBLE: ("double_val", 1),
    types_pb2.DT_INT32: ("int_val", 1), types_pb2.DT_INT16: ("int_val", 1),
    types_pb2.DT_INT8: ("int_val", 1), types_pb2.DT_UINT8: ("int_val", 1),
    types_pb2.DT_UINT16: ("int_val", 1), types_pb2.DT_INT64: ("int64_val", 1),
    types_pb2.DT_UINT32: ("uint32_val", 1), types_pb2.DT_UINT64: ("uint64_val", 1),
    types_pb2.DT_BOOL: ("bool_val", 1), types_pb2.DT_STRING: ("string_val", 1),
    types_pb2.DT_HALF: ("half_val", 1), types_pb2.DT_BFLOAT16: ("half_val", 1),
    types_pb2.DT_COMPLEX64: ("scomplex_val", 2), types_pb2.DT_COMPLEX128: ("dcomplex_val", 2),
}
_ITEM_BYTES = {types_pb2.DT_FLOAT: 4, types_pb2.DT_DOUBLE: 8, types_pb2.DT_INT32: 4,
               types_pb2.DT_INT16: 2, types_pb2.DT_INT8: 1, types_pb2.DT_UINT8: 1,
               types_pb2.DT_UINT16: 2, types_pb2.DT_INT64: 8, types_pb2.DT_UINT32: 4,
               types_pb2.DT_UINT64: 8, types_pb2.DT_BOOL: 1, types_pb2.DT_HALF: 2,
               types_pb2.DT_BFLOAT16: 2, types_pb2.DT_COMPLEX64: 8,
               types_pb2.DT_COMPLEX128: 16}
_INT_RANGES = {types_pb2.DT_INT32: (-2**31, 2**31 - 1), types_pb2.DT_INT64: (-2**63, 2**63 - 1),
               types_pb2.DT_INT16: (-2**15, 2**15 - 1), types_pb2.DT_INT8: (-128, 127),
               types_pb2.DT_UINT8: (0, 255), types_pb2.DT_UINT16: (0, 2**16 - 1),
               types_pb2.DT_UINT32: (0, 2**32 - 1), types_pb2.DT_UINT64: (0, 2**64 - 1)}


class ServingError(Exception):
  """A request that fails with a gRPC status code and TF Serving's kind of message."""

  def __init__(self, code: grpc.StatusCode, message: str):
    super().__init__(message)
    self.code = code
    self.message = message


def invalid(message: str) -> ServingError:
  return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


class Deadline:
  """The time a request may still take; `check()` raises DEADLINE_EXCEEDED once it is spent.

  `is_active`, when given (gRPC's `context.is_active`), also ends the work once the client has
  gone (cancelled, disconnected or its own deadline passed).
  """

  def __init__(self, seconds: float, is_active=None):
    self.expires = time.monotonic() + max(0.0, seconds)
    self._is_active = is_active

  @classmethod
  def for_grpc(cls, context, timeout_ms: int) -> "Deadline":
    seconds = timeout_ms / 1000.0
    remaining = context.time_remaining()
    if remaining is not None:
      seconds = min(seconds, remaining)
    return cls(seconds, context.is_active)

  def remaining(self) -> float:
    return self.expires - time.monotonic()

  def check(self, what: str = "request") -> None:
    if self._is_active is not None and not self._is_active():
      raise ServingError(grpc.StatusCode.CANCELLED,
                         f"Client cancelled or disconnected; {what} abandoned")
    if self.remaining() <= 0:
      raise ServingError(grpc.StatusCode.DEADLINE_EXCEEDED,
                         f"Deadline exceeded; {what} abandoned")


def shape_text(proto) -> str:
  if proto.unknown_rank:
    return "<unknown>"
  return "[" + ",".join("?" if d.size < 0 else str(d.size) for d in proto.dim) + "]"


def shape_compatible(shape: tuple, proto) -> bool:
  if proto.unknown_rank:
    return True
  if len(shape) != len(proto.dim):
    return False
  return all(dim.size < 0 or dim.size == size for dim, size in zip(proto.dim, shape))


def max_elements(info, max_rows: int) -> int:
  """The most values one input may carry: the row limit times the fixed dims."""
  if info.tensor_shape.unknown_rank:
    return max_rows
  count = 1
  for dim in info.tensor_shape.dim:
    count *= max_rows if dim.size < 0 else dim.size
  return count


def check_rows(signature_name: str, alias: str, shape: tuple, info, max_rows: int) -> None:
  """Rejects a batch dimension (a `?` leading dim of the signature) beyond `max_rows`."""
  dims = info.tensor_shape.dim
  if shape and dims and dims[0].size < 0 and shape[0] > max_rows:
    raise invalid(f"input {alias} has {shape[0]} rows; signature '{signature_name}' accepts at "
                  f"most {max_rows} per request (--max_samples_per_request)")


def check_count_value(alias: str, value, max_rows: int) -> None:
  """`num_samples` / `num_steps` beyond `max_rows` (the graph checks the lower bound)."""
  if alias in COUNT_INPUTS and np.ndim(value) == 0 and int(value) > max_rows:
    raise invalid(f"{alias} is {int(value)}; at most {max_rows} per request "
                  "(--max_samples_per_request)")


def check_tensor_proto(signature_name: str, alias: str, proto, info, max_rows: int) -> None:
  """Checks a request TensorProto against its signature input before it is converted.

  dtype, shape (rank, fixed dims, rows <= max_rows) and the values actually sent: exactly one
  value per element (bytes in `tensor_content`, or the typed `*_val` field), or one single
  value that TensorFlow repeats over the (already bounded) shape. Anything else is
  INVALID_ARGUMENT, as TF Serving answers a tensor it cannot parse.
  """
  if proto.dtype != info.dtype:
    got = types_pb2.DataType.Name(proto.dtype) if proto.dtype in types_pb2.DataType.values() \
        else str(proto.dtype)
    raise invalid(f"Expected input {alias} to be {types_pb2.DataType.Name(info.dtype)} but got "
                  f"{got.replace('DT_', '').lower()}.")
  if proto.tensor_shape.unknown_rank:
    raise invalid(f"tensor parsing error: {alias}: unknown rank")
  shape = tuple(dim.size for dim in proto.tensor_shape.dim)
  if any(size < 0 for size in shape):
    raise invalid(f"tensor parsing error: {alias}: negative dimension in {list(shape)}")
  if not shape_compatible(shape, info.tensor_shape):
    raise invalid(f"input {alias} has shape [{','.join(map(str, shape))}]; signature "
                  f"'{signature_name}' expects {shape_text(info.tensor_shape)}")
  check_rows(signature_name, alias, shape, info, max_rows)
  elements = int(np.prod(shape, dtype=object)) if shape else 1
  if elements > max_elements(info, max_rows):
    raise invalid(f"input {alias} declares {elements} values; at most "
                  f"{max_elements(info, max_rows)} per request")
  field, per_element = _VALUE_FIELDS.get(proto.dtype, (None, 1))
  if field is None:
    raise invalid(f"tensor parsing error: {alias}: unsupported dtype")
  if proto.tensor_content:
    if proto.dtype == types_pb2.DT_STRING or \
        len(proto.tensor_content) != elements * _ITEM_BYTES[proto.dtype]:
      raise invalid(f"tensor parsing error: {alias}: {len(proto.tensor_content)} bytes of "
                    f"content for shape [{','.join(map(str, shape))}] of "
                    f"{types_pb2.DataType.Name(proto.dtype)}")
    return
  count = len(getattr(proto, field)) // per_element
  if count != elements and not (count == 1 and elements >= 1):
    raise invalid(f"tensor parsing error: {alias}: {count} values for shape "
                  f"[{','.join(map(str, shape))}] ({elements} elements)")


def check_int_range(alias: str, array: np.ndarray, dtype_enum: int) -> None:
  """JSON integers outside the input's dtype range: 400, naming the value (no wrap-around)."""
  bounds = _INT_RANGES.get(dtype_enum)
  if bounds is None or array.size == 0:
    return
  if array.dtype.kind == "O":
    values = [int(v) for v in array.ravel()]
    lowest, highest = min(values), max(values)
  else:
    lowest, highest = int(array.min()), int(array.max())
  for value in (lowest, highest):
    if not bounds[0] <= value <= bounds[1]:
      raise invalid(f"input {alias}: value {value} is out of range for "
                    f"{types_pb2.DataType.Name(dtype_enum).replace('DT_', '').lower()} "
                    f"[{bounds[0]}, {bounds[1]}]")


def max_rows_from_metadata(metadata: Optional[dict]) -> Optional[int]:
  """The export's declared `max_samples_per_request`, if its metadata has one."""
  if not isinstance(metadata, dict):
    return None
  value = metadata.get("max_samples_per_request")
  if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
    return value
  return None
