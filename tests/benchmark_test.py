"""The training benchmark: its report and JSON contract, on a tiny run (no timing asserted)."""

import json
import re
import os
import subprocess
import sys

from absl import flags
import pytest

from tfgan_app import benchmark
from tfgan_app import cli
from tfgan_app import precision
from conftest import HANG_TIMEOUT_S, REPO_ROOT, tfds_data_dir

_TINY = ["--architecture=tf_tutorial", "--g_filters=4", "--d_filters=4", "--latent_dim=8",
         "--batch_size=8", "--split=train[:200]", "--nodownload", "--warmup_steps=2",
         "--timed_steps=2", "--repeats=2", "--matmul_size=64", "--sample_batch_size=4"]


def _benchmark(*args):
  env = dict(os.environ, TFDS_DATA_DIR=tfds_data_dir(), TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", "tfgan_app.benchmark", *args], cwd=REPO_ROOT,
                        env=env, capture_output=True, text=True, timeout=HANG_TIMEOUT_S)


def test_tiny_run_prints_a_report_and_one_json_object_last():
  result = _benchmark(*_TINY, "--baseline", "--steps_per_execution=2",
                      "--mixed_precision=auto", "--compare_precisions", "--train_steps=600")
  assert result.returncode == 0, result.stderr[-3000:]
  lines = result.stdout.strip().splitlines()
  report = json.loads(lines[-1])
  assert set(benchmark.KEYS + benchmark.BASELINE_KEYS + benchmark.COMPARE_KEYS) == set(report)
  assert report["architecture"] == "tf_tutorial" and report["update"] == "alternating"
  assert report["steps_per_execution"] == 2 and report["mixed_precision_requested"] == "auto"
  assert report["mixed_precision"] == precision.resolve("auto").policy
  assert report["batch_size"] == 8 and report["timed_steps"] == 2 and report["repeats"] == 2
  for key in ("images_per_sec", "ms_per_step", "baseline_images_per_sec",
              "matmul_float32_flops_per_sec", "matmul_bfloat16_flops_per_sec",
              "sample_images_per_sec", "fraction_of_float32_peak", "speedup_vs_baseline"):
    assert report[key] > 0, key
  # Consistent arithmetic: images/s from ms/step, FLOP/s from FLOPs per image.
  assert report["images_per_sec"] == pytest.approx(8 * 1000 / report["ms_per_step"])
  assert report["achieved_flops_per_sec"] == pytest.approx(
      report["train_flops_per_image"] * report["images_per_sec"])
  assert report["cpu_speedup_vs_baseline"] == pytest.approx(
      report["baseline_cpu_ms_per_step"] / report["cpu_ms_per_step"])
  assert report["speedup_vs_baseline"] == pytest.approx(
      report["images_per_sec"] / report["baseline_images_per_sec"])
  # The tutorial's models at full width whatever this config's widths, with its noise size (8,
  # not 100): 451,671,808 FLOPs less the Dense layer's forward and weight gradient for the 92
  # missing inputs.
  assert report["baseline_train_flops_per_image"] == 451_671_808 - 2 * (2 * 92 * 12544)
  assert any(line.startswith("speedup:") for line in lines)
  # The policies this CPU offers, timed back to back; auto's choice and its share of the best.
  auto = precision.resolve("auto").policy
  rates = report["precision_images_per_sec"]
  assert set(rates) == {"float32", "mixed_bfloat16"} and min(rates.values()) > 0
  assert report["auto_policy"] == auto and report["fastest_policy"] == max(rates, key=rates.get)
  assert report["auto_fraction_of_fastest"] == pytest.approx(rates[auto] / max(rates.values()))
  assert f"--mixed_precision=auto picks {auto}" in result.stdout
  assert report["estimated_run_minutes"] == pytest.approx(600 * report["ms_per_step"] / 60_000)
  assert re.search(r"about [0-9.]+ minutes here \(600 steps at", result.stdout)


def test_without_baseline_the_json_has_no_baseline_keys():
  result = _benchmark(*_TINY, "--update=simultaneous")
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert set(report) == set(benchmark.KEYS) and report["update"] == "simultaneous"


def _benchmark_in_process(capsys, *args):
  """What `python -m tfgan_app.benchmark ARGS` does, in this process (no TensorFlow start-up per
  case): the entry point's flags parser, then `benchmark.main`. Returns (exit status, stderr)."""
  capsys.readouterr()
  flags.FLAGS.unparse_flags()
  try:
    benchmark.main(cli.flags_parser("python -m tfgan_app.benchmark")(["benchmark", *args]))
    status = 0
  except SystemExit as exit_:
    status = exit_.code
  finally:
    flags.FLAGS.unparse_flags()
  return status, capsys.readouterr().err


@pytest.mark.parametrize("extra,message", [
    (["--steps_per_execution=3"], "multiples of --steps_per_execution=3"),
    (["--baseline", "--architecture=dcgan", "--image_size=32"],
     "--baseline runs the tutorial's models"),
])
def test_bad_input_fails_in_one_line(capsys, extra, message):
  status, stderr = _benchmark_in_process(capsys, f"--data_dir={tfds_data_dir()}", *_TINY,
                                         *extra)
  assert status == 1
  errors = [line for line in stderr.splitlines()
            if line.startswith("python -m tfgan_app.benchmark: error:")]
  assert len(errors) == 1 and message in errors[0], stderr[-2000:]
