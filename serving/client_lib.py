"""The gRPC client's library: requests for each signature, `sample`, PNG output.

Talks to a real `tensorflow_model_server` or to `python -m serving.server` alike: a stock
`PredictionServiceStub` and the signature and tensor names of `tfgan_app.exporting.contract`.

Signatures (`--signature`):
  sample        images of seeds seed, seed+1, ..., seed+num_samples-1 (the default)
  sample_seeds  the same images, requested as a list of seeds (the batchable signature)
  interpolate   num_samples images along the slerp path from seed's latent to seed+1's
  serving_default  latents drawn on the client from numpy's generator seeded with --seed
"""

import os
from typing import Dict, Optional

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
                  latent_dim: Optional[int] = None,
                  version: Optional[int] = None) -> predict_pb2.PredictRequest:
  """The PredictRequest for `num_samples` images from `seed` on one of the signatures."""
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
  for name, value in inputs.items():
    request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
  return request


def _latent_dim(stub, model_name: str, timeout: float) -> int:
  request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
  request.model_spec.name = model_name
  response = stub.GetModelMetadata(request, timeout=timeout)
  signatures = get_model_metadata_pb2.SignatureDefMap()
  response.metadata["signature_def"].Unpack(signatures)
  shape = signatures.signature_def[export.SERVING_SIGNATURE].inputs[export.LATENTS].tensor_shape
  return shape.dim[-1].size


def sample(server: str, model_name: str, num_samples: int, seed: int,
           signature: str = export.SAMPLE_SIGNATURE, timeout: float = 10.0,
           version: Optional[int] = None) -> Dict[str, object]:
  """Requests images; returns {"images": uint8 [N,H,W,C], "png_bytes": [N] or None, "version"}.

  Raises:
    ClientError: the server is unreachable, the model unknown, or the request refused.
  """
  with grpc.insecure_channel(server, options=[
      ("grpc.max_receive_message_length", 256 << 20)]) as channel:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    try:
      latent_dim = (_latent_dim(stub, model_name, timeout)
                    if signature == export.SERVING_SIGNATURE else None)
      request = build_request(model_name, signature, num_samples, seed, latent_dim, version)
      response = stub.Predict(request, timeout=timeout)
    except grpc.RpcError as error:
      raise ClientError(_describe_rpc_error(error, server, model_name, timeout)) from None
  if export.IMAGES not in response.outputs:
    raise ClientError(f"signature {signature!r} returned no {export.IMAGES!r} output")
  result = {"images": tf.make_ndarray(response.outputs[export.IMAGES]),
            "png_bytes": None, "version": response.model_spec.version.value}
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
