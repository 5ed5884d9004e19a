"""The gRPC client's library: requests for each signature, `sample`, PNG output.

Talks to a real `tensorflow_model_server` or to `python -m serving.server` alike: a stock
`PredictionServiceStub` and the signature and tensor names of `tfgan_app.exporting.contract`.

Signatures (`--signature`):
  sample        images of seeds seed, seed+1, ..., seed+num_samples-1 (the default)
  sample_seeds  the same images, requested as a list of seeds (the batchable signature)
  interpolate   num_samples images along the slerp path from seed's latent to seed+1's
  serving_default  latents drawn on the client from numpy's generator seeded with --seed

Class-conditional models (their signatures take `labels` / `label`): `label` asks for one class,
by index or by one of the names the model's `class_names` signature lists (case-insensitive).
Without it `sample` draws each image's class from its seed (label -1), `sample_seeds` and
`serving_default` cycle through the classes (image i: class i mod num_classes) and
`interpolate` stays in class 0.
"""

import os
from typing import Dict, List, Optional, Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tfgan_app.common import atomic
from tfgan_app.common import images as images_lib
from tfgan_app.exporting import contract as export

SIGNATURES = (export.SAMPLE_SIGNATURE, export.SAMPLE_SEEDS_SIGNATURE,
              export.INTERPOLATE_SIGNATURE, export.SERVING_SIGNATURE)


class ClientError(RuntimeError):
  """A request failed; the message is one line that says why."""


def _describe_rpc_error(error: grpc.RpcError, server: str, model_name: str,
                        timeout: float) -> str:
  code = error.code()
  details = (error.details() or "").strip().splitlines()
  detail = details[0] if details else ""
  if code == grpc.StatusCode.UNAVAILABLE:
    return f"cannot reach a model server at {server} ({detail or 'unavailable'})"
  if code == grpc.StatusCode.DEADLINE_EXCEEDED:
    return f"no answer from {server} within --timeout={timeout:g} s"
  if code == grpc.StatusCode.NOT_FOUND:
    return f"model {model_name!r} not found on {server}: {detail}"
  return f"{server} answered {code.name}: {detail}"


def build_request(model_name: str, signature: str, num_samples: int, seed: int,
                  latent_dim: Optional[int] = None, version: Optional[int] = None,
                  label: Optional[int] = None,
                  num_classes: int = 0) -> predict_pb2.PredictRequest:
  """The PredictRequest for `num_samples` images from `seed` on one of the signatures.

  `num_classes` > 0: a class-conditional model; `label` the class asked for (None: the defaults
  of the module docstring).
  """
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = signature
  if version is not None:
    request.model_spec.version.value = version
  if signature == export.SAMPLE_SIGNATURE:
    inputs = {export.NUM_SAMPLES: np.int32(num_samples), export.SEED: np.int64(seed)}
  elif signature == export.SAMPLE_SEEDS_SIGNATURE:
    inputs = {export.SEEDS: np.arange(seed, seed + num_samples, dtype=np.int64)}
  elif signature == export.INTERPOLATE_SIGNATURE:
    inputs = {export.SEED_A: np.int64(seed), export.SEED_B: np.int64(seed + 1),
              export.NUM_STEPS: np.int32(num_samples)}
  elif signature == export.SERVING_SIGNATURE:
    latents = np.random.default_rng(seed).standard_normal((num_samples, latent_dim))
    inputs = {export.LATENTS: latents.astype(np.float32)}
  else:
    raise ClientError(f"unknown --signature={signature}; accepted: {', '.join(SIGNATURES)}")
  if num_classes:
    if signature in (export.SAMPLE_SIGNATURE, export.INTERPOLATE_SIGNATURE):
      default = export.RANDOM_LABEL if signature == export.SAMPLE_SIGNATURE else 0
      inputs[export.LABEL] = np.int32(default if label is None else label)
    elif label is None:
      inputs[export.LABELS] = (np.arange(num_samples) % num_classes).astype(np.int32)
    else:
      inputs[export.LABELS] = np.full([num_samples], label, np.int32)
  for name, value in inputs.items():
    request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
  return request


def _signature_defs(stub, model_name: str, timeout: float, version: Optional[int]):
  request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
  request.model_spec.name = model_name
  if version is not None:
    request.model_spec.version.value = version
  response = stub.GetModelMetadata(request, timeout=timeout)
  signatures = get_model_metadata_pb2.SignatureDefMap()
  response.metadata["signature_def"].Unpack(signatures)
  return signatures.signature_def


def class_names(stub, model_name: str, timeout: float,
                version: Optional[int] = None) -> List[str]:
  """A conditional model's class names, in label order (its `class_names` signature)."""
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = export.CLASS_NAMES_SIGNATURE
  if version is not None:
    request.model_spec.version.value = version
  response = stub.Predict(request, timeout=timeout)
  return [name.decode("utf-8") for name in
          tf.make_ndarray(response.outputs[export.CLASS_NAMES]).tolist()]


def resolve_label(label: str, names: Sequence[str]) -> int:
  """`--label`: a class index (any integer; the model checks its range) or one of `names`,
  matched case-insensitively.

  Raises:
    ClientError: neither; the message lists the accepted names.
  """
  text = label.strip()
  try:
    return int(text)
  except ValueError:
    pass
  folded = [name.casefold() for name in names]
  if text.casefold() in folded:
    return folded.index(text.casefold())
  raise ClientError(f"unknown class --label={label}; accepted: 0 to {len(names) - 1} or "
                    f"{', '.join(names)}")


def sample(server: str, model_name: str, num_samples: int, seed: int,
           signature: str = export.SAMPLE_SIGNATURE, timeout: float = 10.0,
           version: Optional[int] = None, label: Optional[str] = None) -> Dict[str, object]:
  """Requests images; returns {"images": uint8 [N,H,W,C], "png_bytes": [N] or None, "version",
  "label": the class index asked for, or None}. `label`: a class-conditional model's class, by
  index or name (`resolve_label`).

  Raises:
    ClientError: the server is unreachable, the model unknown, the request refused, or a
      `label` for a model without classes or naming none of its classes.
  """
  with grpc.insecure_channel(server, options=[
      ("grpc.max_receive_message_length", 256 << 20)]) as channel:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    try:
      signatures = _signature_defs(stub, model_name, timeout, version)
      inputs = signatures[export.SERVING_SIGNATURE].inputs
      latent_dim = inputs[export.LATENTS].tensor_shape.dim[-1].size
      names = (class_names(stub, model_name, timeout, version)
               if export.LABELS in inputs else [])
      if label is not None and not names:
        raise ClientError(f"model {model_name!r} is not class-conditional (its signatures "
                          "take no labels); drop --label")
      index = resolve_label(label, names) if label is not None else None
      request = build_request(model_name, signature, num_samples, seed, latent_dim, version,
                              index, len(names))
      response = stub.Predict(request, timeout=timeout)
    except grpc.RpcError as error:
      raise ClientError(_describe_rpc_error(error, server, model_name, timeout)) from None
  if export.IMAGES not in response.outputs:
    raise ClientError(f"signature {signature!r} returned no {export.IMAGES!r} output")
  result = {"images": tf.make_ndarray(response.outputs[export.IMAGES]),
            "png_bytes": None, "version": response.model_spec.version.value,
            "label": index}
  if export.PNG_BYTES in response.outputs:
    result["png_bytes"] = list(tf.make_ndarray(response.outputs[export.PNG_BYTES]))
  return result


def write_outputs(result: dict, out: Optional[str], out_dir: Optional[str]) -> None:
  """The grid to `out`; one `sample_<i>.png` per image to `out_dir`."""
  if out:
    images_lib.write_png(out, images_lib.grid(result["images"]))
  if out_dir:
    os.makedirs(out_dir, exist_ok=True)
    for index, image in enumerate(result["images"]):
      path = os.path.join(out_dir, f"sample_{index:04d}.png")
      if result["png_bytes"] is not None:
        atomic.write_bytes(path, result["png_bytes"][index])
      else:
        images_lib.write_png(path, image)
