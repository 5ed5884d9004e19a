"""Runs (or resumes) a training run: `train_and_export(config)`, what `python -m tfgan_app.train`
calls.

The workdir explains itself: `flags.cfg` (the resolved flags; `--flagfile=` it to reproduce the
run), `run_spec.json` (what the checkpoints hold), `checkpoints/`, `train/` (TensorBoard events),
`samples/step_*.png` and `export/<model_name>/<step>/` (the SavedModel). Running the same
command again resumes from the newest checkpoint; a finished run says so and exits.
"""

import contextlib
import dataclasses
import json
import os
from typing import Optional

import keras
import tensorflow as tf

from tfgan_app.common import atomic
from tfgan_app.common import config as config_lib
from tfgan_app.common import preemption
from tfgan_app.common import workdir_lock
from tfgan_app.data import datasets as data
from tfgan_app.evaluation import callback as eval_callback
from tfgan_app.evaluation import metrics
from tfgan_app.evaluation import protocol as eval_protocol
from tfgan_app.exporting import saved_model as export
from tfgan_app.hardware import distribute
from tfgan_app.hardware import precision
from tfgan_app.models import registry as models
from tfgan_app.runs import checkpoints
from tfgan_app.runs import workdir as workdir_lib
from tfgan_app.runs.workdir import CHECKPOINT_DIR, FLAGFILE, RUN_SPEC, SAMPLE_DIR, SUMMARY_DIR
from tfgan_app.runs.workdir import PRECISION_KEY, ConfigError
from tfgan_app.training import callbacks as callbacks_lib
from tfgan_app.training import trainers

# Seed purpose of the fixed latents behind the sample grids.
_SAMPLE_LATENTS = 7


@dataclasses.dataclass
class TrainResult:
  step: int
  finished_before: bool  # The workdir already held a finished run.
  export_path: Optional[str]
  last_logs: dict
  interrupted: bool = False  # Stopped early by SIGTERM/SIGINT, after a checkpoint.


def _configure_determinism(config) -> None:
  # Seeds Python, NumPy, TF and Keras: initial weights follow --seed in every mode.
  keras.utils.set_random_seed(config.seed)
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()


def configure_threads(intra_op_threads: int, inter_op_threads: int) -> None:
  """Sets TensorFlow's thread pools (0 leaves TensorFlow's default).

  Raises:
    ConfigError: the runtime already runs with other settings (they are fixed at its start).
  """
  for value, getter, setter, name in (
      (intra_op_threads, tf.config.threading.get_intra_op_parallelism_threads,
       tf.config.threading.set_intra_op_parallelism_threads, "intra_op_threads"),
      (inter_op_threads, tf.config.threading.get_inter_op_parallelism_threads,
       tf.config.threading.set_inter_op_parallelism_threads, "inter_op_threads")):
    if value and getter() != value:
      try:
        setter(value)
      except RuntimeError as error:
        raise ConfigError(f"--{name}={value} cannot be applied: TensorFlow already started "
                          f"with {getter() or 'its default'} ({error})") from error


def check_steps_per_execution(config, start_step: int = 0) -> None:
  """Keras runs callbacks only between executions of `steps_per_execution` steps.

  Logging, sampling, checkpoints, evaluation and the end of training therefore happen at the
  right steps only when their intervals are multiples of it; otherwise the run would silently
  log, save or stop at other steps.

  Raises:
    ConfigError: naming the flag that is not a multiple.
  """
  every = config.steps_per_execution
  if every == 1:
    return
  intervals = {"train_steps": config.train_steps, "log_every": config.log_every,
               "sample_every": config.sample_every, "checkpoint_every": config.checkpoint_every,
               "eval_every": config.eval_every}
  for name, value in intervals.items():
    if value % every:
      raise ConfigError(f"--{name}={value} is not a multiple of --steps_per_execution={every}; "
                        "callbacks run only between executions, so use multiples of it")
  if start_step % every:
    raise ConfigError(f"the run resumes at step {start_step}, not a multiple of "
                      f"--steps_per_execution={every}; resume with a divisor of {start_step}")


def check_one_step_per_execution_with_replicas(config, replicas: int) -> None:
  """Several steps per execution fail under more than one replica: Keras 3's multi-step loop
  (a tf.while_loop over a tf.cond around `strategy.run`) stops at run time with "You must feed
  a value for placeholder tensor" (keras-team/keras#19246, any train_step that applies
  gradients), after the workdir is set up.

  Raises:
    ConfigError: `steps_per_execution` > 1 with `replicas` > 1.
  """
  if replicas > 1 and config.steps_per_execution > 1:
    raise ConfigError(
        f"--steps_per_execution={config.steps_per_execution} cannot run under the {replicas} "
        f"replicas of --strategy={config.strategy}: Keras 3 fails on several steps per "
        "execution with replicas (keras-team/keras#19246); use --steps_per_execution=1")


def train_and_export(config: config_lib.TrainConfig) -> TrainResult:
  """Runs (or resumes) training as configured, then exports the generator.

  Raises:
    ConfigError, data.DatasetError: before anything in the workdir changes.
    workdir_lock.WorkdirLockedError: another run holds the workdir.
    callbacks_lib.CheckpointWriteError: a checkpoint could not be written.
    callbacks_lib.TrainingDivergedError: a loss became NaN/Inf (no checkpoint written for it).
    export.ExportError: the generator could not be exported.
  """
  trainer = trainers.for_architecture(config.architecture)  # Chosen once, here.
  try:
    configure_threads(config.intra_op_threads, config.inter_op_threads)
    resolution = precision.resolve(config.mixed_precision)
    print(resolution.describe() + f"; {resolution.hardware}", flush=True)
    check_steps_per_execution(config)
    trainer.check(config)
    strategy = distribute.build_strategy(config.strategy, config.num_cpu_replicas, config.tpu)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
      raise ConfigError(
          f"--batch_size={config.batch_size} is not divisible by the {replicas} replicas of "
          f"--strategy={config.strategy}; use a multiple of {replicas}")
    check_one_step_per_execution_with_replicas(config, replicas)
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
    if config.eval_every and data.is_point_dataset(info):
      raise ConfigError(f"--eval_every measures images with a classifier; {config.dataset!r} is "
                        "a toy distribution, measured every --sample_every steps instead: drop "
                        "--eval_every")
    config = trainer.adapt_to_data(config, info)
  except ValueError as error:
    raise ConfigError(str(error)) from error
  spec = trainer.family.run_spec(config, info.example_shape)
  workdir_lib.check_workdir(config, spec)

  _configure_determinism(config)
  keras.mixed_precision.set_global_policy(resolution.policy)
  with strategy.scope():
    try:
      model = trainer.family.build(config, info.example_shape, resolution.policy)
    except ValueError as error:  # Options the built models or the strategy cannot run.
      raise ConfigError(str(error)) from error
  chief = distribute.is_chief(strategy)
  # Only the chief owns the workdir; other workers write to temporary directories.
  lock = workdir_lock.WorkdirLock(config.workdir) if chief else contextlib.nullcontext()
  with lock:
    return _train_locked(config, trainer, model, info, spec, chief, resolution)


def _train_locked(config, trainer, model, info, spec, chief, resolution) -> TrainResult:
  """The part of a run that may write: restore, train, checkpoint, export."""
  output = distribute.WriteDir(config.workdir, chief)
  checkpoint = checkpoints.make_checkpoint(model)
  # Every worker restores the chief's newest checkpoint that restores cleanly.
  checkpoint_dir = os.path.join(config.workdir, CHECKPOINT_DIR)
  restored = checkpoints.restore_checkpoints(model, checkpoint_dir, config.workdir)
  if restored.path:
    checkpoints.continue_save_counter(checkpoint, restored.path)
  if restored.skipped and output.chief:
    checkpoints.drop_from_index(checkpoint_dir, restored.path)
  # Created after the index is repaired: the manager takes its latest checkpoint from it.
  manager = tf.train.CheckpointManager(
      checkpoint, os.path.join(output.path, CHECKPOINT_DIR), max_to_keep=config.keep_checkpoints)
  start_step = int(model.step.numpy())
  check_steps_per_execution(config, start_step)
  if restored.path:
    skipped = (f" (newer {', '.join(os.path.basename(p) for p, _ in restored.skipped)}"
               " cannot be restored, see above)" if restored.skipped else "")
    print(f"Resumed from {restored.path} at step {start_step}{skipped}", flush=True)
    previous = workdir_lib.recorded_precision(config.workdir)
    if previous and previous.get("policy") != resolution.policy:
      print(f"Precision changed on resume: the run trained in {previous.get('policy')} "
            f"({previous.get('hardware')}) and continues in {resolution.policy}; checkpoints "
            "hold float32 weights, so training goes on from the same values", flush=True)

  if output.chief:
    atomic.write_text(os.path.join(config.workdir, FLAGFILE), config.to_flagfile())
    record = {**spec, PRECISION_KEY: resolution.to_json()}
    if getattr(info, "class_names", None):
      record[workdir_lib.CLASS_NAMES_KEY] = list(info.class_names)
    atomic.write_text(os.path.join(config.workdir, RUN_SPEC), json.dumps(record, indent=2))

  stopper = preemption.StopOnSignal()
  try:
    finished_before = start_step >= config.train_steps
    last_logs = {}
    if finished_before:
      print(f"Run in {config.workdir} already finished at step {start_step} "
            f"(--train_steps={config.train_steps}); nothing to train.", flush=True)
    else:
      last_logs = _fit(model, manager, config, info, start_step, output.path, stopper,
                       resolution, trainer)
  finally:
    output.cleanup()

  step = int(model.step.numpy())
  if stopper.received is not None:
    print(f"Stopped at step {step}; checkpoint {manager.latest_checkpoint}. Resume with: "
          f"python -m tfgan_app.train --flagfile={os.path.join(config.workdir, FLAGFILE)}",
          flush=True)
    return TrainResult(step=step, finished_before=False, export_path=None,
                       last_logs=last_logs, interrupted=True)
  export_path = None
  if config.export and output.chief:
    export_path = export.export_generator(
        model.sampling_generator, config.latent_dim, config.resolved_export_dir,
        config.model_name, step,
        workdir_lib.export_metadata(config, info.example_shape, step, resolution.to_json(),
                                    getattr(info, "class_names", None)))
    print(f"Exported generator (step {step}) to {export_path}", flush=True)
  return TrainResult(step=step, finished_before=finished_before, export_path=export_path,
                     last_logs=last_logs)


def _callbacks(manager, config, info, output_dir, stopper, writer, images_per_step,
               print_lines) -> list:
  """The run's callbacks, in order: the guard stops a diverged run before the saver can
  checkpoint it."""
  if data.is_point_dataset(info):
    # Points: metrics against the known density and a plot over D's decision surface.
    sample_latents = tf.random.stateless_normal(
        [callbacks_lib.TOY_MONITOR_SAMPLES, config.latent_dim],
        seed=[config.seed, _SAMPLE_LATENTS])
    samples_callback = callbacks_lib.ToyMonitor(
        writer, os.path.join(output_dir, SAMPLE_DIR), info.distribution, sample_latents,
        config.sample_every,
        metrics_file=os.path.join(output_dir, eval_protocol.METRICS_FILE),
        seed=config.seed, d_batch_size=config.batch_size)
  elif config.num_classes and config.conditioning != "none":
    # One row per class (callbacks.class_rows), the same latents in every row.
    classes, columns = callbacks_lib.class_rows(config.num_classes, config.num_sample_images)
    row_latents = tf.random.stateless_normal([columns, config.latent_dim],
                                             seed=[config.seed, _SAMPLE_LATENTS])
    samples_callback = callbacks_lib.SampleGrid(
        writer, os.path.join(output_dir, SAMPLE_DIR), tf.tile(row_latents, [len(classes), 1]),
        config.sample_every, labels=tf.constant(classes.repeat(columns), tf.int32),
        columns=columns)
  else:
    sample_latents = tf.random.stateless_normal(
        [config.num_sample_images, config.latent_dim], seed=[config.seed, _SAMPLE_LATENTS])
    samples_callback = callbacks_lib.SampleGrid(writer, os.path.join(output_dir, SAMPLE_DIR),
                                                sample_latents, config.sample_every)
  extra_callbacks = []
  if config.eval_every:
    extra_callbacks.append(eval_callback.EvalCallback(
        config.eval_every, config.dataset, info.image_shape, classifier=config.eval_classifier,
        metrics=metrics.parse_metric_names(config.eval_metrics),
        num_samples=config.eval_num_samples, seed=config.seed, writer=writer,
        metrics_file=os.path.join(output_dir, "metrics.jsonl"), data_dir=config.data_dir))
  return [
      callbacks_lib.DivergenceGuard(manager),
      stopper,
      callbacks_lib.MetricsLogger(writer, config.log_every, images_per_step, config.train_steps,
                                  print_lines=print_lines),
      samples_callback,
      callbacks_lib.CheckpointSaver(manager, config.checkpoint_every),
      *extra_callbacks,
  ]


def _fit(model, manager, config, info, start_step, output_dir, stopper, resolution,
         trainer) -> dict:
  writer = tf.summary.create_file_writer(os.path.join(output_dir, SUMMARY_DIR))
  with writer.as_default(step=start_step):
    # TensorBoard's Text tab: what this (part of the) run computed in, and why.
    tf.summary.text("precision", f"{resolution.describe()}; {resolution.hardware}")
  writer.flush()

  def make_callbacks(images_per_step, print_lines):
    return _callbacks(manager, config, info, output_dir, stopper, writer, images_per_step,
                      print_lines)

  return trainer.fit(model, config, info, start_step, make_callbacks,
                     callbacks_lib.progress_bar_visible())
