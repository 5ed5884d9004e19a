"""TF Serving's REST JSON bodies <-> the signature's tensors: inputs in the "instances" (row) or
"inputs" (columnar) format, integers range-checked against the input's dtype (no wrap-around),
base64 `{"b64": ...}` for `*_bytes` outputs."""

import base64
from typing import Dict

import numpy as np
import tensorflow as tf

from serving import limits
from serving.limits import ServingError


def json_value(alias: str, value: np.ndarray):
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
    if set(value) != {"b64"} or not isinstance(value["b64"], str):
      raise limits.invalid('JSON object in a tensor must be {"b64": "..."}')
    try:
      return base64.b64decode(value["b64"], validate=True)
    except (ValueError, TypeError) as error:
      raise limits.invalid(f"bad base64 string: {error}") from error
  if isinstance(value, list):
    return [_decode_b64(item) for item in value]
  return value


def _json_to_array(alias: str, value, info) -> np.ndarray:
  dtype = tf.dtypes.as_dtype(info.dtype)
  try:
    if dtype == tf.string:
      return np.array(_decode_b64(value), dtype=object)
    array = np.array(value)
    if array.dtype.kind == "O" and dtype.is_integer and all(
        isinstance(v, int) and not isinstance(v, bool) for v in np.ravel(array)):
      limits.check_int_range(alias, array, info.dtype)  # Integers beyond 64 bits.
    if array.dtype.kind not in "biuf" or (array.dtype.kind == "f" and dtype.is_integer):
      raise ValueError(f"got {array.dtype.name} values")
    if array.dtype.kind == "b" and dtype != tf.bool:
      raise ValueError("got booleans")
    if dtype.is_integer:
      limits.check_int_range(alias, array, info.dtype)
    return array.astype(dtype.as_numpy_dtype)
  except ServingError:
    raise
  except (ValueError, TypeError, OverflowError) as error:
    raise limits.invalid(f"input {alias} is not a {dtype.name} tensor: {error}") from error


def rest_inputs(body: dict, signature) -> (Dict[str, np.ndarray], bool):
  """Numpy inputs from a REST predict body, and whether it used the row format."""
  if ("inputs" in body) == ("instances" in body):
    raise limits.invalid("JSON Value must have exactly one of 'instances' or 'inputs'")
  names = list(signature.inputs)
  if "inputs" in body:
    inputs = body["inputs"]
    if not isinstance(inputs, dict) or (len(names) == 1 and names[0] not in inputs):
      inputs = {names[0]: inputs} if len(names) == 1 else inputs
    if not isinstance(inputs, dict):
      raise limits.invalid("'inputs' must be an object of named inputs for a signature with "
                           f"{len(names)} inputs")
    arrays = {}
    for alias, value in inputs.items():
      info = signature.inputs.get(alias)
      # An unknown alias: Predict names the error.
      arrays[alias] = _json_to_array(alias, value, info) if info is not None \
          else np.zeros(0)
    return arrays, False
  instances = body["instances"]
  if not isinstance(instances, list) or not instances:
    raise limits.invalid("'instances' must be a non-empty list")
  if all(isinstance(row, dict) and "b64" not in row for row in instances):
    keys = set(instances[0])
    if any(set(row) != keys for row in instances):
      raise limits.invalid("every instance must name the same inputs")
    columns = {alias: [row[alias] for row in instances] for alias in keys}
  elif len(names) == 1:
    columns = {names[0]: instances}
  else:
    raise limits.invalid("instances must be objects of named inputs for a signature with "
                         f"{len(names)} inputs")
  arrays = {alias: (_json_to_array(alias, value, signature.inputs[alias])
                    if alias in signature.inputs else np.zeros(0))
            for alias, value in columns.items()}
  return arrays, True


def value_bound(servable) -> int:
  """The most JSON values (commas, brackets) a valid predict body for `servable` can need."""
  largest = 0
  for signature in servable.signature_defs.values():
    per_request = sum(limits.max_elements(info, servable.max_rows) + servable.max_rows
                      for info in signature.inputs.values())
    largest = max(largest, per_request)
  return largest + 64


def response(outputs: dict, rows: bool) -> dict:
  if rows:
    if len(outputs) == 1:
      (alias, value), = outputs.items()
      return {"predictions": json_value(alias, value)}
    count = min(len(value) for value in outputs.values()) if outputs else 0
    columns = {alias: json_value(alias, value) for alias, value in outputs.items()}
    return {"predictions": [{alias: column[i] for alias, column in columns.items()}
                            for i in range(count)]}
  if len(outputs) == 1:
    (alias, value), = outputs.items()
    return {"outputs": json_value(alias, value)}
  return {"outputs": {alias: json_value(alias, value) for alias, value in outputs.items()}}
