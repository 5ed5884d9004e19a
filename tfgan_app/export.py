"""Exports the generator as a SavedModel that TensorFlow Serving loads.

Layout: `<export_dir>/<model_name>/<version>/`, the version being the training step, written
under a temporary name and renamed into place so that TF Serving, which polls the directory,
never sees half a model.

Why not `tf.saved_model.save(module)` with the Keras model as an attribute: Keras 3 wraps each
`tf.Variable`, and under TF Serving's C++ loader the restored copy is not the one the traced
functions read ("Could not find variable ...", shared/notes/stack.md §3). The module below tracks
only the raw variables and reaches the Keras model through a closure: one copy of each weight,
restored where the graph reads it.
"""

import json
import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

# Signature and tensor names: a contract with clients (serving/ imports them).
SERVING_SIGNATURE = "serving_default"
LATENTS = "latents"
IMAGES = "images"
METADATA_FILE = "tfgan_app_metadata.json"


class ExportError(RuntimeError):
  """The generator cannot be exported (non-finite weights or outputs, bad destination)."""


def to_uint8(images: tf.Tensor) -> tf.Tensor:
  """[-1, 1] float images -> uint8 [0, 255], rounding to the nearest level."""
  scaled = (tf.cast(images, tf.float32) + 1.0) * 127.5
  return tf.cast(tf.clip_by_value(tf.round(scaled), 0.0, 255.0), tf.uint8)


class GeneratorExportModule(tf.Module):
  """A `tf.Module` with the generator's serving signatures."""

  def __init__(self, generator: keras.Model, latent_dim: int):
    super().__init__(name="generator_export")
    # Raw tf.Variables only (see the module docstring).
    self._weights = [v.value for v in generator.variables]

    def generate(latents):
      return generator(latents, training=False)

    self._generate = generate
    self.latent_dim = latent_dim
    self.serve = tf.function(
        self._serve,
        input_signature=[tf.TensorSpec([None, latent_dim], tf.float32, name=LATENTS)])

  def _serve(self, latents):
    return {IMAGES: to_uint8(self._generate(latents))}

  def signatures(self):
    return {SERVING_SIGNATURE: self.serve.get_concrete_function()}


def check_finite(generator: keras.Model, latent_dim: int, seed: int = 0) -> None:
  """Refuses a generator with NaN/Inf weights or outputs: serving it would serve garbage."""
  for variable in generator.variables:
    if not np.all(np.isfinite(keras.ops.convert_to_numpy(variable))):
      raise ExportError(f"generator weight {variable.path} holds NaN or Inf; not exporting")
  latents = tf.random.stateless_normal([8, latent_dim], seed=[seed, 0])
  outputs = generator(latents, training=False)
  if not np.all(np.isfinite(keras.ops.convert_to_numpy(outputs))):
    raise ExportError("generator outputs NaN or Inf; not exporting")


def version_dir(export_dir: str, model_name: str, version: int) -> str:
  return os.path.join(export_dir, model_name, str(int(version)))


def export_generator(generator: keras.Model, latent_dim: int, export_dir: str, model_name: str,
                     version: int, metadata: dict) -> str:
  """Writes `<export_dir>/<model_name>/<version>/` atomically and returns its path.

  An existing version directory is left untouched (the same step exports the same weights).

  Raises:
    ExportError: non-finite generator, or the destination cannot be written.
  """
  check_finite(generator, latent_dim)
  final = version_dir(export_dir, model_name, version)
  if os.path.isdir(final):
    return final
  parent = os.path.dirname(final)
  try:
    os.makedirs(parent, exist_ok=True)
    # A dot-name in the same directory: TF Serving ignores non-integer names, and rename
    # within one filesystem is atomic.
    staging = tempfile.mkdtemp(prefix=f".tmp-{int(version)}-", dir=parent)
  except OSError as error:
    raise ExportError(f"cannot write export under {parent}: {error.strerror}") from error
  try:
    module = GeneratorExportModule(generator, latent_dim)
    tf.saved_model.save(module, staging, signatures=module.signatures())
    extra = os.path.join(staging, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    with open(os.path.join(extra, METADATA_FILE), "w") as f:
      json.dump(metadata, f, indent=2, sort_keys=True)
    os.rename(staging, final)
  except Exception as error:
    shutil.rmtree(staging, ignore_errors=True)
    if isinstance(error, ExportError):
      raise
    raise ExportError(f"export to {final} failed: {error}") from error
  return final


def read_metadata(version_path: str) -> dict:
  """The metadata JSON written next to an export version."""
  with open(os.path.join(version_path, "assets.extra", METADATA_FILE)) as f:
    return json.load(f)
