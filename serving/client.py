"""Samples the generator over TF Serving's gRPC API and writes a PNG grid.

  python -m serving.client --server=127.0.0.1:8500 --model_name=dcgan --num_samples=64 \
      --seed=7 --out=samples.png [--out_dir=DIR] [--signature=sample] [--timeout=10]

Talks to a real `tensorflow_model_server` or to `python -m serving.server` alike: a stock
`PredictionServiceStub` and the signature and tensor names of `tfgan_app.export`.

Signatures (`--signature`):
  sample        images of seeds seed, seed+1, ..., seed+num_samples-1 (the default)
  sample_seeds  the same images, requested as a list of seeds (the batchable signature)
  interpolate   num_samples images along the slerp path from seed's latent to seed+1's
  serving_default  latents drawn on the client from numpy's generator seeded with --seed
"""

import os
import sys
from typing import Dict, Optional

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tfgan_app import cli
from tfgan_app import export
from tfgan_app import images as images_lib

_PROGRAM = "python -m serving.client"
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
        staging = path + ".tmp"
        with open(staging, "wb") as f:
          f.write(result["png_bytes"][index])
        os.replace(staging, path)
      else:
        images_lib.write_png(path, image)


def define_flags(flag_values) -> None:
  """The command's flags, on their own `FlagValues` (called only from `main`)."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  flags.DEFINE_string("server", "127.0.0.1:8500", "gRPC address host:port of the model server.",
                      flag_values=flag_values)
  flags.DEFINE_string("model_name", "dcgan", "Model name on the server.",
                      flag_values=flag_values)
  flags.DEFINE_integer("num_samples", 64, "Images to request (>= 1; the export's limit is "
                       "256 unless exported otherwise).", lower_bound=1, flag_values=flag_values)
  flags.DEFINE_integer("seed", 0, "First seed; image i is the image of seed + i.",
                       flag_values=flag_values)
  flags.DEFINE_enum("signature", export.SAMPLE_SIGNATURE, SIGNATURES, "Signature to call.",
                    flag_values=flag_values)
  flags.DEFINE_integer("version", None, "Model version (default: the newest served).",
                       flag_values=flag_values)
  flags.DEFINE_string("out", "samples.png", "PNG grid of all images ('' to skip).",
                      flag_values=flag_values)
  flags.DEFINE_string("out_dir", None, "Also write each image as DIR/sample_<i>.png.",
                      flag_values=flag_values)
  flags.DEFINE_float("timeout", 10.0, "Seconds to wait for each answer.",
                     flag_values=flag_values)


def main(argv) -> int:
  """`python -m serving.client`; returns the exit status."""
  values, status = cli.parse_private_flags(
      _PROGRAM, define_flags, argv,
      "--server=HOST:PORT --model_name=NAME --num_samples=N --seed=S --out=FILE.png")
  if values is None:
    return status
  try:
    result = sample(values.server, values.model_name, values.num_samples, values.seed,
                    values.signature, values.timeout, values.version)
    write_outputs(result, values.out, values.out_dir)
  except ClientError as error:
    print(f"{_PROGRAM}: error: {error}", file=sys.stderr)
    return 1
  except OSError as error:
    print(f"{_PROGRAM}: error: cannot write {error.filename}: {error.strerror}",
          file=sys.stderr)
    return 1
  where = " and ".join(filter(None, [values.out, values.out_dir]))
  print(f"Wrote {len(result['images'])} images from {values.model_name} version "
        f"{result['version']} ({values.signature}) to {where or 'nowhere'}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
