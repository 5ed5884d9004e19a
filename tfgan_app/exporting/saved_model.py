"""Exports the generator as a SavedModel that TensorFlow Serving loads.

  python -m tfgan_app.export --workdir=runs/dcgan [--export_dir=DIR] [--model_name=NAME]
  # exports the newest checkpoint of a run (the EMA generator when there is one); seconds

Layout: `<export_dir>/<model_name>/<version>/`, the version being the training step, written
under a temporary name and renamed into place so that TF Serving, which polls the directory,
never sees half a model.

Signatures (input and output names are the constants below; clients import them):

  serving_default  latents float32 [N, latent_dim]        -> images uint8 [N, H, W, C]
  sample           num_samples int32 [], seed int64 []    -> images, png_bytes string [N]
  sample_seeds     seeds int64 [N]                        -> images, png_bytes
  interpolate      seed_a int64 [], seed_b int64 [], num_steps int32 []
                                                           -> images, png_bytes [num_steps]

A generator of points (toy distributions: output [N, D]) has the same signatures and inputs with
one output instead: `samples` float32 [N, D] (no PNGs).

A class-conditional generator (`num_classes` > 0) gets the same signatures with a class input
each (`labels` int32 [N], or `label` int32 [] with -1 drawing each row's class from its seed),
plus `class_names`, and its metadata records `num_classes` and `class_names`:
`tfgan_app.exporting.conditional`.

Seeds and latents: the latent of seed `s` is
`tf.random.stateless_normal([latent_dim], seed=[s, 0])` (`latents_from_seeds`). Row `i` of
`sample(num_samples, seed)` is the image of seed `seed + i`, so it equals
`sample_seeds(seeds=[seed + i])`; the TF Serving batcher can batch `sample_seeds` (every input
has a batch dimension) but not `sample`. `interpolate` walks the great circle (slerp) from the
latent of `seed_a` (row 0) to that of `seed_b` (last row) in `num_steps` equal angle steps.

Inputs are validated inside the graph (`num_samples`, the number of seeds and the number of
latent rows from 1 to `max_samples_per_request`, `num_steps` from 2 to it), so TF Serving itself
answers a bad request with INVALID_ARGUMENT instead of running out of memory. The limit is
recorded in the metadata under `max_samples_per_request`. Exports written before the
`serving_default` check run any number of latent rows; they load as before. Files are readable
by other users and staging directories of killed exports are cleaned (`staging`).

Why not `tf.saved_model.save(module)` with the Keras model as an attribute: Keras 3 wraps each
`tf.Variable`, and under TF Serving's C++ loader the restored copy is not the one the traced
functions read ("Could not find variable ...", shared/notes/stack.md §3). The module below tracks
only the raw variables and reaches the Keras model through a closure: one copy of each weight,
restored where the graph reads it.
"""

import json
import os
import typing

import keras
import numpy as np
import tensorflow as tf

from tfgan_app.common import atomic
# The contract (names, dtypes, files) lives in `contract`, which imports no Keras; re-exported
# here because the exporter's users reach it as `saved_model.<NAME>`.
from tfgan_app.exporting.contract import (  # pylint: disable=g-multiple-import,unused-import
    CLASS_NAMES, CLASS_NAMES_KEY, CLASS_NAMES_SIGNATURE, DEFAULT_MAX_SAMPLES_PER_REQUEST,
    EXTRA_DIR, IMAGES, INTERPOLATE_SIGNATURE, LABEL, LABELS, LATENTS, MAX_SAMPLES_PER_REQUEST,
    METADATA_FILE, NUM_CLASSES_KEY, NUM_SAMPLES, NUM_STEPS, PNG_BYTES, RANDOM_LABEL,
    SAMPLE_SEEDS_SIGNATURE, SAMPLE_SIGNATURE, SAMPLES, SEED, SEED_A, SEED_B, SEEDS,
    SERVING_SIGNATURE, SIGNATURE_INPUTS, WARMUP_FILE,
    read_metadata, request_limit, version_dir)
from tfgan_app.exporting import conditional
from tfgan_app.exporting import staging as staging_lib
# The signatures' ops; re-exported because the exporter's users reach them here.
from tfgan_app.exporting.graph_ops import (  # pylint: disable=g-multiple-import,unused-import
    check_count as _check_count, labels_from_seeds, latents_from_seeds, slerp, to_uint8)
from tfgan_app.exporting.staging import (  # pylint: disable=g-multiple-import,unused-import
    STAGING_PREFIX, STALE_STAGING_SECONDS, remove_stale_staging)


class ExportError(RuntimeError):
  """The generator cannot be exported (non-finite weights or outputs, bad destination)."""


def _call(generator: keras.Model, latents: tf.Tensor) -> tf.Tensor:
  """The generator's output for `latents`; a conditional one's for the classes 0, 1, ... in turn."""
  num_classes = conditional.num_classes_of(generator)
  if not num_classes:
    return generator(latents, training=False)
  labels = tf.range(tf.shape(latents)[0], dtype=tf.int32) % num_classes
  return generator(latents, labels=labels, training=False)


def generates_points(generator: keras.Model, latent_dim: int) -> bool:
  """True for a generator of points [N, D] (toy data), False for images [N, H, W, C]."""
  rank = len(_call(generator, tf.zeros([1, latent_dim])).shape)
  if rank not in (2, 4):
    raise ExportError(f"the generator outputs rank-{rank} tensors; exportable: images "
                      "[N, H, W, C] or points [N, D]")
  return rank == 2


class GeneratorExportModule(tf.Module):
  """A `tf.Module` with the generator's serving signatures (see the module docstring)."""

  def __init__(self, generator: keras.Model, latent_dim: int,
               max_samples_per_request: int = DEFAULT_MAX_SAMPLES_PER_REQUEST):
    super().__init__(name="generator_export")
    # Raw tf.Variables only (see the module docstring).
    self._weights = [v.value for v in generator.variables]

    def generate(latents):
      return generator(latents, training=False)

    self._generate = generate
    self.points = generates_points(generator, latent_dim)
    self.latent_dim = latent_dim
    self.max_samples_per_request = int(max_samples_per_request)
    self.serve = tf.function(
        self._serve,
        input_signature=[tf.TensorSpec([None, latent_dim], tf.float32, name=LATENTS)])
    self.sample = tf.function(
        self._sample,
        input_signature=[tf.TensorSpec([], tf.int32, name=NUM_SAMPLES),
                         tf.TensorSpec([], tf.int64, name=SEED)])
    self.sample_seeds = tf.function(
        self._sample_seeds, input_signature=[tf.TensorSpec([None], tf.int64, name=SEEDS)])
    self.interpolate = tf.function(
        self._interpolate,
        input_signature=[tf.TensorSpec([], tf.int64, name=SEED_A),
                         tf.TensorSpec([], tf.int64, name=SEED_B),
                         tf.TensorSpec([], tf.int32, name=NUM_STEPS)])

  def _serve(self, latents):
    with tf.control_dependencies(_check_count(
        tf.shape(latents)[0], 1, self.max_samples_per_request, f"the number of {LATENTS}")):
      latents = tf.identity(latents)  # [N, latent_dim]
    return self._generated(latents)

  def _generated(self, latents):
    if self.points:
      return {SAMPLES: tf.cast(self._generate(latents), tf.float32)}  # [N, D]
    return {IMAGES: to_uint8(self._generate(latents))}

  def _outputs(self, latents):
    if self.points:
      return self._generated(latents)
    images = to_uint8(self._generate(latents))  # [N, H, W, C]
    pngs = tf.map_fn(tf.io.encode_png, images, fn_output_signature=tf.string)  # [N]
    return {IMAGES: images, PNG_BYTES: pngs}

  def _sample(self, num_samples, seed):
    with tf.control_dependencies(
        _check_count(num_samples, 1, self.max_samples_per_request, NUM_SAMPLES)):
      seeds = seed + tf.range(tf.cast(num_samples, tf.int64), dtype=tf.int64)  # [N]
    return self._outputs(latents_from_seeds(seeds, self.latent_dim))

  def _sample_seeds(self, seeds):
    with tf.control_dependencies(
        _check_count(tf.size(seeds), 1, self.max_samples_per_request, f"the number of {SEEDS}")):
      seeds = tf.identity(seeds)
    return self._outputs(latents_from_seeds(seeds, self.latent_dim))

  def _interpolate(self, seed_a, seed_b, num_steps):
    with tf.control_dependencies(
        _check_count(num_steps, 2, self.max_samples_per_request, NUM_STEPS)):
      ends = latents_from_seeds(tf.stack([seed_a, seed_b]), self.latent_dim)  # [2, D]
    return self._outputs(slerp(ends[0], ends[1], num_steps))

  def signatures(self):
    return {SERVING_SIGNATURE: self.serve.get_concrete_function(),
            SAMPLE_SIGNATURE: self.sample.get_concrete_function(),
            SAMPLE_SEEDS_SIGNATURE: self.sample_seeds.get_concrete_function(),
            INTERPOLATE_SIGNATURE: self.interpolate.get_concrete_function()}


def check_finite(generator: keras.Model, latent_dim: int, seed: int = 0) -> None:
  """Refuses a generator with NaN/Inf weights or outputs: serving it would serve garbage."""
  for variable in generator.variables:
    if not np.all(np.isfinite(keras.ops.convert_to_numpy(variable))):
      raise ExportError(f"generator weight {variable.path} holds NaN or Inf; not exporting")
  latents = tf.random.stateless_normal([8, latent_dim], seed=[seed, 0])
  outputs = _call(generator, latents)
  if not np.all(np.isfinite(keras.ops.convert_to_numpy(outputs))):
    raise ExportError("generator outputs NaN or Inf; not exporting")


def warmup_requests(model_name: str, latent_dim: int,
                    signatures: typing.Optional[typing.Sequence[str]] = None,
                    num_classes: int = 0) -> list:
  """One small `PredictionLog` per signature (default: all but a conditional export's
  input-less `class_names`), replayed by TF Serving when it loads a version. Under TF Serving's
  `--enable_batching` only the signatures whose inputs all have a batch dimension
  (`serving_default`, `sample_seeds`) can run. `num_classes` > 0: a conditional export's
  requests, with `labels` / `label` (classes 0 and num_classes - 1, and -1 for `sample`)."""
  # Imported here: the export itself needs no serving package.
  from tensorflow_serving.apis import predict_pb2  # pylint: disable=import-outside-toplevel
  from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=import-outside-toplevel
  examples = conditional.warmup_examples(latent_dim, num_classes) if num_classes else {
      SERVING_SIGNATURE: {LATENTS: np.zeros([2, latent_dim], np.float32)},
      SAMPLE_SIGNATURE: {NUM_SAMPLES: np.int32(2), SEED: np.int64(0)},
      SAMPLE_SEEDS_SIGNATURE: {SEEDS: np.array([0, 1], np.int64)},
      INTERPOLATE_SIGNATURE: {SEED_A: np.int64(0), SEED_B: np.int64(1), NUM_STEPS: np.int32(3)},
  }
  unknown = set(signatures or ()) - set(examples)
  if unknown:
    raise ExportError(f"unknown warmup signature(s) {sorted(unknown)}; accepted: "
                      f"{', '.join(examples)}")
  logs = []
  for signature, inputs in examples.items():
    if (signature not in signatures) if signatures is not None else not inputs:
      continue
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    for name, value in inputs.items():
      request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    logs.append(prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)))
  return logs


def export_generator(generator: keras.Model, latent_dim: int, export_dir: str, model_name: str,
                     version: int, metadata: dict, *,
                     max_samples_per_request: int = DEFAULT_MAX_SAMPLES_PER_REQUEST,
                     warmup: bool = True,
                     warmup_signatures: typing.Optional[typing.Sequence[str]] = None) -> str:
  """Writes `<export_dir>/<model_name>/<version>/` atomically and returns its path.

  An existing version directory is left untouched (the same step exports the same weights).

  Args:
    generator: the built Keras generator ([B, latent_dim] -> [B, H, W, C] in [-1, 1], or
      points [B, D]: then the signatures output `samples` instead of images and PNGs). One
      with `num_classes` > 0 is class-conditional, called as `generator(latents,
      labels=int32 [B], training=False)`, and gets the conditional signatures
      (`tfgan_app.exporting.conditional`).
    latent_dim: its latent size.
    export_dir: the export base; the model goes to `<export_dir>/<model_name>/<version>/`.
    model_name: TF Serving's model name.
    version: the integer version (the training step).
    metadata: JSON-serialisable dict written to `assets.extra/tfgan_app_metadata.json`, with
      `max_samples_per_request` added; for a conditional generator also `num_classes` and
      `class_names` (the metadata's own, which must then name num_classes classes, else
      "0", "1", ...).
    max_samples_per_request: the largest `num_samples`, number of seeds or `num_steps` the
      signatures accept.
    warmup: write `assets.extra/tf_serving_warmup_requests`.
    warmup_signatures: the signatures that get a warmup request (default: all). A TF Serving
      with `--enable_batching` needs `(SERVING_SIGNATURE, SAMPLE_SEEDS_SIGNATURE)`: its batcher
      refuses scalar inputs, and a failed warmup request fails the version's load.

  Raises:
    ExportError: non-finite generator, class names that do not fit its classes, or the
      destination cannot be written.
  """
  if max_samples_per_request < 2:
    raise ExportError(f"max_samples_per_request={max_samples_per_request}; must be >= 2")
  num_classes = conditional.num_classes_of(generator)
  metadata = dict(metadata, **{MAX_SAMPLES_PER_REQUEST: int(max_samples_per_request)})
  if num_classes:
    names = metadata.get(CLASS_NAMES_KEY) or [str(label) for label in range(num_classes)]
    if len(names) != num_classes:
      raise ExportError(f"the generator has {num_classes} classes but the metadata names "
                        f"{len(names)} ({', '.join(map(str, names))}); not exporting")
    metadata.update({NUM_CLASSES_KEY: num_classes, CLASS_NAMES_KEY: [str(n) for n in names]})
  # Rejects unknown names early.
  warmup_requests(model_name, latent_dim, warmup_signatures, num_classes)
  check_finite(generator, latent_dim)
  final = version_dir(export_dir, model_name, version)
  parent = os.path.dirname(final)
  staging_lib.remove_stale_staging(parent)
  if os.path.isdir(final):
    return final
  try:
    staging_lib.makedirs_readable(parent)
    # A dot-name in the same directory: TF Serving ignores non-integer names.
    staging = atomic.make_staging_dir(final, prefix=f"{STAGING_PREFIX}{int(version)}-")
  except OSError as error:
    raise ExportError(f"cannot write export under {parent}: {error.strerror}") from error
  # Held until the export is renamed into place: other exporters' cleanup leaves it alone. A
  # filesystem without flock gets no lock; the age rule still protects a running export.
  lock = staging_lib.lock(staging)
  try:
    with atomic.publish_dir(final, staging):
      if num_classes:
        module = conditional.ConditionalExportModule(
            generator, latent_dim, num_classes, metadata[CLASS_NAMES_KEY],
            max_samples_per_request, generates_points(generator, latent_dim))
      else:
        module = GeneratorExportModule(generator, latent_dim, max_samples_per_request)
      tf.saved_model.save(module, staging, signatures=module.signatures())
      extra = os.path.join(staging, EXTRA_DIR)
      os.makedirs(extra, exist_ok=True)
      with open(os.path.join(extra, METADATA_FILE), "w") as f:
        json.dump(metadata, f, indent=2, sort_keys=True)
      if warmup:
        with tf.io.TFRecordWriter(os.path.join(extra, WARMUP_FILE)) as writer:
          for log in warmup_requests(model_name, latent_dim, warmup_signatures, num_classes):
            writer.write(log.SerializeToString())
      staging_lib.make_readable(staging)
  except Exception as error:
    if isinstance(error, ExportError):
      raise
    raise ExportError(f"export to {final} failed: {error}") from error
  finally:
    if lock is not None:
      os.close(lock)
  return final
