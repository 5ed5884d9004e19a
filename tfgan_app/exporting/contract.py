"""The export contract between the exporter, TF Serving clients and `serving/`: signature names,
input and output tensor names, their dtypes, the files beside a version, the request cap.

Imports neither Keras nor TensorFlow, so that `serving/` (and any client) can use the names
without the training code; dtypes are numpy/TensorFlow dtype names as strings. Never hard-code
generated tensor names such as `input_1`: these constants are the names the export gives.

  serving_default  latents float32 [N, latent_dim]        -> images uint8 [N, H, W, C]
  sample           num_samples int32 [], seed int64 []    -> images, png_bytes string [N]
  sample_seeds     seeds int64 [N]                        -> images, png_bytes
  interpolate      seed_a int64 [], seed_b int64 [], num_steps int32 []
                                                           -> images, png_bytes [num_steps]

A generator of points (toy distributions) outputs `samples` float32 [N, D] instead.

A class-conditional generator (metadata `num_classes` > 0) takes a class with every signature
(`CONDITIONAL_SIGNATURE_INPUTS`), and has one more signature, `class_names`:

  serving_default  latents float32 [N, latent_dim], labels int32 [N]
  sample           num_samples int32 [], seed int64 [], label int32 []  (-1: from the seeds)
  sample_seeds     seeds int64 [N], labels int32 [N]
  interpolate      seed_a int64 [], seed_b int64 [], num_steps int32 [], label int32 []
  class_names      (no inputs)                          -> class_names string [num_classes]

Labels outside [0, num_classes) (and -1 anywhere but `sample`) are refused by the graph with
INVALID_ARGUMENT. `sample` with `label` = -1 draws the class of each row from its seed: the
class of seed `s` is `tf.random.stateless_uniform([], seed=[s, 1], minval=0,
maxval=num_classes, dtype=tf.int32)` (`RANDOM_LABEL`).
"""

import json
import os
import typing

# Signature names.
SERVING_SIGNATURE = "serving_default"
SAMPLE_SIGNATURE = "sample"
SAMPLE_SEEDS_SIGNATURE = "sample_seeds"
INTERPOLATE_SIGNATURE = "interpolate"
# Input tensor names.
LATENTS = "latents"
NUM_SAMPLES = "num_samples"
SEED = "seed"
SEEDS = "seeds"
SEED_A = "seed_a"
SEED_B = "seed_b"
NUM_STEPS = "num_steps"
LABELS = "labels"  # Conditional exports: one class per row.
LABEL = "label"  # Conditional exports: one class for the whole request.
# Output tensor names.
IMAGES = "images"
SAMPLES = "samples"  # Exports of point generators (toy distributions) instead of images.
PNG_BYTES = "png_bytes"  # Ends in "_bytes": TF Serving's REST API base64-encodes it.
CLASS_NAMES = "class_names"  # Conditional exports: the `class_names` signature's output.
# Conditional exports only: the class names, in label order (no inputs).
CLASS_NAMES_SIGNATURE = "class_names"
# `sample`'s `label` asking for the class of each row to be drawn from its seed.
RANDOM_LABEL = -1

# Input names of each signature, and their dtypes (names accepted by numpy and tf.as_dtype).
SIGNATURE_INPUTS = {
    SERVING_SIGNATURE: {LATENTS: "float32"},
    SAMPLE_SIGNATURE: {NUM_SAMPLES: "int32", SEED: "int64"},
    SAMPLE_SEEDS_SIGNATURE: {SEEDS: "int64"},
    INTERPOLATE_SIGNATURE: {SEED_A: "int64", SEED_B: "int64", NUM_STEPS: "int32"},
}
# The same for class-conditional exports (metadata `num_classes` > 0).
CONDITIONAL_SIGNATURE_INPUTS = {
    SERVING_SIGNATURE: {LATENTS: "float32", LABELS: "int32"},
    SAMPLE_SIGNATURE: {NUM_SAMPLES: "int32", SEED: "int64", LABEL: "int32"},
    SAMPLE_SEEDS_SIGNATURE: {SEEDS: "int64", LABELS: "int32"},
    INTERPOLATE_SIGNATURE: {SEED_A: "int64", SEED_B: "int64", NUM_STEPS: "int32",
                            LABEL: "int32"},
    CLASS_NAMES_SIGNATURE: {},
}
# Output dtypes: images and PNGs for image generators, samples for point generators.
OUTPUT_DTYPES = {IMAGES: "uint8", PNG_BYTES: "string", SAMPLES: "float32"}

# Files beside a version's saved_model.pb: `<version>/assets.extra/<file>`.
EXTRA_DIR = "assets.extra"
METADATA_FILE = "tfgan_app_metadata.json"
# Metadata key: the largest batch every signature accepts (checked in the graph).
MAX_SAMPLES_PER_REQUEST = "max_samples_per_request"
# TF Serving replays these requests when it loads a version, before it serves it.
WARMUP_FILE = "tf_serving_warmup_requests"
# The largest num_samples / number of seeds / num_steps a request may ask for, by default.
DEFAULT_MAX_SAMPLES_PER_REQUEST = 256

# Metadata keys every export records (`read_metadata`), besides `flags` and `precision`.
METADATA_KEYS = ("model_name", "step", "latent_dim", "dataset", "architecture", "ema")
IMAGE_SHAPE_KEY = "image_shape"  # [H, W, C], image generators.
SAMPLE_SHAPE_KEY = "sample_shape"  # [D], point generators.
PRECISION_KEY = "precision"
# Conditional exports: the number of classes (0 or absent: unconditional) and their names.
NUM_CLASSES_KEY = "num_classes"
CLASS_NAMES_KEY = "class_names"


def version_dir(export_dir: str, model_name: str, version: int) -> str:
  """`<export_dir>/<model_name>/<version>`: the layout TF Serving polls."""
  return os.path.join(export_dir, model_name, str(int(version)))


def read_metadata(version_path: str) -> dict:
  """The metadata JSON written next to an export version.

  Raises:
    OSError, ValueError: missing or unreadable.
  """
  with open(os.path.join(version_path, EXTRA_DIR, METADATA_FILE)) as f:
    return json.load(f)


def request_limit(version_path: str) -> typing.Optional[int]:
  """The most rows one call of the export's signatures accepts (`max_samples_per_request`);
  None for exports that record none (written before the key: no limit on `serving_default`).
  Callers that generate many samples split them into batches of at most this."""
  try:
    value = read_metadata(version_path).get(MAX_SAMPLES_PER_REQUEST)
  except (OSError, ValueError):
    return None
  return int(value) if value else None


def num_classes(metadata: typing.Optional[dict]) -> int:
  """The classes a generator export is conditioned on (its metadata's `num_classes`); 0 for an
  unconditional export or one without metadata."""
  if not isinstance(metadata, dict):
    return 0
  value = metadata.get(NUM_CLASSES_KEY) or 0
  return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0
