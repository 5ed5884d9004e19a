"""Trains a GAN: `python -m tfgan_app.train --flagfile=configs/dcgan.cfg [--workdir=DIR]`.

The workdir explains itself: `flags.cfg` (the resolved flags; `--flagfile=` it to reproduce the
run), `run_spec.json` (what the checkpoints hold), `checkpoints/`, `train/` (TensorBoard events),
`samples/step_*.png` and `export/<model_name>/<step>/` (the SavedModel). Running the same
command again resumes from the newest checkpoint; a finished run says so and exits.
"""

import contextlib
import dataclasses
import json
import os
import sys
from typing import Callable, Optional

from absl import app
from google.protobuf import message as message_lib
import keras
import numpy as np
import tensorflow as tf

from tfgan_app import callbacks as callbacks_lib
from tfgan_app import config as config_lib
from tfgan_app import data
from tfgan_app import distribute
from tfgan_app import evaluate
from tfgan_app import export
from tfgan_app import flags as app_flags
from tfgan_app import gan as gan_lib
from tfgan_app import maximum_likelihood
from tfgan_app import metrics
from tfgan_app import models
from tfgan_app.models import gmm as gmm_lib
from tfgan_app import precision
from tfgan_app import preemption
from tfgan_app import schedules
from tfgan_app import toy_data
from tfgan_app import workdir_lock

FLAGFILE = "flags.cfg"
RUN_SPEC = "run_spec.json"
CHECKPOINT_DIR = "checkpoints"
SAMPLE_DIR = "samples"
SUMMARY_DIR = "train"
# Seed purpose of the fixed latents behind the sample grids.
_SAMPLE_LATENTS = 7


class ConfigError(ValueError):
  """The run cannot start as configured; the message says what is wrong and what is accepted."""


@dataclasses.dataclass
class TrainResult:
  step: int
  finished_before: bool  # The workdir already held a finished run.
  export_path: Optional[str]
  last_logs: dict
  interrupted: bool = False  # Stopped early by SIGTERM/SIGINT, after a checkpoint.


# Values of run_spec.json keys that runs written before the key existed hold implicitly.
_SPEC_DEFAULTS = {"minibatch_discrimination": False, "g_refine_blocks": 0}
# run_spec.json's record of the precision policy the run last trained in (precision.Resolution).
# Not part of the checkpoint's structure: weights are float32 under every policy, so a run
# resumes on hardware that resolves --mixed_precision=auto differently.
PRECISION_KEY = "precision"


def _run_spec(config: config_lib.TrainConfig, image_shape) -> dict:
  """The fields that decide the checkpoint's structure; resuming with others cannot work.

  `image_shape` is the shape of one example: [H, W, C], or [D] for toy points.
  """
  if config.architecture == models.GMM:
    return {"architecture": config.architecture, "dataset": config.dataset,
            "image_shape": list(image_shape), "latent_dim": config.latent_dim,
            "gmm_components": config.gmm_components}
  spec = {"architecture": config.architecture, "dataset": config.dataset,
          "image_shape": list(image_shape), "latent_dim": config.latent_dim,
          "g_filters": config.g_filters, "d_filters": config.d_filters,
          "kernel_size": config.kernel_size, "g_refine_blocks": config.g_refine_blocks,
          "ema": config.ema_decay > 0,
          "minibatch_discrimination": config.minibatch_discrimination}
  if config.minibatch_discrimination:
    # Only then: the sizes of a layer that is not there do not decide anything.
    spec.update(minibatch_kernels=config.minibatch_kernels,
                minibatch_kernel_dim=config.minibatch_kernel_dim)
  if config.architecture == "mlp":  # Only then: other workdirs from before keep resuming.
    # Dropout on or off decides whether the checkpoint holds D's dropout RNG states.
    spec.update(g_units=",".join(map(str, config_lib.parse_units(config.g_units))),
                d_units=",".join(map(str, config_lib.parse_units(config.d_units))),
                d_dropout=config.d_dropout)
  return spec


def _read_run_spec(path: str) -> dict:
  """run_spec.json's structural fields (without the precision record)."""
  with open(path) as f:
    spec = json.load(f)
  spec.pop(PRECISION_KEY, None)
  if spec.get("architecture") == models.GMM:
    return spec  # Its spec has none of the GAN's fields.
  return {**_SPEC_DEFAULTS, **spec}


def recorded_precision(workdir: str) -> Optional[dict]:
  """The precision record (`precision.Resolution.to_json()`) of the run in `workdir`, if any."""
  try:
    with open(os.path.join(workdir, RUN_SPEC)) as f:
      return json.load(f).get(PRECISION_KEY)
  except (OSError, ValueError, AttributeError):
    return None


def _check_workdir(config, spec) -> None:
  """Refuses a workdir that holds a run of another architecture, before touching it."""
  path = os.path.join(config.workdir, RUN_SPEC)
  if not os.path.exists(path):
    if tf.train.latest_checkpoint(os.path.join(config.workdir, CHECKPOINT_DIR)):
      raise ConfigError(f"workdir {config.workdir} holds checkpoints but no {RUN_SPEC}; "
                        "use a new --workdir")
    return
  existing = _read_run_spec(path)
  differences = [f"{key}: checkpoint {existing[key]!r}, flags {value!r}"
                 for key, value in spec.items() if key in existing and existing[key] != value]
  if not differences:
    # Keys that only one side has (sizes of a layer only one model has, another architecture's
    # fields) are named only when nothing that both have differs.
    differences = [f"{key}: checkpoint {existing.get(key)!r}, flags {spec.get(key)!r}"
                   for key in sorted(set(spec) ^ set(existing))]
  if differences:
    raise ConfigError(
        f"workdir {config.workdir} holds a checkpoint of a different model "
        f"({'; '.join(differences)}); use a new --workdir or the run's own flags "
        f"(--flagfile={os.path.join(config.workdir, FLAGFILE)})")


def _write_text_atomically(path: str, text: str) -> None:
  staging = path + ".tmp"
  with open(staging, "w") as f:
    f.write(text)
  os.replace(staging, path)


def _configure_determinism(config) -> None:
  # Seeds Python, NumPy, TF and Keras: initial weights follow --seed in every mode.
  keras.utils.set_random_seed(config.seed)
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()


def build_gan(config, image_shape, policy: Optional[str] = None) -> gan_lib.GAN:
  """Builds and compiles the GAN in the current strategy scope.

  `image_shape` is the shape of one example: [H, W, C], or [D] for toy points. `policy` is the
  resolved dtype policy (None: `config.mixed_precision` resolved for this machine); the layers
  take Keras's global policy, which the caller sets.
  """
  policy = policy or precision.resolve(config.mixed_precision).policy
  g_units = config_lib.parse_units(config.g_units)
  generator, discriminator = models.build_models(
      config.architecture, config.latent_dim, image_shape, config.g_filters, config.d_filters,
      sync_batchnorm=config.sync_batchnorm, kernel_size=config.kernel_size,
      g_refine_blocks=config.g_refine_blocks,
      minibatch_kernels=config.minibatch_kernels if config.minibatch_discrimination else 0,
      minibatch_kernel_dim=config.minibatch_kernel_dim, g_units=g_units,
      d_units=config_lib.parse_units(config.d_units), d_dropout=config.d_dropout)
  ema_generator = None
  if config.ema_decay > 0:
    ema_generator = models.build_generator(
        config.architecture, config.latent_dim, image_shape, config.g_filters,
        config.sync_batchnorm, name="ema_generator", kernel_size=config.kernel_size,
        refine_blocks=config.g_refine_blocks, hidden_units=g_units)
  model = gan_lib.GAN(generator, discriminator, latent_dim=config.latent_dim,
                      d_steps=config.d_steps, loss=config.loss, seed=config.seed,
                      label_smoothing=config.label_smoothing, g_objective=config.g_objective,
                      update=config.update,
                      ema_generator=ema_generator, ema_decay=config.ema_decay)
  if ema_generator is not None:
    model.reset_ema()
  def learning_rate(initial, updates_per_step):
    if config.lr_decay_start >= 1.0:
      return initial
    return schedules.LinearDecayToZero(initial, config.train_steps * updates_per_step,
                                       config.lr_decay_start)

  def optimizer(initial, updates_per_step):
    adam = keras.optimizers.Adam(learning_rate(initial, updates_per_step), beta_1=config.beta1,
                                 beta_2=config.beta2)
    if policy == precision.MIXED_FLOAT16:
      # float16 gradients underflow without loss scaling; both players need their own scale
      # (gan.GAN scales each loss with its optimizer's current scale).
      return keras.optimizers.LossScaleOptimizer(adam)
    return adam

  model.compile(
      d_optimizer=optimizer(config.d_lr, config.d_steps),
      g_optimizer=optimizer(config.g_lr, 1),
      steps_per_execution=config.steps_per_execution,
      jit_compile=config.jit_compile)
  return model


def build_model(config, image_shape, policy: Optional[str] = None):
  """The `gan.GAN` of `config`, or for --architecture=gmm a `maximum_likelihood.MixtureRun`."""
  if config.architecture == models.GMM:
    return maximum_likelihood.build_run(config.gmm_components, image_shape, config.seed)
  return build_gan(config, image_shape, policy)


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


def _checkpoint_objects(model):
  """(required, optional) objects of a run's checkpoint.

  Required: everything that decides the rest of a run: weights, optimizer slots, step, seed and
  the RNG state of D's dropout. Optional: the dynamic loss scales of mixed_float16
  (`keras.optimizers.LossScaleOptimizer`). The optimizers are saved without their loss-scaling
  wrapper, so a run resumes under any precision policy: a float16 run's checkpoint restores into
  a bfloat16 or float32 run (the scales are not needed there), and the other way round the
  scales start afresh.
  """
  if isinstance(model, maximum_likelihood.MixtureRun):
    return {"mixture": model.checkpoint()}, {}
  required = dict(generator=model.generator, discriminator=model.discriminator,
                  g_optimizer=_without_loss_scaling(model.g_optimizer),
                  d_optimizer=_without_loss_scaling(model.d_optimizer),
                  step=model.step, seed=model.seed)
  if model.ema_generator is not None:
    required["ema_generator"] = model.ema_generator
  random_states = getattr(model.discriminator, "random_states", dict)()
  if random_states:  # Dropout masks (mlp, tf_tutorial): exact resume needs their RNG state.
    required["discriminator_random"] = tf.train.Checkpoint(**random_states)
  optional = {}
  for name in ("g_optimizer", "d_optimizer"):
    optimizer = getattr(model, name)
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
      optional[f"{name}_loss_scale"] = tf.train.Checkpoint(
          step_counter=optimizer.step_counter, dynamic_scale=optimizer.dynamic_scale)
  return required, optional


def _without_loss_scaling(optimizer):
  if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
    return optimizer.inner_optimizer
  return optimizer


def make_checkpoint(model) -> tf.train.Checkpoint:
  """The checkpoint a run saves (see `_checkpoint_objects`)."""
  required, optional = _checkpoint_objects(model)
  if isinstance(model, maximum_likelihood.MixtureRun):
    return required["mixture"]
  return tf.train.Checkpoint(**required, **optional)


def restore_checkpoint(model, path: str) -> None:
  """Restores `model` from the checkpoint `path`: every required object must be in it.

  Raises:
    tf.errors.OpError, ValueError, AssertionError: the checkpoint is unreadable or does not fit.
  """
  required, optional = _checkpoint_objects(model)
  if isinstance(model, maximum_likelihood.MixtureRun):
    required["mixture"].restore(path).assert_existing_objects_matched()
    return
  tf.train.Checkpoint(**required).restore(path).assert_existing_objects_matched()
  if optional:
    # Loss scales are restored where the checkpoint has them (a float16 run's).
    tf.train.Checkpoint(**optional).restore(path).expect_partial()


# What reading a damaged checkpoint raises: a truncated data file fails with IndexError inside
# TensorFlow's reader, a truncated or corrupt index with DataLossError (an OpError), a
# checkpoint of another structure fails the match assertion (AssertionError/ValueError).
_UNREADABLE_CHECKPOINT_ERRORS = (tf.errors.OpError, ValueError, AssertionError, IndexError,
                                 KeyError, TypeError, message_lib.DecodeError)


@dataclasses.dataclass
class Restored:
  """The outcome of `restore_checkpoints`."""
  path: Optional[str]  # The checkpoint restored; None: the directory lists none.
  # (path, reason) of each newer listed checkpoint that failed to restore, newest first.
  skipped: list = dataclasses.field(default_factory=list)


def listed_checkpoints(checkpoint_dir: str) -> list:
  """The checkpoints the CheckpointManager's index lists, newest first ([] without an index).

  Raises:
    ConfigError: the index file exists but cannot be read (resuming from step 0 would
      overwrite the run).
  """
  try:
    state = tf.train.get_checkpoint_state(checkpoint_dir)
  except ValueError:  # An index without a newest checkpoint (an empty file, say).
    state = None
  if state is None:
    index = os.path.join(checkpoint_dir, "checkpoint")
    if os.path.exists(index):
      raise ConfigError(f"cannot read the checkpoint index {index}; restore it from a backup, "
                        "or rewrite it to list the ckpt-<step> files in "
                        f"{checkpoint_dir} (model_checkpoint_path: \"ckpt-<step>\")")
    return []
  paths = list(state.all_model_checkpoint_paths)
  if state.model_checkpoint_path not in paths:
    paths.append(state.model_checkpoint_path)
  return paths[::-1]


def _first_line(error: BaseException) -> str:
  text = str(error).strip()
  return text.splitlines()[0] if text else type(error).__name__


def _print_to_stderr(line: str) -> None:
  print(line, file=sys.stderr, flush=True)


def restore_checkpoints(model, checkpoint_dir: str, workdir: str,
                        report: Callable[[str], None] = _print_to_stderr) -> Restored:
  """Restores the newest listed checkpoint that restores cleanly, skipping broken newer ones.

  A failed attempt may already have written some variables; the checkpoint restored after it
  matches every required object (`restore_checkpoint`: `assert_existing_objects_matched`), and
  every variable of the model exists before the restore (optimizers are built at compile), so
  all of them are overwritten.

  Args:
    model: the `gan.GAN` or `maximum_likelihood.MixtureRun` to restore into.
    checkpoint_dir: the directory of the CheckpointManager's index.
    workdir: the run's workdir, for messages.
    report: called with one line per skipped checkpoint (default: print to stderr).

  Returns:
    `Restored`: the path restored (None when none is listed) and the skipped ones.

  Raises:
    ConfigError: checkpoints are listed but none restores; the message names each and why.
  """
  skipped = []
  for path in listed_checkpoints(checkpoint_dir):
    if not tf.io.gfile.exists(path + ".index"):
      reason = "its .index file is missing"
    else:
      try:
        restore_checkpoint(model, path)
        return Restored(path, skipped)
      except _UNREADABLE_CHECKPOINT_ERRORS as error:
        reason = f"{type(error).__name__}: {_first_line(error)}"
    skipped.append((path, reason))
    report(f"Skipped checkpoint {path}: cannot restore it ({reason})")
  if not skipped:
    return Restored(None)
  names = "; ".join(f"{path}: {reason}" for path, reason in skipped)
  raise ConfigError(
      f"cannot restore checkpoint {names}. The run's {FLAGFILE} and {RUN_SPEC} are kept: "
      f"restore {checkpoint_dir} from a backup (or use the code version that wrote it), or, to "
      f"train the run again from step 0 in {workdir}, delete the broken ckpt-<step>.* files "
      f"and {os.path.join(checkpoint_dir, 'checkpoint')}")


def restore_latest(model, checkpoint_dir, workdir) -> Optional[str]:
  """Restores the newest checkpoint in `checkpoint_dir` that restores cleanly, if any.

  Broken newer checkpoints are skipped with one line each on stderr (`restore_checkpoints`).

  Raises:
    ConfigError: checkpoints are listed but none restores.
  """
  return restore_checkpoints(model, checkpoint_dir, workdir).path


def _continue_save_counter(checkpoint: tf.train.Checkpoint, path: str) -> None:
  """Gives the manager's `checkpoint` the save counter of the checkpoint `path` it resumes.

  `restore_checkpoint` restores the run's objects through checkpoints of their own, so the
  counter of the one the manager saves would otherwise start again at 0, and a resumed run's
  checkpoints would differ from an uninterrupted run's in it.
  """
  reader = tf.train.load_checkpoint(path)
  key = "save_counter/.ATTRIBUTES/VARIABLE_VALUE"
  if reader.has_tensor(key):
    checkpoint.save_counter.assign(reader.get_tensor(key))


def _drop_from_index(checkpoint_dir: str, restored: str) -> None:
  """Rewrites the CheckpointManager's index to end at `restored`.

  The checkpoints listed after it could not be restored. Left in the index, the manager would
  take the newest of them for its latest checkpoint: the saver would not save that step again
  (it would seem saved already) and errors would name it as the last good checkpoint. Their
  files stay on disk; saving that step again overwrites them.
  """
  state = tf.train.get_checkpoint_state(checkpoint_dir)
  paths = list(state.all_model_checkpoint_paths)
  keep = paths.index(restored) + 1 if restored in paths else 0
  timestamps = list(state.all_model_checkpoint_timestamps)[:keep]
  if not keep:
    paths, keep, timestamps = [restored], 1, []
  # The CheckpointManager's own writer (tf.compat.v1.train.update_checkpoint_state is
  # deprecated), with relative paths as the manager writes them: a copied workdir stays
  # self-contained.
  tf.__internal__.train.update_checkpoint_state(
      checkpoint_dir, restored, all_model_checkpoint_paths=paths[:keep],
      save_relative_paths=True, all_model_checkpoint_timestamps=timestamps or None,
      last_preserved_timestamp=state.last_preserved_timestamp)


def restore_run(workdir: str):
  """Rebuilds a training run from its workdir and restores its newest checkpoint.

  The model is rebuilt from the run's own flags.cfg and run_spec.json, so callers (export,
  evaluate) need no flags of the run.

  Returns:
    (model, config, image_shape, checkpoint_path).

  Broken newer checkpoints (a truncated file, say) are skipped, one line each on stderr, and
  the newest one that restores is used.

  Raises:
    ConfigError: not a training workdir, unreadable run files, no checkpoint, or no checkpoint
      that restores into the model.
  """
  flagfile, spec_path = os.path.join(workdir, FLAGFILE), os.path.join(workdir, RUN_SPEC)
  if not (os.path.isfile(flagfile) and os.path.isfile(spec_path)):
    raise ConfigError(f"{workdir} is not a training workdir (no {FLAGFILE} and {RUN_SPEC}); "
                      "pass the --workdir of a tfgan_app.train run")
  try:
    spec = _read_run_spec(spec_path)
    image_shape = tuple(spec["image_shape"])
    # run_spec.json says what the checkpoints hold, so its fields win over flags.cfg.
    config = config_lib.TrainConfig.from_flagfile(flagfile)
    structure = {name: value for name, value in spec.items()
                 if name in config_lib.TrainConfig.__dataclass_fields__}
    config = config.with_updates(workdir=workdir, **structure)
    if "ema" in spec and spec["ema"] != (config.ema_decay > 0):
      config = config.with_updates(ema_decay=0.999 if spec["ema"] else 0.0)
  except (OSError, ValueError, KeyError, TypeError) as error:
    raise ConfigError(f"cannot read the run in {workdir}: {error}") from error
  checkpoint_dir = os.path.join(workdir, CHECKPOINT_DIR)
  if not listed_checkpoints(checkpoint_dir):
    raise ConfigError(f"no checkpoint in {checkpoint_dir}; train first")
  # Export and evaluation compute in float32, whatever the run trained in.
  model = build_model(config, image_shape, precision.FLOAT32)
  # Broken newer checkpoints are skipped with one line each on stderr.
  restored = restore_checkpoints(model, checkpoint_dir, workdir)
  if restored.skipped:
    _print_to_stderr(f"Using {restored.path} (step {int(model.step.numpy())}), the newest "
                     "checkpoint that restores")
  return model, config, image_shape, restored.path


def export_metadata(config, image_shape, step: int,
                    precision_record: Optional[dict] = None) -> dict:
  """The export's metadata: `image_shape` [H, W, C] for images, `sample_shape` [D] for points.

  `precision_record`: the precision policy the run trained in (requested, policy, reason,
  hardware: `precision.Resolution.to_json()`), when known.
  """
  shape_key = "sample_shape" if toy_data.is_toy(config.dataset) else "image_shape"
  metadata = {"model_name": config.model_name, "step": step, "latent_dim": config.latent_dim,
              shape_key: list(image_shape), "dataset": config.dataset,
              "architecture": config.architecture, "ema": config.ema_decay > 0,
              "flags": dataclasses.asdict(config)}
  if precision_record is not None:
    metadata[PRECISION_KEY] = precision_record
  return metadata


def train_and_export(config: config_lib.TrainConfig) -> TrainResult:
  """Runs (or resumes) training as configured, then exports the generator.

  Raises:
    ConfigError, data.DatasetError: before anything in the workdir changes.
    workdir_lock.WorkdirLockedError: another run holds the workdir.
    callbacks_lib.CheckpointWriteError: a checkpoint could not be written.
    callbacks_lib.TrainingDivergedError: a loss became NaN/Inf (no checkpoint written for it).
    export.ExportError: the generator could not be exported.
  """
  gmm = config.architecture == models.GMM
  try:
    if gmm and config.strategy not in ("auto", "default"):
      raise ConfigError(f"--architecture=gmm fits on one device (EM over the whole split); "
                        f"--strategy={config.strategy} is not supported, use auto or default")
    configure_threads(config.intra_op_threads, config.inter_op_threads)
    resolution = precision.resolve(config.mixed_precision)
    print(resolution.describe() + f"; {resolution.hardware}", flush=True)
    check_steps_per_execution(config)
    if not gmm:
      gan_lib.check_update(config.update, config.d_steps, config.g_objective)
    strategy = distribute.build_strategy(config.strategy, config.num_cpu_replicas, config.tpu)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
      raise ConfigError(
          f"--batch_size={config.batch_size} is not divisible by the {replicas} replicas of "
          f"--strategy={config.strategy}; use a multiple of {replicas}")
    info = data.prepare(config.dataset, config.split, config.data_dir, config.image_size,
                        download=config.download)
    models.check_example_shape(config.architecture, info.example_shape)
    if config.eval_every and data.is_point_dataset(info):
      raise ConfigError(f"--eval_every measures images with a classifier; {config.dataset!r} is "
                        "a toy distribution, measured every --sample_every steps instead: drop "
                        "--eval_every")
    if gmm:
      if config.gmm_components > info.num_examples:
        raise ConfigError(f"--gmm_components={config.gmm_components} exceeds the "
                          f"{info.num_examples} images of --split={config.split}")
      # The mixture's latent is fixed by the image size (models/gmm.py); recording it in the
      # config puts it in flags.cfg, run_spec.json, the sample latents and the export.
      config = config.with_updates(latent_dim=gmm_lib.latent_dim_for(info.image_shape))
  except ValueError as error:
    raise ConfigError(str(error)) from error
  spec = _run_spec(config, info.example_shape)
  _check_workdir(config, spec)

  _configure_determinism(config)
  keras.mixed_precision.set_global_policy(resolution.policy)
  with strategy.scope():
    model = build_model(config, info.example_shape, resolution.policy)
  chief = distribute.is_chief(strategy)
  # Only the chief owns the workdir; other workers write to temporary directories.
  lock = workdir_lock.WorkdirLock(config.workdir) if chief else contextlib.nullcontext()
  with lock:
    return _train_locked(config, strategy, model, info, spec, chief, resolution)


def _train_locked(config, strategy, model, info, spec, chief, resolution) -> TrainResult:
  """The part of a run that may write: restore, train, checkpoint, export."""
  del strategy
  output = distribute.WriteDir(config.workdir, chief)
  checkpoint = make_checkpoint(model)
  # Every worker restores the chief's newest checkpoint that restores cleanly.
  checkpoint_dir = os.path.join(config.workdir, CHECKPOINT_DIR)
  restored = restore_checkpoints(model, checkpoint_dir, config.workdir)
  if restored.path:
    _continue_save_counter(checkpoint, restored.path)
  if restored.skipped and output.chief:
    _drop_from_index(checkpoint_dir, restored.path)
  # Created after the index is repaired: the manager takes its latest checkpoint from it.
  manager = tf.train.CheckpointManager(
      checkpoint, os.path.join(output.path, CHECKPOINT_DIR), max_to_keep=config.keep_checkpoints)
  start_step = int(model.step.numpy())
  check_steps_per_execution(config, start_step)
  if restored.path:
    skipped = (f" (newer {', '.join(os.path.basename(p) for p, _ in restored.skipped)}"
               " cannot be restored, see above)" if restored.skipped else "")
    print(f"Resumed from {restored.path} at step {start_step}{skipped}", flush=True)
    previous = recorded_precision(config.workdir)
    if previous and previous.get("policy") != resolution.policy:
      print(f"Precision changed on resume: the run trained in {previous.get('policy')} "
            f"({previous.get('hardware')}) and continues in {resolution.policy}; checkpoints "
            "hold float32 weights, so training goes on from the same values", flush=True)

  if output.chief:
    _write_text_atomically(os.path.join(config.workdir, FLAGFILE), config.to_flagfile())
    _write_text_atomically(os.path.join(config.workdir, RUN_SPEC),
                           json.dumps({**spec, PRECISION_KEY: resolution.to_json()}, indent=2))

  stopper = preemption.StopOnSignal()
  try:
    finished_before = start_step >= config.train_steps
    last_logs = {}
    if finished_before:
      print(f"Run in {config.workdir} already finished at step {start_step} "
            f"(--train_steps={config.train_steps}); nothing to train.", flush=True)
    else:
      last_logs = _fit(model, manager, config, info, start_step, output.path, stopper,
                       resolution)
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
        export_metadata(config, info.example_shape, step, resolution.to_json()))
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
        config.sample_every, metrics_file=os.path.join(output_dir, evaluate.METRICS_FILE),
        seed=config.seed, d_batch_size=config.batch_size)
  else:
    sample_latents = tf.random.stateless_normal(
        [config.num_sample_images, config.latent_dim], seed=[config.seed, _SAMPLE_LATENTS])
    samples_callback = callbacks_lib.SampleGrid(writer, os.path.join(output_dir, SAMPLE_DIR),
                                                sample_latents, config.sample_every)
  extra_callbacks = []
  if config.eval_every:
    extra_callbacks.append(evaluate.EvalCallback(
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


def _fit(model, manager, config, info, start_step, output_dir, stopper, resolution) -> dict:
  writer = tf.summary.create_file_writer(os.path.join(output_dir, SUMMARY_DIR))
  with writer.as_default(step=start_step):
    # TensorBoard's Text tab: what this (part of the) run computed in, and why.
    tf.summary.text("precision", f"{resolution.describe()}; {resolution.hardware}")
  writer.flush()
  show_bar = callbacks_lib.progress_bar_visible()
  if isinstance(model, maximum_likelihood.MixtureRun):
    return _fit_mixture(model, manager, config, info, output_dir, stopper, writer)
  dataset = data.training_stream(
      info, config.batch_size, d_steps=config.d_steps, seed=config.seed, start_step=start_step,
      data_dir=config.data_dir, cache=config.cache, shuffle_buffer=config.shuffle_buffer)
  history = model.fit(
      dataset,
      epochs=1,
      steps_per_epoch=config.train_steps - start_step,
      verbose=1 if show_bar else 0,
      shuffle=False,  # The stream is already shuffled, reproducibly (data.py).
      callbacks=_callbacks(manager, config, info, output_dir, stopper, writer,
                           config.batch_size * config.d_steps, print_lines=not show_bar))
  return {name: float(np.mean(values[-1])) for name, values in history.history.items()}


def _fit_mixture(run, manager, config, info, output_dir, stopper, writer) -> dict:
  """EM for --architecture=gmm, with the GAN's callbacks (one EM step = one training step)."""
  train_pixels = maximum_likelihood.load_pixels(info, config.data_dir, config.seed,
                                                maximum_likelihood.TRAIN_NOISE)
  test_pixels = None
  if config.split != maximum_likelihood.TEST_SPLIT:
    try:
      test_info = data.describe(config.dataset, maximum_likelihood.TEST_SPLIT, config.data_dir,
                                info.image_shape[0])
      test_pixels = maximum_likelihood.load_pixels(
          test_info, config.data_dir, config.seed, maximum_likelihood.TEST_NOISE,
          limit=maximum_likelihood.MAX_TEST_IMAGES)
    except data.DatasetError:
      print(f"{config.dataset} has no {maximum_likelihood.TEST_SPLIT!r} split: no held-out "
            "NLL", flush=True)
  callbacks = _callbacks(manager, config, info, output_dir, stopper, writer,
                         int(train_pixels.shape[0]), print_lines=True)
  return maximum_likelihood.fit(run, train_pixels, config.train_steps, config.log_every,
                                callbacks, test_pixels)


def main(argv):
  del argv  # Only --flags; stray arguments are refused by cli.flags_parser.
  config = app_flags.config_from_flags()
  try:
    train_and_export(config)
  except (ConfigError, data.DatasetError, callbacks_lib.TrainingDivergedError,
          callbacks_lib.CheckpointWriteError, export.ExportError, evaluate.EvaluationError,
          workdir_lock.WorkdirLockedError) as error:
    print(f"python -m tfgan_app.train: error: {error}", file=sys.stderr)
    sys.exit(1)
  except PermissionError as error:
    print(f"python -m tfgan_app.train: error: cannot write {error.filename}: {error.strerror}; "
          "make --workdir writable or choose another", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  # A run's own flags.cfg resumes the directory that holds it (a copied workdir in place).
  app.run(main, flags_parser=app_flags.flags_parser("python -m tfgan_app.train"))
