"""The evaluation protocol's constants and record: defaults, file names, the error, the table.

Kept apart from the evaluator so that classifiers, the evaluator and the training callback share
them without importing each other.
"""

import json

from tfgan_app.exporting import loader

DEFAULT_METRICS = ("fid", "is", "kid")
DEFAULT_NUM_SAMPLES = loader.DEFAULT_NUM_SAMPLES
DEFAULT_SPLIT = "test"
GENERATION_BATCH_SIZE = 500
METRICS_FILE = "metrics.jsonl"
INCEPTION = "inception"
INCEPTION_HANDLE = "https://tfhub.dev/tensorflow/tfgan/eval/inception/1"
INCEPTION_SIZE = 299
CACHE_ENV = "TFGAN_APP_CACHE_DIR"
# Keys always present in the JSON record (null when the metric was not requested).
REQUIRED_KEYS = ("fid", "is", "kid")
# Latent distribution, recorded in the protocol.
LATENT_SAMPLING = "numpy.random.default_rng(seed).standard_normal, float32"
_CACHE_VERSION = 1


class EvaluationError(RuntimeError):
  """The generator cannot be evaluated as asked; the message says what is wrong and what to do."""


def append_record(path: str, record: dict) -> None:
  """Appends `record` as one JSON line to `path` (e.g. <workdir>/metrics.jsonl)."""
  with open(path, "a") as f:
    f.write(json.dumps(record, sort_keys=True) + "\n")


def format_table(record: dict) -> str:
  """A readable table of a record's metric values and its protocol."""
  rows = []
  for key, label in (("fid", "FID (lower is better)"), ("is", "IS (higher is better)"),
                     ("kid", "KID (lower is better)"), ("kid_std", "  KID standard error"),
                     ("precision", "precision (k=3)"), ("recall", "recall (k=3)")):
    if record.get(key) is not None:
      rows.append((label, f"{record[key]:.6g}"))
  source = record.get("source", {})
  rows += [("generator", source.get("saved_model") or source.get("checkpoint") or "?"),
           ("step", str(source.get("step"))),
           ("dataset / split", f"{record['dataset']} / {record['split']}"),
           ("real / generated", f"{record['num_real']} / {record['num_generated']}"),
           ("resize", record["resize"]),
           ("seed", str(record["seed"])),
           ("classifier", f"{record['classifier']} (sha256 {record['classifier_sha256'][:12]})")]
  width = max(len(label) for label, _ in rows)
  return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)
