"""The one loader of generator exports: `load_export(path, expect)` checks the `serving_default`
signature against the contract and returns the function, its latent size and the metadata.

Image exports (`latents` -> `images` uint8) are what evaluation and the sample-quality check
measure; point exports (`latents` -> `samples` float32) are what the toy metrics measure.
Class-conditional exports (`latents`, `labels` int32 -> ...; metadata `num_classes` > 0) load
too: `LoadedExport.num_classes` says how many classes `generate(latents, labels)` takes.
"""

import dataclasses
import os
from typing import Callable, Iterator, Optional

import numpy as np

from tfgan_app.exporting import contract

IMAGES = "images"  # `expect` values.
POINTS = "points"
# Samples per measurement of an export (evaluate, sample_quality, toy_metrics, results).
DEFAULT_NUM_SAMPLES = 10_000


class ExportLoadError(ValueError):
  """Not an export of the expected kind; the message says what was found and what to use."""


@dataclasses.dataclass
class LoadedExport:
  """A loaded export. `root` keeps the variables alive: the signature function does not."""
  path: str
  root: object
  function: Callable  # serving_default: latents=float32 [B, latent_dim] -> {output: [B, ...]}
  latent_dim: int
  metadata: dict  # {} when the export has no metadata file (exports from elsewhere).
  output: str  # contract.IMAGES or contract.SAMPLES.
  num_classes: int = 0  # > 0: class-conditional, `generate` needs `labels`.

  def generate(self, latents, labels=None) -> object:
    """float32 latents [B, latent_dim] (and int32 classes [B] for a conditional export) -> the
    output tensor [B, H, W, C] or [B, D]."""
    if self.num_classes:
      if labels is None:
        raise ExportLoadError(f"{self.path} is class-conditional ({self.num_classes} classes): "
                              f"pass {contract.LABELS}")
      return self.function(**{contract.LATENTS: latents, contract.LABELS: labels})[self.output]
    return self.function(**{contract.LATENTS: latents})[self.output]


def _no_saved_model(path: str) -> ExportLoadError:
  return ExportLoadError(f"no SavedModel at --saved_model={path} (no saved_model.pb); pass an "
                         "export version directory such as <workdir>/export/<model_name>/<step>")


def load_export(path: str, expect: str = IMAGES) -> LoadedExport:
  """Loads the generator export version directory `path`.

  Args:
    path: `<export_dir>/<model_name>/<version>`.
    expect: IMAGES or POINTS, the kind of generator the caller measures.

  Raises:
    ExportLoadError: not a SavedModel, no `serving_default`, another kind of generator, or a
      latent input without a fixed size.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel  (the contract needs none)
  if not os.path.isfile(os.path.join(path, "saved_model.pb")):
    raise _no_saved_model(path)
  root = tf.saved_model.load(path)
  function = root.signatures.get(contract.SERVING_SIGNATURE)
  if expect == POINTS:
    if function is None or contract.SAMPLES not in function.structured_outputs:
      outputs = sorted(function.structured_outputs) if function is not None else []
      raise ExportLoadError(
          f"{path}'s {contract.SERVING_SIGNATURE!r} signature outputs {outputs}, not "
          f"{contract.SAMPLES!r}: not an export of a toy distribution (image exports: python -m "
          "tfgan_app.evaluate)")
    output = contract.SAMPLES
  else:
    if function is None:
      raise ExportLoadError(f"{path} has no {contract.SERVING_SIGNATURE!r} signature "
                            f"(it has {sorted(root.signatures.keys())})")
    if contract.SAMPLES in function.structured_outputs:
      raise ExportLoadError(
          f"{path} generates points ({contract.SAMPLES!r}), not images: an export of a toy "
          "distribution; measure it with python -m tfgan_app.toy_metrics")
    inputs = function.structured_input_signature[1]
    if set(inputs) - {contract.LABELS} != {contract.LATENTS} or contract.IMAGES not in function.structured_outputs:
      raise ExportLoadError(
          f"{path}'s {contract.SERVING_SIGNATURE!r} signature maps {sorted(inputs)} to "
          f"{sorted(function.structured_outputs)}; expected {contract.LATENTS!r} -> "
          f"{contract.IMAGES!r}")
    output = contract.IMAGES
  spec = function.structured_input_signature[1][contract.LATENTS]
  if spec.shape.rank != 2 or spec.shape[1] is None:
    raise ExportLoadError(f"{path}: input {contract.LATENTS!r} has shape {spec.shape}; "
                          "expected [None, latent_dim]")
  try:
    metadata = contract.read_metadata(path)
  except (OSError, ValueError):
    metadata = {}
  num_classes = 0
  if contract.LABELS in function.structured_input_signature[1]:
    num_classes = contract.num_classes(metadata)
    if num_classes < 1:
      raise ExportLoadError(f"{path} takes {contract.LABELS!r} but its metadata records no "
                            f"{contract.NUM_CLASSES_KEY!r}; re-export it with python -m "
                            "tfgan_app.export")
  return LoadedExport(path, root, function, int(spec.shape[1]), metadata, output, num_classes)


def batches(generate: Callable, latents: np.ndarray, batch_size: int,
            convert: Optional[Callable] = None, labels: Optional[np.ndarray] = None) -> Iterator:
  """The one batched sampling loop: `generate(latents[i:i + batch_size])` for each batch, in order;
  with `labels` (a conditional generator) `generate(latents[i:i + b], labels[i:i + b])`.

  `convert` (e.g. `tf.constant`) is applied to each batch first. Results do not depend on
  `batch_size` beyond the kernels' rounding: the latents are drawn once, up front.
  """
  convert = convert or (lambda value: value)
  for start in range(0, len(latents), batch_size):
    chunk = convert(latents[start:start + batch_size])
    if labels is None:
      yield generate(chunk)
    else:
      yield generate(chunk, convert(labels[start:start + batch_size]))


def request_batch_size(batch_size: int, metadata: dict) -> int:
  """`batch_size`, or the export's `max_samples_per_request` where that is smaller: the export's
  graph refuses larger batches (exports without the key accept any)."""
  limit = metadata.get(contract.MAX_SAMPLES_PER_REQUEST)
  return min(batch_size, int(limit)) if limit else batch_size
