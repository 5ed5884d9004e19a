"""Keras callbacks of a training run: scalars, sample grids, checkpoints, divergence guard.

They read the global step from the GAN's `step` variable rather than Keras's batch counter,
which restarts at 0 on resume.
"""

import math
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from tfgan_app import export
from tfgan_app import images as images_lib


class TrainingDivergedError(RuntimeError):
  """A loss became NaN or Inf."""


class CheckpointWriteError(RuntimeError):
  """A checkpoint could not be written (full disk, unwritable workdir)."""


def _step(model) -> int:
  return int(model.step.numpy())


def _scalar(value) -> float:
  # Multi-worker runs log length-1 arrays (gan.py).
  return float(np.mean(np.asarray(value)))


class MetricsLogger(keras.callbacks.Callback):
  """TensorBoard scalars every `log_every` steps, images/s in the progress bar and log lines.

  Args:
    writer: a `tf.summary` writer.
    log_every: steps between scalar summaries.
    images_per_step: real images consumed per step (global batch * d_steps).
    print_lines: also print a line per `log_every` steps (when no progress bar is shown).
  """

  def __init__(self, writer, log_every: int, images_per_step: int, total_steps: int,
               print_lines: bool):
    super().__init__()
    self._writer = writer
    self._log_every = log_every
    self._images_per_step = images_per_step
    self._total_steps = total_steps
    self._print_lines = print_lines
    self._window_start = None
    self._window_steps = 0

  def on_train_begin(self, logs=None):
    self._window_start = time.perf_counter()
    self._window_steps = 0

  def on_train_batch_end(self, batch, logs=None):
    logs = logs if logs is not None else {}
    self._window_steps += 1
    step = _step(self.model)
    if step % self._log_every and step != self._total_steps:
      return
    elapsed = time.perf_counter() - self._window_start
    rate = self._window_steps * self._images_per_step / max(elapsed, 1e-9)
    logs["images_per_sec"] = rate  # Shown by the progress bar, which runs after us.
    with self._writer.as_default(step=step):
      for name, value in logs.items():
        tf.summary.scalar(name, _scalar(value))
    self._writer.flush()
    if self._print_lines:
      values = " ".join(f"{name}={_scalar(value):.4f}" for name, value in logs.items()
                        if name != "images_per_sec")
      print(f"step {step}/{self._total_steps} {values} images/s={rate:.0f}", flush=True)
    self._window_start = time.perf_counter()
    self._window_steps = 0


class SampleGrid(keras.callbacks.Callback):
  """Every `sample_every` steps and at the end, a grid of G(fixed latents) to PNG and TensorBoard.

  The latents are fixed for the whole run, so the grids show one set of samples evolving.
  """

  def __init__(self, writer, sample_dir: str, latents: tf.Tensor, sample_every: int):
    super().__init__()
    self._writer = writer
    self._sample_dir = sample_dir
    self._latents = latents
    self._sample_every = sample_every
    self._last_step = None

  def write(self, step: int) -> str:
    """Renders the grid for `step`; returns the PNG path."""
    generated = export.to_uint8(self.model.sampling_generator(self._latents, training=False)).numpy()
    tiled = images_lib.grid(generated)
    path = os.path.join(self._sample_dir, f"step_{step:07d}.png")
    images_lib.write_png(path, tiled)
    with self._writer.as_default(step=step):
      tf.summary.image("samples", tiled[None], max_outputs=1)
    self._writer.flush()
    self._last_step = step
    return path

  def on_train_batch_end(self, batch, logs=None):
    step = _step(self.model)
    if step % self._sample_every == 0:
      self.write(step)

  def on_train_end(self, logs=None):
    step = _step(self.model)
    if step != self._last_step:
      self.write(step)


class CheckpointSaver(keras.callbacks.Callback):
  """Saves the `tf.train.CheckpointManager` every `checkpoint_every` steps and at the end."""

  def __init__(self, manager: tf.train.CheckpointManager, checkpoint_every: int):
    super().__init__()
    self._manager = manager
    self._checkpoint_every = checkpoint_every

  def _save(self):
    step = _step(self.model)
    previous = self._manager.latest_checkpoint
    if previous and previous.endswith(f"-{step}"):
      return
    try:
      self._manager.save(checkpoint_number=step)
    except (OSError, tf.errors.OpError) as error:
      # The manager updates its `checkpoint` index only after the files are complete, so the
      # previous checkpoint is still the one a resume picks up.
      reason = getattr(error, "message", None) or str(error)
      raise CheckpointWriteError(
          f"cannot write the checkpoint of step {step} to {self._manager.directory}: "
          f"{reason.splitlines()[0]}; the previous checkpoint ({previous or 'none'}) is intact"
      ) from error

  def on_train_batch_end(self, batch, logs=None):
    if _step(self.model) % self._checkpoint_every == 0:
      self._save()

  def on_train_end(self, logs=None):
    self._save()


class DivergenceGuard(keras.callbacks.Callback):
  """Stops training at the first non-finite logged value, before anything is saved.

  It runs before the checkpoint callback, so a diverged model never replaces a good checkpoint.
  """

  def __init__(self, manager: tf.train.CheckpointManager):
    super().__init__()
    self._manager = manager

  def on_train_batch_end(self, batch, logs=None):
    bad = [name for name, value in (logs or {}).items()
           if not math.isfinite(_scalar(value))]
    if bad:
      raise TrainingDivergedError(
          f"{', '.join(bad)} became NaN/Inf at step {_step(self.model)}; last good checkpoint: "
          f"{self._manager.latest_checkpoint or 'none'}; try a lower --g_lr/--d_lr")


def progress_bar_visible() -> bool:
  return sys.stdout.isatty()
