"""What a run's checkpoint holds, and restoring it (every required object must match)."""

import dataclasses
import os
import re
import sys
from typing import Callable, Optional

from google.protobuf import message as message_lib
import tensorflow as tf

from tfgan_app.runs import workdir as workdir_lib


def make_checkpoint(model) -> tf.train.Checkpoint:
  """The checkpoint a run saves: the model's `checkpoint_objects()`, required and optional
  (`gan.model.GAN`, `mixture.maximum_likelihood.MixtureRun`)."""
  required, optional = model.checkpoint_objects()
  return tf.train.Checkpoint(**required, **optional)


def restore_checkpoint(model, path: str) -> None:
  """Restores `model` from the checkpoint `path`: every required object must be in it.

  Raises:
    tf.errors.OpError, ValueError, AssertionError: the checkpoint is unreadable or does not fit.
  """
  required, optional = model.checkpoint_objects()
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
      raise workdir_lib.ConfigError(
          f"cannot read the checkpoint index {index}; restore it from a backup, or rewrite it "
          f"to list the ckpt-<step> files in {checkpoint_dir} "
          "(model_checkpoint_path: \"ckpt-<step>\")")
    return []
  paths = list(state.all_model_checkpoint_paths)
  if state.model_checkpoint_path not in paths:
    paths.append(state.model_checkpoint_path)
  return paths[::-1]


def _reason(error: BaseException) -> str:
  """Why a checkpoint did not restore, in one line: the error's type and first line."""
  text = str(error).strip()
  return f"{type(error).__name__}: {text.splitlines()[0] if text else type(error).__name__}"


def print_to_stderr(line: str) -> None:
  print(line, file=sys.stderr, flush=True)


def restore_checkpoints(model, checkpoint_dir: str, workdir: str,
                        report: Callable[[str], None] = print_to_stderr) -> Restored:
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
        reason = _reason(error)
    skipped.append((path, reason))
    report(f"Skipped checkpoint {path}: cannot restore it ({reason})")
  if not skipped:
    return Restored(None)
  names = "; ".join(f"{path}: {reason}" for path, reason in skipped)
  raise workdir_lib.ConfigError(
      f"cannot restore checkpoint {names}. The run's {workdir_lib.FLAGFILE} and "
      f"{workdir_lib.RUN_SPEC} are kept: "
      f"restore {checkpoint_dir} from a backup (or use the code version that wrote it), or, to "
      f"train the run again from step 0 in {workdir}, delete the broken ckpt-<step>.* files "
      f"and {os.path.join(checkpoint_dir, 'checkpoint')}")


def checkpoint_of_step(checkpoint_dir: str, step: int) -> str:
  """The path of the checkpoint of training step `step` (`ckpt-<step>`: checkpoints are numbered
  by step).

  Raises:
    ConfigError: the directory holds no checkpoint of that step; the message lists the steps it
      holds.
  """
  path = os.path.join(checkpoint_dir, f"ckpt-{step}")
  if tf.io.gfile.exists(path + ".index"):
    return path
  names = tf.io.gfile.listdir(checkpoint_dir) if tf.io.gfile.isdir(checkpoint_dir) else []
  held = sorted(int(match.group(1)) for match in (re.fullmatch(r"ckpt-(\d+)\.index", name)
                                                  for name in names) if match)
  steps = ", ".join(str(value) for value in held) or "none"
  raise workdir_lib.ConfigError(
      f"no checkpoint of step {step} in {checkpoint_dir} (steps held: {steps}); "
      "--checkpoint_every and --keep_checkpoints decide which steps a run keeps")


def restore_exactly(model, path: str) -> None:
  """Restores the checkpoint `path` and no other (no fallback to an older one).

  Raises:
    ConfigError: it cannot be restored; one line naming it and why.
  """
  try:
    restore_checkpoint(model, path)
  except _UNREADABLE_CHECKPOINT_ERRORS as error:
    raise workdir_lib.ConfigError(f"cannot restore checkpoint {path}: {_reason(error)}") from error


def restore_latest(model, checkpoint_dir, workdir) -> Optional[str]:
  """Restores the newest checkpoint in `checkpoint_dir` that restores cleanly, if any.

  Broken newer checkpoints are skipped with one line each on stderr (`restore_checkpoints`).

  Raises:
    ConfigError: checkpoints are listed but none restores.
  """
  return restore_checkpoints(model, checkpoint_dir, workdir).path


def continue_save_counter(checkpoint: tf.train.Checkpoint, path: str) -> None:
  """Gives the manager's `checkpoint` the save counter of the checkpoint `path` it resumes.

  `restore_checkpoint` restores the run's objects through checkpoints of their own, so the
  counter of the one the manager saves would otherwise start again at 0, and a resumed run's
  checkpoints would differ from an uninterrupted run's in it.
  """
  reader = tf.train.load_checkpoint(path)
  key = "save_counter/.ATTRIBUTES/VARIABLE_VALUE"
  if reader.has_tensor(key):
    checkpoint.save_counter.assign(reader.get_tensor(key))


def drop_from_index(checkpoint_dir: str, restored: str) -> None:
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
