"""Training speed of a config on this machine, and how close it runs to the machine's limit.

  python -m tfgan_app.benchmark --flagfile=configs/tf_tutorial.cfg --baseline
  # about 2 minutes on an idle 2-core CPU (10-15 under heavy load); the last line is JSON

Takes the training flags of a config (`tfgan_app.training.flags`) plus its own below; what it
measures and how: `tfgan_app.performance.benchmark`.
"""

import json
import sys
from typing import Optional

from absl import app
from absl import flags

from tfgan_app.common import cli
from tfgan_app.data import datasets as data
from tfgan_app.performance import benchmark
from tfgan_app.training import flags as app_flags

flags.DEFINE_boolean("baseline", False,
                     "Also time TensorFlow's DCGAN tutorial loop (float32, its own models) on "
                     "the same batches, interleaved with ours, and print the speed ratio.")
flags.DEFINE_integer("warmup_steps", 5, "Untimed training steps before timing (tracing, caches).",
                     lower_bound=1)
flags.DEFINE_integer("timed_steps", 10, "Training steps per timed repeat.", lower_bound=1)
flags.DEFINE_integer("repeats", 5, "Timed repeats; medians are reported.", lower_bound=1)
flags.DEFINE_integer("matmul_size", 4096,
                     "Side of the square matmuls that measure the float32 and bfloat16 peaks.",
                     lower_bound=1)
flags.DEFINE_integer("sample_batch_size", 256,
                     "Batch of the exported generator's sampling-speed measurement.",
                     lower_bound=1)
flags.DEFINE_boolean("compare_precisions", False,
                     "Also time the config's training under every precision policy this "
                     "hardware offers (float32, mixed_bfloat16, and mixed_float16 on GPUs), "
                     "interleaved, and say which one --mixed_precision=auto picks and whether "
                     "it is the fastest.")


def _config_name() -> Optional[str]:
  for arg in sys.argv[1:]:
    if arg.startswith("--flagfile="):
      return arg.split("=", 1)[1]
  return None


def main(argv):
  del argv  # Only --flags; stray arguments are refused by cli.flags_parser.
  config = app_flags.config_from_flags()
  options = benchmark.Options(baseline=flags.FLAGS.baseline,
                              warmup_steps=flags.FLAGS.warmup_steps,
                              timed_steps=flags.FLAGS.timed_steps, repeats=flags.FLAGS.repeats,
                              matmul_size=flags.FLAGS.matmul_size,
                              sample_batch_size=flags.FLAGS.sample_batch_size,
                              compare_precisions=flags.FLAGS.compare_precisions)
  try:
    result = benchmark.run_benchmark(config, options, config_name=_config_name())
  except (benchmark.BenchmarkError, data.DatasetError) as error:
    print(f"python -m tfgan_app.benchmark: error: {error}", file=sys.stderr)
    sys.exit(1)
  print(benchmark.format_report(result), flush=True)
  print(json.dumps(result, sort_keys=True), flush=True)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.flags_parser("python -m tfgan_app.benchmark"))
