r"""Measures a generator: FID, IS, KID and precision/recall, with a fixed protocol.

  python -m tfgan_app.evaluate --saved_model=runs/dcgan/export/dcgan/2000 \
      --classifier=/work/classifiers/mnist --metrics=fid,is,kid
  python -m tfgan_app.evaluate --workdir=runs/dcgan      # newest checkpoint, EMA generator
  python -m tfgan_app.evaluate --write_reference=cifar10-test.npz --dataset=cifar10 \
      --classifier=inception --resize_method=clean     # reference statistics, no generator
  python -m tfgan_app.evaluate --saved_model=EXPORT --reference=cifar10-test.npz

The metrics, classifiers and protocol: `tfgan_app.evaluation.evaluator`. Output: a table, then
as the last stdout line one JSON object; with --workdir it is also appended to
`<workdir>/metrics.jsonl`. Errors: one line on stderr, exit status 1 (2 for a bad command line,
an unknown flag such as a training flag included).

A class-conditional export (metadata `num_classes`) is asked for each class in equal shares, and
the table and JSON add `label_accuracy` (per class too) and the intra-class FID (per class, mean
and worst): `tfgan_app.evaluation.conditional`.
"""

import json
import os
import sys

from absl import app
from absl import flags

from tfgan_app.common import cli
from tfgan_app.evaluation import evaluator
from tfgan_app.evaluation import metrics as metrics_lib

_PROGRAM = "python -m tfgan_app.evaluate"


def define_flags() -> None:
  """Defines the command's flags (only its own: training flags are unknown here)."""
  flags.DEFINE_string("workdir", None,
                      "Training workdir: evaluate its newest checkpoint (the EMA generator when "
                      "there is one); the record is appended to <workdir>/metrics.jsonl. "
                      "Exactly one of --saved_model and --workdir.")
  flags.DEFINE_string("dataset", None,
                      "TFDS dataset of the real images. Default: the one the export or run "
                      "records.")
  flags.DEFINE_string("data_dir", None,
                      "TFDS data directory. Default: TFDS's own, which honours $TFDS_DATA_DIR.")
  flags.DEFINE_string("split", evaluator.DEFAULT_SPLIT,
                      "TFDS split of the real images to compare with, e.g. test.")
  flags.DEFINE_integer("seed", 0, "Seed of the N(0, 1) latents (>= 0).", lower_bound=0)
  flags.DEFINE_string("saved_model", None,
                      "Generator export version directory, e.g. runs/dcgan/export/dcgan/2000. "
                      "Exactly one of --saved_model and --workdir.")
  flags.DEFINE_string("metrics", ",".join(evaluator.DEFAULT_METRICS),
                      f"Comma-separated metrics: {', '.join(metrics_lib.REGISTRY)}.")
  flags.DEFINE_integer("num_samples", evaluator.DEFAULT_NUM_SAMPLES,
                       "Generated images, and wanted real images (fewer if the split is "
                       "smaller); >= 4.", lower_bound=4)
  flags.DEFINE_string("classifier", None,
                      "Classifier directory (python -m tfgan_app.classifier), 'inception' "
                      f"({evaluator.INCEPTION_HANDLE}; honours TFHUB_CACHE_DIR) or a local "
                      "Inception module directory. Default: $TFGAN_APP_<DATASET>_CLASSIFIER for "
                      "grayscale datasets, inception for RGB.")
  flags.DEFINE_enum("resize_method", evaluator.DEFAULT_RESIZE_METHOD, evaluator.RESIZE_METHODS,
                    "How images reach Inception's 299x299 input: clean (clean-fid: uint8, PIL "
                    "bicubic) or tf_bilinear (TF-GAN's legacy tf.image.resize bilinear). "
                    "Inception only; the record's resize_method names it.")
  flags.DEFINE_string("reference", None,
                      "Reference statistics file (--write_reference) to compare with instead of "
                      "computing the real statistics; it must have been made with the same "
                      "classifier, --resize_method and image size.")
  flags.DEFINE_string("write_reference", None,
                      "Write --dataset's --split statistics (first --num_samples images) to this "
                      ".npz file and exit; no generator.")
  flags.DEFINE_integer("image_size", None,
                       "With --write_reference: the size real images are brought to (that of "
                       "the generators to compare). Default: the dataset's own.", lower_bound=1)
  flags.DEFINE_string("cache_dir", None,
                      f"Real-statistics cache. Default: ${evaluator.CACHE_ENV} or "
                      "~/.cache/tfgan_app; '' disables it.")


def run(values) -> dict:
  """The command's work, given the parsed flag values. Raises evaluator.EvaluationError."""
  # None: the flag was not given, so that a domain classifier does not refuse the default.
  resize_method = values.resize_method if values["resize_method"].present else None
  if values.write_reference:
    if values.saved_model or values.workdir or values.reference:
      raise evaluator.EvaluationError("--write_reference takes no --saved_model, --workdir or "
                                      "--reference: it measures a dataset, not a generator")
    if not values.dataset:
      raise evaluator.EvaluationError("--write_reference needs --dataset (the real images)")
    return evaluator.write_reference(values.write_reference, values.dataset, values.classifier,
                                     resize_method, values.split, values.image_size,
                                     values.num_samples, values.data_dir, values.cache_dir)
  if values.image_size is not None:
    raise evaluator.EvaluationError("--image_size applies to --write_reference only; a "
                                    "generator's images set the size")
  if bool(values.saved_model) == bool(values.workdir):
    raise evaluator.EvaluationError("pass exactly one of --saved_model=EXPORT_VERSION_DIR and "
                                    "--workdir=TRAINING_WORKDIR")
  try:
    metric_names = metrics_lib.parse_metric_names(values.metrics)
  except ValueError as error:
    raise evaluator.EvaluationError(f"--metrics: {error}") from error
  if values.saved_model:
    generator = evaluator.load_saved_model_generator(values.saved_model)
  else:
    generator = evaluator.load_workdir_generator(values.workdir)
  dataset = values.dataset if values["dataset"].present else None
  record = evaluator.evaluate(generator, values.classifier, metric_names, values.num_samples,
                              values.split, values.seed, dataset, values.data_dir,
                              values.cache_dir, resize_method, values.reference)
  return record


def main(argv):
  del argv  # Only --flags; stray arguments are refused by cli.flags_parser.
  values = flags.FLAGS
  try:
    record = run(values)
  except evaluator.EvaluationError as error:
    print(f"{_PROGRAM}: error: {error}", file=sys.stderr)
    sys.exit(1)
  if values.write_reference:
    print(f"Wrote {record['path']}: {record['num_images']} {record['dataset']} "
          f"{record['split']} images, {record['feature_dim']} features")
    print(json.dumps(record, sort_keys=True), flush=True)
    return
  print(evaluator.format_table(record))
  if values.workdir:
    try:
      evaluator.append_record(os.path.join(values.workdir, evaluator.METRICS_FILE), record)
    except OSError as error:
      print(f"{_PROGRAM}: error: cannot append to {values.workdir}/{evaluator.METRICS_FILE}: "
            f"{error.strerror}", file=sys.stderr)
      print(json.dumps(record, sort_keys=True), flush=True)
      sys.exit(1)
  print(json.dumps(record, sort_keys=True), flush=True)


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=cli.flags_parser(_PROGRAM))
