"""The evaluation protocol's constants and record: defaults, file names, the error, the table.

Kept apart from the evaluator so that classifiers, the evaluator and the training callback share
them without importing each other.
"""

import hashlib
import json
import os

from tfgan_app.exporting import loader

DEFAULT_METRICS = ("fid", "is", "kid")
DEFAULT_NUM_SAMPLES = loader.DEFAULT_NUM_SAMPLES
DEFAULT_SPLIT = "test"
GENERATION_BATCH_SIZE = 500
METRICS_FILE = "metrics.jsonl"
INCEPTION = "inception"
INCEPTION_HANDLE = "https://tfhub.dev/tensorflow/tfgan/eval/inception/1"
INCEPTION_SIZE = 299
# How images reach Inception's input (tfgan_app.evaluation.inception): clean-fid's PIL bicubic,
# or TF-GAN's legacy bilinear resize.
RESIZE_METHODS = ("clean", "tf_bilinear")
DEFAULT_RESIZE_METHOD = "clean"
# --dataset=folder:PATH names a directory of images rather than a TFDS dataset.
FOLDER_PREFIX = "folder:"
CACHE_ENV = "TFGAN_APP_CACHE_DIR"
# Keys always present in the JSON record (null when the metric was not requested).
REQUIRED_KEYS = ("fid", "is", "kid")
# Latent distribution, recorded in the protocol.
LATENT_SAMPLING = "numpy.random.default_rng(seed).standard_normal, float32"
_CACHE_VERSION = 1


class EvaluationError(RuntimeError):
  """The generator cannot be evaluated as asked; the message says what is wrong and what to do."""


def file_sha256(path: str) -> str:
  """sha256 of one file's bytes."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def content_sha256(path: str) -> str:
  """sha256 over a SavedModel's graph file and every file under `variables/`, in name order.

  Identifies the classifier's weights and graph, independent of where it lives.

  Raises:
    EvaluationError: `path` holds no saved_model.pb / tfhub_module.pb.
  """
  digest = hashlib.sha256()
  graph = next((name for name in ("saved_model.pb", "tfhub_module.pb")
                if os.path.isfile(os.path.join(path, name))), None)
  if graph is None:
    raise EvaluationError(f"no SavedModel at {path} (no saved_model.pb)")
  files = [graph]
  variables = os.path.join(path, "variables")
  for root, _, names in os.walk(variables):
    files.extend(os.path.relpath(os.path.join(root, name), path) for name in names)
  for relative in [files[0]] + sorted(files[1:]):
    digest.update(relative.encode() + b"\0")
    with open(os.path.join(path, relative), "rb") as f:
      for chunk in iter(lambda: f.read(1 << 20), b""):
        digest.update(chunk)
  return digest.hexdigest()


def append_record(path: str, record: dict) -> None:
  """Appends `record` as one JSON line to `path` (e.g. <workdir>/metrics.jsonl)."""
  with open(path, "a") as f:
    f.write(json.dumps(record, sort_keys=True) + "\n")


def format_table(record: dict, extra_rows=()) -> str:
  """A readable table of a record's metric values, `extra_rows` ((label, text) pairs, e.g. a
  conditional generator's), and its protocol."""
  rows = []
  for key, label in (("fid", "FID (lower is better)"), ("is", "IS (higher is better)"),
                     ("kid", "KID (lower is better)"), ("kid_std", "  KID standard error"),
                     ("precision", "precision (k=3)"), ("recall", "recall (k=3)")):
    if record.get(key) is not None:
      rows.append((label, f"{record[key]:.6g}"))
  rows += list(extra_rows)
  source = record.get("source", {})
  rows += [("generator", source.get("saved_model") or source.get("checkpoint") or "?"),
           ("step", str(source.get("step"))),
           ("dataset / split", f"{record['dataset']} / {record['split']}"),
           ("real / generated", f"{record['num_real']} / {record['num_generated']}"),
           ("resize", record["resize"]),
           ("seed", str(record["seed"])),
           ("classifier", f"{record['classifier']} (sha256 {record['classifier_sha256'][:12]})")]
  if record.get("resize_method"):
    rows.append(("resize method", record["resize_method"]))
  if record.get("reference"):
    rows.append(("reference", record["reference"]["path"]))
  width = max(len(label) for label, _ in rows)
  return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)
