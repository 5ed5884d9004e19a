"""Judges a generator export with the domain classifier: are its samples confident and varied?

  python -m tfgan_app.sample_quality --saved_model=runs/dcgan/export/dcgan/2000 \
      --classifier=/work/classifiers/mnist
  # about 20 s for 10,000 samples on 2 CPU cores

The verdict and its bars: `tfgan_app.evaluation.sample_quality`. Exits 0 whether or not the
samples pass (the verdict is in the report); errors exit 1 with one line on stderr. A
class-conditional export is asked for each class in equal shares (10,000 samples: 1,000 per
MNIST digit) and the report adds `label_accuracy` and `label_accuracy_per_class`.
"""

import json
import sys

from absl import app
from absl import flags

from tfgan_app.common import cli
from tfgan_app.evaluation import classifier as classifier_lib
from tfgan_app.evaluation import sample_quality

_PROGRAM = "python -m tfgan_app.sample_quality"


def define_flags(flag_values=flags.FLAGS) -> None:
  """Defines the command's flags; only when run as the program (see classifier.define_flags)."""
  flags.DEFINE_string("saved_model", None,
                      "Generator export version directory, e.g. "
                      "runs/dcgan/export/dcgan/2000 (required).", flag_values=flag_values)
  flags.DEFINE_string("classifier", None,
                      "Classifier export directory written by python -m tfgan_app.classifier, "
                      "for the generator's dataset (required).", flag_values=flag_values)
  flags.DEFINE_integer("num_samples", sample_quality.DEFAULT_NUM_SAMPLES,
                       "Images to generate (>= 1).",
                       lower_bound=1, flag_values=flag_values)
  flags.DEFINE_integer("seed", 0, "Seed of the N(0, 1) latents (>= 0).", lower_bound=0,
                       flag_values=flag_values)
  flags.DEFINE_float("threshold", sample_quality.DEFAULT_THRESHOLD,
                     "A sample is confident when its top class probability is above this; "
                     "in [0, 1).", flag_values=flag_values)
  flags.DEFINE_integer("batch_size", sample_quality.GENERATION_BATCH_SIZE,
                       "Images per generator/classifier call (>= 1); does not change results.",
                       lower_bound=1, flag_values=flag_values)
  flags.register_validator("threshold", lambda value: 0.0 <= value < 1.0,
                           message="must be in [0, 1)", flag_values=flag_values)
  flags.mark_flags_as_required(["saved_model", "classifier"], flag_values=flag_values)


def main(argv):
  del argv  # Only --flags; stray arguments are refused by cli.flags_parser.
  values = flags.FLAGS
  try:
    judge = classifier_lib.load_classifier(values.classifier)
    report = sample_quality.measure_sample_quality(values.saved_model, values.classifier,
                                    num_samples=values.num_samples, seed=values.seed,
                                    threshold=values.threshold, batch_size=values.batch_size,
                                    classifier=judge)
  except (sample_quality.SampleQualityError, classifier_lib.ClassifierError) as error:
    print(f"{_PROGRAM}: error: {error}", file=sys.stderr)
    sys.exit(1)
  dataset = judge.metadata.get("dataset", "unknown dataset")
  print(f"Sample quality of {values.saved_model}, judged by the {dataset} classifier at "
        f"{values.classifier}")
  print(sample_quality.format_summary(report, judge.metadata.get("class_names")))
  print(json.dumps(report, sort_keys=True), flush=True)


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=cli.flags_parser(_PROGRAM))
