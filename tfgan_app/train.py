"""Trains a model: `python -m tfgan_app.train --flagfile=configs/dcgan.cfg [--workdir=DIR]`.

Flags (all of `tfgan_app.training.flags`) -> a frozen `TrainConfig` -> `train_and_export` in
`tfgan_app.training.loop` -> exit status. Running the same command again resumes from the
newest checkpoint; a finished run says so and exits.
"""

import sys

from absl import app

from tfgan_app.common import workdir_lock
from tfgan_app.data import datasets as data
from tfgan_app.evaluation import evaluator
from tfgan_app.exporting import saved_model
from tfgan_app.runs.workdir import ConfigError
from tfgan_app.training import callbacks
from tfgan_app.training import flags as app_flags
from tfgan_app.training import loop

_PROGRAM = "python -m tfgan_app.train"


def main(argv):
  del argv  # Only --flags; stray arguments are refused by cli.flags_parser.
  config = app_flags.config_from_flags()
  try:
    loop.train_and_export(config)
  except (ConfigError, data.DatasetError, callbacks.TrainingDivergedError,
          callbacks.CheckpointWriteError, saved_model.ExportError, evaluator.EvaluationError,
          workdir_lock.WorkdirLockedError) as error:
    print(f"{_PROGRAM}: error: {error}", file=sys.stderr)
    sys.exit(1)
  except PermissionError as error:
    print(f"{_PROGRAM}: error: cannot write {error.filename}: {error.strerror}; "
          "make --workdir writable or choose another", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  # A run's own flags.cfg resumes the directory that holds it (a copied workdir in place).
  app.run(main, flags_parser=app_flags.flags_parser(_PROGRAM))
