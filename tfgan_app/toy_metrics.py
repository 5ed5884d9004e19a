"""Measures an export of a toy run against the distribution's known density.

  python -m tfgan_app.toy_metrics --saved_model=runs/ring8/export/ring8/<step> \
      [--num_samples=10000] [--seed=0]
  # prints a table and, as the last line, one JSON object; a few seconds

The metrics are defined in `tfgan_app.toy.metrics`. Errors: one line on stderr, exit status 1
(2 for a bad command line).
"""

import json
import sys

from absl import flags

from tfgan_app.common import cli
from tfgan_app.toy import distributions
from tfgan_app.toy import metrics as toy_metrics

_PROGRAM = "python -m tfgan_app.toy_metrics"


def define_flags(flag_values) -> None:
  flags.DEFINE_string("saved_model", None,
                      "Export version directory of a toy run, e.g. runs/ring8/export/ring8/4000.",
                      flag_values=flag_values)
  flags.DEFINE_integer("num_samples", toy_metrics.DEFAULT_NUM_SAMPLES,
                       "Points to generate (>= 100).",
                       lower_bound=100, flag_values=flag_values)
  flags.DEFINE_integer("seed", 0, "Seed of the N(0, 1) latents (>= 0).", lower_bound=0,
                       flag_values=flag_values)
  flags.DEFINE_enum("dataset", None, list(distributions.DISTRIBUTIONS),
                    "Distribution to measure against. Default: the one the export records.",
                    flag_values=flag_values)


def main(argv) -> int:
  """`python -m tfgan_app.toy_metrics`; returns the exit status."""
  values, status = cli.parse_private_flags(
      _PROGRAM, define_flags, argv, "--saved_model=EXPORT_VERSION_DIR [--num_samples=N]",
      required=["saved_model"])
  if values is None:
    return status
  try:
    record = toy_metrics.measure_export(values.saved_model, values.num_samples, values.seed,
                                        values.dataset)
  except toy_metrics.ToyMetricsError as error:
    print(f"{_PROGRAM}: error: {error}", file=sys.stderr)
    return 1
  print(toy_metrics.format_table(record))
  print(json.dumps(record, sort_keys=True), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
