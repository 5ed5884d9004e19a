"""Samples the generator over TF Serving's gRPC API and writes a PNG grid.

  python -m serving.client --server=127.0.0.1:8500 --model_name=dcgan --num_samples=64 \
      --seed=7 --out=samples.png [--out_dir=DIR] [--signature=sample] [--timeout=10]
  python -m serving.client --model_name=cgan --label=7 --out=sevens.png   # a conditional model
  python -m serving.client --model_name=cgan_fashion --label=sneaker       # by class name

Signatures (`--signature`):
  sample        images of seeds seed, seed+1, ..., seed+num_samples-1 (the default)
  sample_seeds  the same images, requested as a list of seeds (the batchable signature)
  interpolate   num_samples images along the slerp path from seed's latent to seed+1's
  serving_default  latents drawn on the client from numpy's generator seeded with --seed

Class-conditional models: `--label` asks for one class, by index or by name (the model's
`class_names`); without it the classes vary (`serving.client_lib`).

The work: `serving.client_lib`.
"""

import sys

from absl import flags

from serving import client_lib
from tfgan_app.common import cli
from tfgan_app.exporting import contract

_PROGRAM = "python -m serving.client"


def define_flags(flag_values) -> None:
  """The command's flags, on their own `FlagValues` (called only from `main`)."""
  flags.DEFINE_string("server", "127.0.0.1:8500", "gRPC address host:port of the model server.",
                      flag_values=flag_values)
  flags.DEFINE_string("model_name", "dcgan", "Model name on the server.",
                      flag_values=flag_values)
  flags.DEFINE_integer("num_samples", 64, "Images to request (>= 1; the export's limit is "
                       "256 unless exported otherwise).", lower_bound=1, flag_values=flag_values)
  flags.DEFINE_integer("seed", 0, "First seed; image i is the image of seed + i.",
                       flag_values=flag_values)
  flags.DEFINE_enum("signature", contract.SAMPLE_SIGNATURE, client_lib.SIGNATURES,
                    "Signature to call.", flag_values=flag_values)
  flags.DEFINE_integer("version", None, "Model version (default: the newest served).",
                       flag_values=flag_values)
  flags.DEFINE_string("out", "samples.png", "PNG grid of all images ('' to skip).",
                      flag_values=flag_values)
  flags.DEFINE_string("out_dir", None, "Also write each image as DIR/sample_<i>.png.",
                      flag_values=flag_values)
  flags.DEFINE_string("label", None,
                      "Class-conditional models: the class of every image, as an index "
                      "(0, 1, ...) or a class name (e.g. sneaker); -1 with --signature=sample: "
                      "each image's class drawn from its seed. Default: varied classes.",
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
    result = client_lib.sample(values.server, values.model_name, values.num_samples,
                               values.seed, values.signature, values.timeout, values.version,
                               values.label)
    client_lib.write_outputs(result, values.out, values.out_dir)
  except client_lib.ClientError as error:
    print(f"{_PROGRAM}: error: {error}", file=sys.stderr)
    return 1
  except OSError as error:
    print(f"{_PROGRAM}: error: cannot write {error.filename}: {error.strerror}",
          file=sys.stderr)
    return 1
  where = " and ".join(filter(None, [values.out, values.out_dir]))
  label = f", class {result['label']}" if result["label"] is not None else ""
  print(f"Wrote {len(result['images'])} images from {values.model_name} version "
        f"{result['version']} ({values.signature}{label}) to {where or 'nowhere'}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
