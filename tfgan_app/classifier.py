"""Trains the domain classifier: `python -m tfgan_app.classifier --dataset=mnist --out=DIR`.

MNIST: about 40 s (30 CPU-seconds) on 2 CPU cores; test accuracy 99.3% (fashion_mnist: 91.4%).
CIFAR-10 (`--dataset=folder:../shared/images/cifar10_jpeg --out=/work/classifiers/cifar10`,
the colour_cnn architecture): 86.5% test accuracy after 8 epochs, 44 min on 2 busy shared
cores (README, "Measuring generators"). The work is
`tfgan_app.evaluation.classifier.train_classifier`; this module only parses the flags.
"""

import json
import os
import sys

from absl import app
from absl import flags

from tfgan_app.common import cli
from tfgan_app.data import datasets as data
from tfgan_app.evaluation import classifier as classifier_lib
from tfgan_app.evaluation import classifier_models

_PROGRAM = "python -m tfgan_app.classifier"


def define_flags(flag_values=flags.FLAGS) -> None:
  """Defines the command's flags.

  Called only when this module runs as the program, not on import: `tfgan_app.training.flags`
  (imported by the training entry point and its tests) already defines --dataset and
  --data_dir, and two definitions of one name in a process are an error.
  """
  flags.DEFINE_string("dataset", "mnist",
                      "TFDS image classification dataset with 'image' and 'label' features "
                      "(mnist, fashion_mnist, cifar10), or folder:PATH with class "
                      "subdirectories under PATH/train and PATH/test.",
                      flag_values=flag_values)
  flags.DEFINE_enum("architecture", "auto", classifier_lib.ARCHITECTURES,
                    "small_cnn (MNIST-like greyscale), colour_cnn (BatchNorm CNN with random "
                    "crop + flip, for 32x32 colour), or auto: colour_cnn for 3-channel images.",
                    flag_values=flag_values)
  flags.DEFINE_string("out", None,
                      "Output directory: new, empty, or an older classifier export (replaced). "
                      "Default: classifiers/<dataset>.", flag_values=flag_values)
  flags.DEFINE_string("data_dir", None,
                      "TFDS data directory. Default: TFDS's own, which honours $TFDS_DATA_DIR.",
                      flag_values=flag_values)
  flags.DEFINE_integer("epochs", None,
                       "Passes over the training examples (>= 1). Default: the architecture's "
                       f"({_recipes('epochs')}).", lower_bound=1, flag_values=flag_values)
  flags.DEFINE_integer("train_examples", None,
                       "Train on only the first N examples of the train split (>= batch_size). "
                       "Default: all.", lower_bound=1, flag_values=flag_values)
  flags.DEFINE_integer("batch_size", None,
                       "Training batch size in images (>= 1). Default: the architecture's "
                       f"({_recipes('batch_size')}).", lower_bound=1, flag_values=flag_values)
  flags.DEFINE_float("learning_rate", None,
                     "Peak learning rate (> 0) of the warmup + cosine schedule (Adam for "
                     "small_cnn, Nesterov SGD for colour_cnn). Default: the architecture's "
                     f"({_recipes('learning_rate')}).", flag_values=flag_values)
  flags.DEFINE_integer("seed", 0, "Seed of the initial weights, dropout and data order (>= 0).",
                       lower_bound=0, flag_values=flag_values)
  flags.DEFINE_enum("compute_dtype", "auto", classifier_lib.COMPUTE_DTYPES,
                    "Training arithmetic: auto (mixed_bfloat16 on CPUs with native bfloat16, "
                    "else float32), mixed_bfloat16 or float32. The export is float32 always.",
                    flag_values=flag_values)
  flags.DEFINE_boolean("download", True,
                       "Download and prepare the dataset if it is not in --data_dir yet.",
                       flag_values=flag_values)
  flags.register_validator("learning_rate", lambda value: value is None or value > 0,
                           message="must be > 0", flag_values=flag_values)


def _recipes(field: str) -> str:
  return ", ".join(f"{name}: {getattr(recipe, field)}"
                   for name, recipe in classifier_models.RECIPES.items())


def main(argv):
  del argv  # Only --flags; stray arguments are refused by cli.flags_parser.
  values = flags.FLAGS
  out_dir = values.out or os.path.join("classifiers", classifier_lib.default_out_name(
      values.dataset))
  try:
    result = classifier_lib.train_classifier(
        values.dataset, values.data_dir, out_dir, epochs=values.epochs,
        train_examples=values.train_examples, batch_size=values.batch_size,
        learning_rate=values.learning_rate, seed=values.seed,
        compute_dtype=values.compute_dtype, download=values.download, verbose=2,
        architecture=values.architecture)
  except (data.DatasetError, classifier_lib.ClassifierError) as error:
    print(f"{_PROGRAM}: error: {error}", file=sys.stderr)
    sys.exit(1)
  result.pop("model")
  print(f"Test accuracy {result['test_accuracy']:.2%} on {result['test_examples']} "
        f"{values.dataset} test images; saved to {result['path']}", flush=True)
  print(json.dumps(result, sort_keys=True), flush=True)


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=cli.flags_parser(_PROGRAM))
