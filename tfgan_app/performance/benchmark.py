"""Training speed of a config on this machine, and how close it runs to the machine's limit.

  python -m tfgan_app.benchmark --flagfile=configs/tf_tutorial.cfg --baseline
  # about 2 minutes on an idle 2-core CPU (10-15 under heavy load); the last line is JSON

Builds the config's models exactly as `tfgan_app.train` does (same flags, strategy, dtype
policy, `steps_per_execution`, `jit_compile`, threads) and times Keras's own compiled train
function on the config's real input pipeline: warm-up steps first, then `--repeats` chunks of
`--timed_steps` steps, reported as medians. In each repeat it also times a 4096x4096 matmul in
float32 and in bfloat16 (the machine's practical peaks for TensorFlow here), and, with
`--baseline`, the same number of steps of TensorFlow's DCGAN tutorial loop
(`tfgan_app.performance.tutorial_baseline`, float32, its own models) on batches from the same
pipeline, at the config's batch size (any config on 28x28 greyscale images: the tutorial loop is
then a yardstick that moves with the machine's load).
Interleaving puts every measurement under the same load, so the ratios hold on a busy machine
even when absolute numbers drift. Wall time is what a user waits for; process CPU time (also
reported) is what the step costs on a shared machine.

FLOPs are analytic (`tfgan_app.performance.flops`: dense and convolution multiply-adds from the
layer shapes, forward and backward, update scheme included). Sampling speed is measured on the
exported generator (a SavedModel written to a temporary directory, `serving_default` at batch
`--sample_batch_size`).
"""

import dataclasses
import statistics
import tempfile
import time
from typing import Callable, Dict, List, Optional

import keras
import numpy as np
import tensorflow as tf

from tfgan_app.common import config as config_lib
from tfgan_app.data import datasets as data
from tfgan_app.exporting import saved_model as export
from tfgan_app.gan import build as gan_build
from tfgan_app.gan import model as gan_lib
from tfgan_app.hardware import distribute
from tfgan_app.hardware import precision
from tfgan_app.models import registry as models
from tfgan_app.performance import flops as flops_lib
from tfgan_app.performance import tutorial_baseline
from tfgan_app.runs.workdir import ConfigError
from tfgan_app.training import loop as train

# The JSON object's keys (a contract: scripts read them).
KEYS = ("config", "architecture", "update", "mixed_precision", "mixed_precision_requested",
        "precision_reason", "hardware", "train_steps", "estimated_run_minutes", "batch_size",
        "d_steps",
        "steps_per_execution", "jit_compile", "intra_op_threads", "inter_op_threads",
        "timed_steps", "repeats", "images_per_sec", "ms_per_step", "cpu_ms_per_step",
        "train_flops_per_image", "achieved_flops_per_sec", "matmul_float32_flops_per_sec",
        "matmul_bfloat16_flops_per_sec", "fraction_of_float32_peak",
        "fraction_of_bfloat16_peak", "sample_images_per_sec", "sample_batch_size",
        "flops_per_cpu_sec", "matmul_float32_flops_per_cpu_sec",
        "matmul_bfloat16_flops_per_cpu_sec", "cpu_fraction_of_float32_peak",
        "cpu_fraction_of_bfloat16_peak")
# With --compare_precisions: images/s under each policy, auto's choice and its share of the best.
COMPARE_KEYS = ("precision_images_per_sec", "auto_policy", "fastest_policy",
                "auto_fraction_of_fastest")
BASELINE_KEYS = ("baseline_images_per_sec", "baseline_ms_per_step", "baseline_cpu_ms_per_step",
                 "baseline_train_flops_per_image", "baseline_achieved_flops_per_sec",
                 "speedup_vs_baseline", "cpu_speedup_vs_baseline")


class BenchmarkError(ValueError):
  """The benchmark cannot run as asked; the message says what is accepted."""


@dataclasses.dataclass(frozen=True)
class Options:
  """What to time and how often (the benchmark's own flags)."""
  baseline: bool = False
  warmup_steps: int = 5
  timed_steps: int = 10
  repeats: int = 5
  matmul_size: int = 4096
  sample_batch_size: int = 256
  compare_precisions: bool = False


@dataclasses.dataclass
class _Timings:
  wall: List[float] = dataclasses.field(default_factory=list)
  cpu: List[float] = dataclasses.field(default_factory=list)

  def time(self, run: Callable[[], None]) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    self.wall.append(time.perf_counter() - wall)
    self.cpu.append(time.process_time() - cpu)


def _sync(values) -> None:
  """Waits for the step's results (TensorFlow may return before the work is done)."""
  for value in tf.nest.flatten(values):
    np.asarray(value)


def _matmul_timer(size: int, dtype) -> Callable[[], None]:
  a = tf.random.stateless_normal([size, size], seed=[1, 2], dtype=tf.float32)
  b = tf.random.stateless_normal([size, size], seed=[3, 4], dtype=tf.float32)
  a, b = tf.cast(a, dtype), tf.cast(b, dtype)
  # The reduction keeps the result from being pruned and makes the sync cheap.
  multiply = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b)[:1], tf.float32)))
  _sync(multiply())
  return lambda: _sync(multiply())


def _our_loop(config, info, policy: str):
  """Builds our GAN as training does, under `policy`; returns (model, run `n` steps)."""
  strategy = distribute.build_strategy(config.strategy, config.num_cpu_replicas, config.tpu)
  keras.mixed_precision.set_global_policy(policy)
  try:
    with strategy.scope():
      model = gan_build.build_gan(config, info.image_shape, policy)
  finally:
    keras.mixed_precision.set_global_policy("float32")
  dataset = data.training_stream(info, config.batch_size, d_steps=config.d_steps,
                                 seed=config.seed, data_dir=config.data_dir, cache=config.cache,
                                 shuffle_buffer=config.shuffle_buffer,
                                 random_flip=config.random_flip,
                                 cache_dir=data.cache_dir(config.workdir),
                                 labels=config.conditioning != "none")
  iterator = iter(strategy.experimental_distribute_dataset(dataset))
  model.make_train_function()
  train_function = model.train_function
  per_call = config.steps_per_execution

  def run(steps: int) -> None:
    logs = None
    for _ in range(steps // per_call):
      logs = train_function(iterator)
    _sync(logs)

  return model, run


def _baseline_loop(config, info):
  """The tutorial's loop, fed float32 batches of our pipeline (the same images, same order)."""
  loop = tutorial_baseline.TutorialLoop(noise_dim=config.latent_dim)
  dataset = data.training_stream(info, config.batch_size, d_steps=1, seed=config.seed,
                                 data_dir=config.data_dir, cache=config.cache,
                                 shuffle_buffer=config.shuffle_buffer,
                                 random_flip=config.random_flip,
                                 cache_dir=data.cache_dir(config.workdir),
                                 labels=config.conditioning != "none")
  iterator = iter(dataset)

  def run(steps: int) -> None:
    losses = None
    for _ in range(steps):
      (batch,) = next(iterator)
      losses = loop.train_step(batch)
    _sync(losses)

  return loop, run


def _sampling_speed(generator: keras.Model, latent_dim: int, batch_size: int,
                    repeats: int) -> float:
  """Images/s of the exported generator's serving_default signature at `batch_size`."""
  with tempfile.TemporaryDirectory(prefix="tfgan_app_benchmark_") as base:
    path = export.export_generator(generator, latent_dim, base, "benchmark", 1, {},
                                   max_samples_per_request=max(batch_size, 2), warmup=False)
    loaded = tf.saved_model.load(path)
    serve = loaded.signatures[export.SERVING_SIGNATURE]
    latents = tf.random.stateless_normal([batch_size, latent_dim], seed=[5, 6])
    _sync(serve(latents=latents))
    timings = _Timings()
    for _ in range(max(repeats, 3)):
      timings.time(lambda: _sync(serve(latents=latents)))
    return batch_size / statistics.median(timings.wall)


def _check(config, options: Options) -> None:
  if options.timed_steps % config.steps_per_execution or (
      options.warmup_steps % config.steps_per_execution):
    raise BenchmarkError(
        f"--timed_steps={options.timed_steps} and --warmup_steps={options.warmup_steps} must be "
        f"multiples of --steps_per_execution={config.steps_per_execution}")


def _check_baseline(options: Options, image_shape) -> None:
  if options.baseline and tuple(image_shape) != tutorial_baseline.IMAGE_SHAPE:
    raise BenchmarkError(
        f"--baseline runs the tutorial's models, which take {tutorial_baseline.IMAGE_SHAPE} "
        f"images; this config trains on {tuple(image_shape)}: use a 28x28 greyscale dataset "
        "such as mnist or fashion_mnist")


def run_benchmark(config: config_lib.TrainConfig, options: Options,
                  config_name: Optional[str] = None) -> Dict[str, object]:
  """Times the config's training (and the baseline) and returns the result dict (KEYS)."""
  try:
    train.configure_threads(config.intra_op_threads, config.inter_op_threads)
    gan_lib.check_update(config.update, config.d_steps)
    _check(config, options)
    info = data.prepare(config.dataset, config.split, config.data_dir, config.image_size,
                        download=config.download, resize=config.resize,
                        channels=config.channels, cache=config.cache,
                        cache_dir=data.cache_dir(config.workdir),
                        labels=config.conditioning != "none")
    models.check_example_shape(config.architecture, info.example_shape)
    models.check_options(
        config.architecture, g_refine_blocks=config.g_refine_blocks,
        minibatch_kernels=config.minibatch_kernels if config.minibatch_discrimination else 0,
        g_refine_kernel_size=config.g_refine_kernel_size)
    _check_baseline(options, info.example_shape)
    if config.conditioning != "none":  # The classes come from the data, as in training.
      config = config.with_updates(num_classes=len(info.class_names))
  except (ValueError, ConfigError) as error:
    raise BenchmarkError(str(error)) from error
  keras.utils.set_random_seed(config.seed)
  resolution = precision.resolve(config.mixed_precision)
  print(resolution.describe() + f"; {resolution.hardware}", flush=True)

  model, run_ours = _our_loop(config, info, resolution.policy)
  step_flops = flops_lib.config_training_flops(model.generator, model.discriminator, config,
                                               info.image_shape)
  timers = {"ours": run_ours,
            "float32": _matmul_timer(options.matmul_size, tf.float32),
            "bfloat16": _matmul_timer(options.matmul_size, tf.bfloat16)}
  baseline_flops = None
  if options.baseline:
    loop, timers["baseline"] = _baseline_loop(config, info)
    baseline_flops = flops_lib.training_flops(loop.generator, loop.discriminator,
                                              config.latent_dim, info.image_shape,
                                              "simultaneous", 1)
  auto = precision.resolve(precision.AUTO)
  policies = []  # Timed besides ours with --compare_precisions.
  if options.compare_precisions:
    policies = [policy for policy in precision.candidate_policies(precision.detect_hardware())
                if policy != resolution.policy]
    for policy in policies:
      _, timers[f"policy {policy}"] = _our_loop(config, info, policy)
  training_loops = (["ours"] + [f"policy {policy}" for policy in policies]
                    + (["baseline"] if options.baseline else []))
  for name in training_loops:
    timers[name](options.warmup_steps)

  timings = {name: _Timings() for name in timers}
  steps = options.timed_steps
  for _ in range(options.repeats):
    for name in training_loops:
      timings[name].time(lambda: timers[name](steps))  # pylint: disable=cell-var-from-loop
    timings["float32"].time(timers["float32"])
    timings["bfloat16"].time(timers["bfloat16"])

  images_per_step = config.batch_size * config.d_steps
  ms_per_step = 1000 * statistics.median(timings["ours"].wall) / steps
  images_per_sec = images_per_step * 1000 / ms_per_step
  matmul_flops = 2 * options.matmul_size ** 3
  peak_float32 = matmul_flops / statistics.median(timings["float32"].wall)
  peak_bfloat16 = matmul_flops / statistics.median(timings["bfloat16"].wall)
  achieved = step_flops.per_real_image * images_per_sec
  cpu_ms_per_step = 1000 * statistics.median(timings["ours"].cpu) / steps
  # The same figures per CPU-second of this process: on a machine shared with other work, wall
  # time depends on everyone's load; the CPU time a step costs hardly does.
  per_cpu_second = step_flops.per_real_image * images_per_step * 1000 / cpu_ms_per_step
  cpu_peak_float32 = matmul_flops / statistics.median(timings["float32"].cpu)
  cpu_peak_bfloat16 = matmul_flops / statistics.median(timings["bfloat16"].cpu)
  result = {
      "config": config_name, "architecture": config.architecture, "update": config.update,
      "mixed_precision": resolution.policy, "mixed_precision_requested": resolution.requested,
      "precision_reason": resolution.reason, "hardware": resolution.hardware,
      "train_steps": config.train_steps,
      # Training alone, at the measured speed; sampling, checkpoints and the export add little.
      "estimated_run_minutes": config.train_steps * ms_per_step / 60_000,
      "batch_size": config.batch_size,
      "d_steps": config.d_steps, "steps_per_execution": config.steps_per_execution,
      "jit_compile": config.jit_compile, "intra_op_threads": config.intra_op_threads,
      "inter_op_threads": config.inter_op_threads, "timed_steps": steps,
      "repeats": options.repeats, "images_per_sec": images_per_sec, "ms_per_step": ms_per_step,
      "cpu_ms_per_step": cpu_ms_per_step,
      "train_flops_per_image": step_flops.per_real_image, "achieved_flops_per_sec": achieved,
      "matmul_float32_flops_per_sec": peak_float32,
      "matmul_bfloat16_flops_per_sec": peak_bfloat16,
      "fraction_of_float32_peak": achieved / peak_float32,
      "fraction_of_bfloat16_peak": achieved / peak_bfloat16,
      "sample_batch_size": options.sample_batch_size,
      "flops_per_cpu_sec": per_cpu_second,
      "matmul_float32_flops_per_cpu_sec": cpu_peak_float32,
      "matmul_bfloat16_flops_per_cpu_sec": cpu_peak_bfloat16,
      "cpu_fraction_of_float32_peak": per_cpu_second / cpu_peak_float32,
      "cpu_fraction_of_bfloat16_peak": per_cpu_second / cpu_peak_bfloat16,
  }
  if options.compare_precisions:
    rates = {resolution.policy: images_per_sec}
    for policy in policies:
      rates[policy] = images_per_step * steps / statistics.median(timings[f"policy {policy}"].wall)
    fastest = max(rates, key=rates.get)
    result.update({
        "precision_images_per_sec": rates, "auto_policy": auto.policy, "fastest_policy": fastest,
        "auto_fraction_of_fastest": rates[auto.policy] / rates[fastest],
    })
  if options.baseline:
    baseline_ms = 1000 * statistics.median(timings["baseline"].wall) / steps
    baseline_rate = config.batch_size * 1000 / baseline_ms
    baseline_cpu_ms = 1000 * statistics.median(timings["baseline"].cpu) / steps
    result.update({
        "baseline_images_per_sec": baseline_rate, "baseline_ms_per_step": baseline_ms,
        "baseline_cpu_ms_per_step": baseline_cpu_ms,
        "baseline_train_flops_per_image": baseline_flops.per_real_image,
        "baseline_achieved_flops_per_sec": baseline_flops.per_real_image * baseline_rate,
        "speedup_vs_baseline": images_per_sec / baseline_rate,
        # Per real image: CPU time per image of the tutorial's loop over ours.
        "cpu_speedup_vs_baseline": (baseline_cpu_ms / config.batch_size) / (
            cpu_ms_per_step / images_per_step),
    })
  result["sample_images_per_sec"] = _sampling_speed(
      model.sampling_generator, config.latent_dim, options.sample_batch_size, options.repeats)
  return result


def format_report(result: Dict[str, object]) -> str:
  """Human-readable lines of a result (the JSON object follows them)."""
  giga = 1e9
  lines = [
      f"config {result['config']}: {result['architecture']}, update={result['update']}, "
      f"{result['mixed_precision']}, batch {result['batch_size']} x d_steps {result['d_steps']}, "
      f"steps_per_execution={result['steps_per_execution']}, jit_compile={result['jit_compile']}",
      f"precision: {result['mixed_precision']} (--mixed_precision="
      f"{result['mixed_precision_requested']}: {result['precision_reason']}) on "
      f"{result['hardware']}",
      f"ours:     {result['images_per_sec']:8.1f} images/s  {result['ms_per_step']:8.1f} ms/step "
      f"({result['cpu_ms_per_step']:.0f} CPU ms/step), median of {result['repeats']} x "
      f"{result['timed_steps']} steps",
      f"          {result['train_flops_per_image'] / giga:.4f} GFLOP per real image (analytic) -> "
      f"{result['achieved_flops_per_sec'] / giga:.1f} GFLOP/s = "
      f"{100 * result['fraction_of_float32_peak']:.0f}% of the float32 matmul peak, "
      f"{100 * result['fraction_of_bfloat16_peak']:.0f}% of the bfloat16 one",
      f"peaks:    matmul float32 {result['matmul_float32_flops_per_sec'] / giga:.1f} GFLOP/s, "
      f"bfloat16 {result['matmul_bfloat16_flops_per_sec'] / giga:.1f} GFLOP/s (same run)",
      f"per CPU-second: ours {result['flops_per_cpu_sec'] / giga:.1f} GFLOP, matmul float32 "
      f"{result['matmul_float32_flops_per_cpu_sec'] / giga:.1f}, bfloat16 "
      f"{result['matmul_bfloat16_flops_per_cpu_sec'] / giga:.1f} -> "
      f"{100 * result['cpu_fraction_of_float32_peak']:.0f}% / "
      f"{100 * result['cpu_fraction_of_bfloat16_peak']:.0f}% of the peaks",
  ]
  if "baseline_images_per_sec" in result:
    lines += [
        f"tutorial: {result['baseline_images_per_sec']:8.1f} images/s  "
        f"{result['baseline_ms_per_step']:8.1f} ms/step "
        f"({result['baseline_cpu_ms_per_step']:.0f} CPU ms/step), "
        f"{result['baseline_train_flops_per_image'] / giga:.4f} GFLOP per real image -> "
        f"{result['baseline_achieved_flops_per_sec'] / giga:.1f} GFLOP/s",
        f"speedup:  {result['speedup_vs_baseline']:.2f}x the tutorial loop's images/s "
        f"({result['cpu_speedup_vs_baseline']:.2f}x per CPU-second)",
    ]
  if "precision_images_per_sec" in result:
    rates = result["precision_images_per_sec"]
    lines.append("precisions: " + ", ".join(f"{policy} {rate:.1f} images/s"
                                            for policy, rate in rates.items()))
    auto, fastest = result["auto_policy"], result["fastest_policy"]
    verdict = ("the fastest" if auto == fastest else
               f"{100 * result['auto_fraction_of_fastest']:.0f}% of the fastest ({fastest})")
    lines.append(f"            --mixed_precision=auto picks {auto}: {verdict}")
  lines.append(f"sampling: {result['sample_images_per_sec']:8.1f} images/s from the exported "
               f"generator at batch {result['sample_batch_size']}")
  minutes = result["estimated_run_minutes"]
  lines.append(f"{result['config'] or 'this config'}: about "
               f"{minutes:.{1 if minutes < 10 else 0}f} minutes here "
               f"({result['train_steps']} steps at {result['ms_per_step']:.0f} ms/step, "
               f"{result['mixed_precision']})")
  return "\n".join(lines)
