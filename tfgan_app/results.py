"""Makes the results page: `python -m tfgan_app.results [--workdir=runs/results] [--out_dir=docs]`.

Trains the reference runs, measures them and writes docs/results.md, docs/results.json and the
images (`tfgan_app.reporting.results`); `--runs=a,b` remakes those rows and keeps the others.
"""

import json
import sys
from typing import List

from absl import flags

from tfgan_app.common import cli
from tfgan_app.reporting import results

_PROGRAM = "python -m tfgan_app.results"


def define_flags(flag_values) -> None:
  flags.DEFINE_string("workdir", "runs/results", "Directory of the runs' workdirs (reused).",
                      flag_values=flag_values)
  flags.DEFINE_string("out_dir", "docs",
                      f"Where {results.PAGE}, {results.RECORDS} and {results.IMAGES_DIR}/ go.",
                      flag_values=flag_values)
  flags.DEFINE_string("classifier", None,
                      "MNIST classifier export (python -m tfgan_app.classifier). Default: "
                      "<workdir>/classifier, trained there when missing.",
                      flag_values=flag_values)
  flags.DEFINE_string("cifar10_classifier", None,
                      "CIFAR-10 classifier export, required by the cifar10 run and never trained "
                      "here (it takes long): python -m tfgan_app.classifier "
                      "--dataset=folder:../shared/images/cifar10_jpeg --out=DIR.",
                      flag_values=flag_values)
  flags.DEFINE_string("cifar10_dataset", results.DEFAULT_CIFAR10_DATASET,
                      "The cifar10 run's data: passed to its training as --dataset and read as "
                      "the real images (test split) of FID: a TFDS name or folder:PATH.",
                      flag_values=flag_values)
  flags.DEFINE_string("data_dir", None,
                      "TFDS data directory. Default: TFDS's own, which honours TFDS_DATA_DIR.",
                      flag_values=flag_values)
  flags.DEFINE_list("runs", list(results.RUN_NAMES),
                    f"Runs to make, of: {', '.join(results.RUN_NAMES)}.",
                    flag_values=flag_values)
  flags.DEFINE_integer("num_samples", results.DEFAULT_NUM_SAMPLES,
                       "Samples per measurement (>= 100).",
                       lower_bound=100, flag_values=flag_values)
  flags.DEFINE_multi_string("train_flag", [],
                            "Flag appended to every training command (repeatable), e.g. "
                            "--train_flag=--train_steps=200.", flag_values=flag_values)


def main(argv) -> int:
  """`python -m tfgan_app.results`; returns the exit status."""
  values, status = cli.parse_private_flags(_PROGRAM, define_flags, argv,
                                           "[--workdir=DIR] [--out_dir=DIR] [--runs=a,b]")
  if values is None:
    return status
  unknown = [name for name in values.runs if name not in results.RUN_NAMES]
  if unknown or not values.runs:
    print(f"{_PROGRAM}: error: unknown run(s) {unknown or '(none given)'} in --runs; accepted: "
          f"{', '.join(results.RUN_NAMES)}", file=sys.stderr)
    return cli.USAGE_ERROR
  runs: List[results.Run] = [run for run in results.RUNS if run.name in values.runs]
  command = " ".join([_PROGRAM, *argv[1:]])
  try:
    result = results.make_results(values.workdir, values.out_dir, runs, values.classifier,
                                  values.data_dir, values.num_samples, values.train_flag,
                                  command=command,
                                  cifar10_classifier=values.cifar10_classifier,
                                  cifar10_dataset=values.cifar10_dataset)
  except results.ResultsError as error:
    print(f"{_PROGRAM}: error: {error}", file=sys.stderr)
    return 1
  print(f"wrote {result['page']}")
  print(json.dumps(result, sort_keys=True), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
