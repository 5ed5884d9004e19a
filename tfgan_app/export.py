"""Exports the generator of a training run as a SavedModel that TensorFlow Serving loads.

  python -m tfgan_app.export --workdir=runs/dcgan [--export_dir=DIR] [--model_name=NAME]
      [--step=N]
  # exports the newest checkpoint of a run, or that of step N (the EMA generator when there is
  # one); seconds

Layout, signatures and why the module is built as it is: `tfgan_app.exporting.saved_model`;
the names clients use: `tfgan_app.exporting.contract`.
"""

import sys

from absl import flags

from tfgan_app.common import cli
from tfgan_app.exporting import contract
from tfgan_app.exporting import saved_model
from tfgan_app.runs import export_run

_PROGRAM = "python -m tfgan_app.export"


def define_flags(flag_values) -> None:
  """The command's flags, on their own `FlagValues` (the process may hold the training flags)."""
  flags.DEFINE_string("workdir", None,
                      "Training workdir whose checkpoint to export (the newest unless --step).",
                      flag_values=flag_values)
  flags.DEFINE_string("export_dir", None,
                      "Export base directory; the model goes to <export_dir>/<model_name>/<step>/. "
                      "Default: the run's own (<workdir>/export).", flag_values=flag_values)
  flags.DEFINE_string("model_name", None, "TF Serving model name. Default: the run's.",
                      flag_values=flag_values)
  flags.DEFINE_integer("max_samples_per_request", contract.DEFAULT_MAX_SAMPLES_PER_REQUEST,
                       "Largest num_samples / number of seeds / num_steps a request may ask "
                       "for (>= 2).", lower_bound=2, flag_values=flag_values)
  flags.DEFINE_integer("step", None,
                       "Export the checkpoint of this training step (one the run kept: "
                       "--checkpoint_every, --keep_checkpoints) instead of the newest, to judge "
                       "a run part of the way. Its export version is that step.", lower_bound=0,
                       flag_values=flag_values)
  flags.DEFINE_list("warmup_signatures", None,
                    "Signatures that get a TF Serving warmup request. Default: all. With TF "
                    "Serving's --enable_batching use serving_default,sample_seeds.",
                    flag_values=flag_values)


def main(argv) -> int:
  """`python -m tfgan_app.export`; returns the exit status."""
  values, status = cli.parse_private_flags(
      _PROGRAM, define_flags, argv,
      "--workdir=DIR [--export_dir=DIR] [--model_name=NAME] [--step=N]", required=["workdir"])
  if values is None:
    return status
  try:
    path = export_run.export_from_workdir(values.workdir, values.export_dir, values.model_name,
                                          values.max_samples_per_request, values.warmup_signatures,
                                          values.step)
  except saved_model.ExportError as error:
    print(f"{_PROGRAM}: error: {error}", file=sys.stderr)
    return 1
  print(f"Exported generator to {path}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
