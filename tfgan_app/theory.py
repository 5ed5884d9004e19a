"""The optimal-discriminator check: `python -m tfgan_app.theory --out=runs/theory`.

Trains an MLP discriminator against a fixed generator on 1-D Gaussians and compares it with
D* = p_data / (p_data + p_g) and its value with the JSD (`tfgan_app.toy.theory`). The last
stdout line is JSON.
"""

import json
import sys

from absl import flags

from tfgan_app.common import cli
from tfgan_app.common import config as config_lib
from tfgan_app.toy import theory

_PROGRAM = "python -m tfgan_app.theory"


def define_flags(flag_values) -> None:
  flags.DEFINE_string("out", "runs/theory", "Directory for theory.png and theory.json.",
                      flag_values=flag_values)
  flags.DEFINE_integer("steps", 4_000, "Discriminator updates (>= 200).", lower_bound=200,
                       flag_values=flag_values)
  flags.DEFINE_integer("batch_size", 2_048, "Samples of each density per update (>= 16).",
                       lower_bound=16, flag_values=flag_values)
  flags.DEFINE_float("learning_rate", 3e-3, "Initial Adam learning rate (> 0).",
                     lower_bound=1e-12, flag_values=flag_values)
  flags.DEFINE_string("hidden_units", "64,64,64", "Widths of D's hidden layers, comma-separated.",
                      flag_values=flag_values)
  flags.DEFINE_float("g_scale", 1.0, "a in G(z) = a z + b (non-zero).", flag_values=flag_values)
  flags.DEFINE_float("g_shift", 3.0, "b in G(z) = a z + b.", flag_values=flag_values)
  flags.DEFINE_integer("seed", 0, "Seed of the samples and of D's initial weights (>= 0).",
                       lower_bound=0, flag_values=flag_values)


def main(argv) -> int:
  """`python -m tfgan_app.theory`; returns the exit status."""
  values, status = cli.parse_private_flags(_PROGRAM, define_flags, argv, "[--out=DIR]")
  if values is None:
    return status
  try:
    hidden_units = config_lib.parse_units(values.hidden_units)
    if values.g_scale == 0.0:
      raise ValueError("--g_scale must be non-zero (G(z) = a z + b needs a != 0 for a density)")
  except ValueError as error:
    print(f"{_PROGRAM}: error: {error}", file=sys.stderr)
    return cli.USAGE_ERROR
  record = theory.run(values.out, values.steps, values.batch_size, values.learning_rate,
                      hidden_units, values.g_scale, values.g_shift, values.seed)
  print(f"max |D - D*| over [{record['grid']['low']:.2f}, {record['grid']['high']:.2f}]: "
        f"{record['d_star_max_error']:.4f} (at x = {record['d_star_max_error_at']:.3f})")
  print(f"JSD from D's value (V + log 4) / 2: {record['jsd_estimate']:.5f} nats (Monte Carlo "
        f"{record['jsd_estimate_monte_carlo']:.5f}); numeric JSD: {record['jsd_numeric']:.5f}")
  print(f"plot: {record['plot']}")
  print(json.dumps(record, sort_keys=True), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
