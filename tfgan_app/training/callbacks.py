"""Keras callbacks of a training run: scalars, sample grids, toy-data monitor, checkpoints,
divergence guard.

They read the global step from the GAN's `step` variable rather than Keras's batch counter,
which restarts at 0 on resume.
"""

import json
import math
import os
import sys
import time
from typing import Callable, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from tfgan_app.common import images as images_lib
from tfgan_app.common import periodic
from tfgan_app.common import plots
from tfgan_app.exporting import saved_model as export
from tfgan_app.models import minibatch_discrimination
from tfgan_app.toy import distributions as toy_data
from tfgan_app.toy import metrics as toy_metrics

# Generated points behind each toy measurement; the plot shows the first _PLOTTED_POINTS.
TOY_MONITOR_SAMPLES = 10_000
_PLOTTED_POINTS = 1_000
_SURFACE_PIXELS = 320
# D is evaluated on a grid this many times coarser than the picture and each value drawn as a
# square: with minibatch discrimination each grid point is compared with a whole training
# batch, and the full grid would take most of a minute per picture on a 2-core CPU.
_SURFACE_UPSAMPLING = 2


class TrainingDivergedError(RuntimeError):
  """A loss became NaN or Inf."""


class CheckpointWriteError(RuntimeError):
  """A checkpoint could not be written (full disk, unwritable workdir)."""


def _step(model) -> int:
  return int(model.step.numpy())


def _scalar(value) -> float:
  # Multi-worker runs log length-1 arrays (gan.py).
  return float(np.mean(np.asarray(value)))


def format_duration(seconds: float) -> str:
  """Seconds as "45s", "12m05s" or "3h07m" (log lines, time estimates)."""
  seconds = max(0, int(round(seconds)))
  if seconds < 60:
    return f"{seconds}s"
  if seconds < 3600:
    return f"{seconds // 60}m{seconds % 60:02d}s"
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class MetricsLogger(periodic.PeriodicCallback):
  """TensorBoard scalars every `log_every` steps, images/s in the progress bar and log lines.

  A log line (printed when no progress bar is shown: logs of a batch job, `nohup`, CI) reads
  `step 200/10000 d_loss=... steps/s=7.41 images/s=474 eta=22m03s`; steps/s and images/s are
  measured since the previous line, the time left assumes that speed. The run's last step is
  always logged.

  Args:
    writer: a `tf.summary` writer.
    log_every: steps between scalar summaries.
    images_per_step: real images consumed per step (global batch * d_steps).
    total_steps: the step the run ends at.
    print_lines: also print a line per `log_every` steps (when no progress bar is shown).
  """

  def __init__(self, writer, log_every: int, images_per_step: int, total_steps: int,
               print_lines: bool):
    # Not again at the end: the last step is logged from its batch, whose values it needs.
    super().__init__(log_every, at_end=False)
    self._writer = writer
    self._images_per_step = images_per_step
    self._total_steps = total_steps
    self._print_lines = print_lines
    self._window_start = None
    self._window_start_step = 0

  def on_train_begin(self, logs=None):
    super().on_train_begin(logs)
    self._window_start = time.perf_counter()
    self._window_start_step = self.current_step()

  def is_due(self, last_step: int, step: int) -> bool:
    return super().is_due(last_step, step) or step == self._total_steps

  def on_period(self, step: int) -> None:
    logs = self.batch_logs
    elapsed = max(time.perf_counter() - self._window_start, 1e-9)
    # Steps from the model's counter: with --steps_per_execution > 1 Keras calls back once per
    # execution, not once per step.
    steps_per_sec = (step - self._window_start_step) / elapsed
    rate = steps_per_sec * self._images_per_step
    logs["images_per_sec"] = rate  # Shown by the progress bar, which runs after us.
    with self._writer.as_default(step=step):
      for name, value in logs.items():
        tf.summary.scalar(name, _scalar(value))
    self._writer.flush()
    if self._print_lines:
      values = " ".join(f"{name}={_scalar(value):.4f}" for name, value in logs.items()
                        if name != "images_per_sec")
      left = self._total_steps - step
      eta = format_duration(left / steps_per_sec) if steps_per_sec > 0 else "unknown"
      print(f"step {step}/{self._total_steps} {values} steps/s={steps_per_sec:.2f} "
            f"images/s={rate:.0f} eta={eta}", flush=True)
    self._window_start = time.perf_counter()
    self._window_start_step = step


# Rows of a class-conditional sample grid: one per class up to this many.
MAX_CLASS_ROWS = 16


def class_rows(num_classes: int, num_images: int) -> Tuple[np.ndarray, int]:
  """(classes int [rows], columns) of a class-conditional sample grid of about `num_images`.

  One row per class, in class order, with ceil(num_images / rows) columns (at least 1). More
  than MAX_CLASS_ROWS classes (CIFAR-100, ImageNet) would make rows of one or two images, so
  then MAX_CLASS_ROWS classes spread evenly over [0, num_classes) get a row: 0, ..., K - 1
  included.
  """
  if num_classes <= MAX_CLASS_ROWS:
    classes = np.arange(num_classes)
  else:
    classes = np.round(np.linspace(0, num_classes - 1, MAX_CLASS_ROWS)).astype(np.int64)
  return classes, max(1, math.ceil(num_images / len(classes)))


class SampleGrid(periodic.PeriodicCallback):
  """Every `sample_every` steps and at the end, a grid of G(fixed latents) to PNG and TensorBoard.

  The latents are fixed for the whole run, so the grids show one set of samples evolving. A
  class-conditional generator gets fixed `labels` too; the loop lays them out one class per
  row of `columns` images with the same latents in every row (`class_rows`).
  """

  def __init__(self, writer, sample_dir: str, latents: tf.Tensor, sample_every: int,
               labels: Optional[tf.Tensor] = None, columns: int = 0):
    super().__init__(sample_every)
    self._writer = writer
    self._sample_dir = sample_dir
    self._latents = latents
    self._labels = labels
    self._columns = columns

  def write(self, step: int) -> str:
    """Renders the grid for `step`; returns the PNG path."""
    generator = self.model.sampling_generator
    if self._labels is None:
      generated = generator(self._latents, training=False)
    else:
      generated = generator(self._latents, labels=self._labels, training=False)
    tiled = images_lib.grid(export.to_uint8(generated).numpy(), self._columns)
    path = os.path.join(self._sample_dir, f"step_{step:07d}.png")
    images_lib.write_png(path, tiled)
    with self._writer.as_default(step=step):
      tf.summary.image("samples", tiled[None], max_outputs=1)
    self._writer.flush()
    self._last_step = step
    return path

  def on_period(self, step: int) -> None:
    self.write(step)


class ToyMonitor(periodic.PeriodicCallback):
  """Measures and draws a toy run every `sample_every` steps and at the end.

  Each time: `toy_metrics.measure` of G(fixed latents) as TensorBoard scalars `toy/<metric>`
  and one JSON line (with `step`) in `metrics_file`; and a picture of real vs generated points
  over D's decision surface (2-D: D(x) as colours; 1-D: D(x) next to the true and the generated
  densities), as the TensorBoard image `decision_surface` and `samples/step_<step>.png`.
  """

  def __init__(self, writer, sample_dir: str, distribution: toy_data.GaussianMixture,
               latents: tf.Tensor, sample_every: int, metrics_file: Optional[str] = None,
               seed: int = 0, print_fn: Optional[Callable] = print,
               d_batch_size: int = 256):
    """Configures the monitor.

    Args:
      writer: a `tf.summary` writer.
      sample_dir: directory of the PNGs.
      distribution: the training distribution.
      latents: fixed latents [N, latent_dim] (N = TOY_MONITOR_SAMPLES in training).
      sample_every: steps between measurements.
      metrics_file: JSONL file to append each measurement to, or None.
      seed: seed of the real points drawn for the picture.
      print_fn: called with one summary line per measurement; None for silence.
      d_batch_size: points per call of D when drawing its surface (the training batch size).
        With --minibatch_discrimination D(x) depends on the rest of its batch, and all
        100,000 grid points in one batch would need [N, N, kernels] pairwise distances.
        Each grid point is judged as one more member of a real batch (see `_d_of`).
    """
    super().__init__(sample_every)
    self._d_batch_size = d_batch_size
    self._writer = writer
    self._sample_dir = sample_dir
    self._distribution = distribution
    self._latents = latents
    self._metrics_file = metrics_file
    self._print_fn = print_fn
    self._real = distribution.sample(_PLOTTED_POINTS, np.random.default_rng(seed))
    self.history = []

  def _d_of(self, points: np.ndarray) -> np.ndarray:
    # D judges each grid point as one more member of a real training-size batch. A
    # minibatch-discrimination D compares each point with the rest of its batch: among other
    # grid points a point next to a mode finds no real neighbours and reads "fake" everywhere,
    # and a few dozen grid points in a real batch already turn D's verdict on the real ones.
    # So each call holds grid points and then `d_batch_size - 1` real points, and each grid
    # point is compared with those real points only. A D without that layer judges every
    # point alone: the context changes nothing.
    context_size = max(1, self._d_batch_size - 1)
    context = self._distribution.sample(context_size, np.random.default_rng(1))
    discriminator = self.model.discriminator
    chunk_size = self._d_batch_size
    # One graph for every chunk (the last one padded to the same shape): a 2-D surface is
    # hundreds of chunks, and calling D eagerly on each costs seconds per picture.
    judge = tf.function(lambda batch: tf.sigmoid(tf.cast(
        discriminator(batch, training=False), tf.float32))[:chunk_size, 0])
    context = context.astype(np.float32)
    padded = np.zeros((-(-len(points) // chunk_size) * chunk_size,) + points.shape[1:],
                      np.float32)
    padded[:len(points)] = points
    values = np.empty(len(padded), np.float32)
    with minibatch_discrimination.judged_against_last_rows(discriminator, context_size):
      for start in range(0, len(points), chunk_size):
        batch = np.concatenate([padded[start:start + chunk_size], context])
        values[start:start + chunk_size] = judge(tf.constant(batch)).numpy()
    return values[:len(points)]  # [N]

  def picture(self, generated: np.ndarray, title: str) -> np.ndarray:
    """uint8 [H, W, 3]: real vs generated points over D's decision surface."""
    distribution = self._distribution
    low, high = distribution.bounding_box(0.0)
    margin = 0.15 * float(np.max(high - low)) + 8.0 * distribution.std
    low, high = low - margin, high + margin
    if distribution.dim == 2:
      cells = _SURFACE_PIXELS // _SURFACE_UPSAMPLING
      # Cell centres, so that each value sits in the middle of the square that draws it.
      half_cell = (high - low) / (2 * cells)
      xs = np.linspace(low[0] + half_cell[0], high[0] - half_cell[0], cells)
      ys = np.linspace(low[1] + half_cell[1], high[1] - half_cell[1], cells)
      grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)  # Row 0: y = low.
      surface = self._d_of(grid).reshape(cells, cells)
      surface = np.repeat(np.repeat(surface, _SURFACE_UPSAMPLING, 0), _SURFACE_UPSAMPLING, 1)
      return plots.points_over_heatmap(
          surface, (low[0], high[0], low[1], high[1]),
          # Real points last: they are the smaller clusters, and must stay visible.
          [(generated[:_PLOTTED_POINTS], plots.RED, "generated"),
           (self._real, plots.GREEN, "real")],
          title=title, heat_label="D(x): blue 0, white 0.5, orange 1")
    xs = np.linspace(low[0], high[0], 2 * _SURFACE_PIXELS)
    truth = distribution.pdf(xs[:, None])
    counts, edges = np.histogram(generated[:, 0], bins=_SURFACE_PIXELS // 4,
                                 range=(low[0], high[0]))
    density = counts / max(len(generated), 1) / (edges[1] - edges[0])
    generated_density = density[np.clip(np.digitize(xs, edges) - 1, 0, len(density) - 1)]
    peak = truth.max()
    return plots.curves(
        xs, [(truth / peak, plots.GREEN, "p_data"),
             (generated_density / peak, plots.RED, "generated"),
             (self._d_of(xs[:, None]), plots.BLUE, "D(x)")],
        title=f"{title}  x in [{low[0]:.2f}, {high[0]:.2f}], densities / max p_data",
        y_range=(0.0, 1.2))

  def write(self, step: int) -> dict:
    """Measures and draws the generator at `step`; returns the metrics record."""
    generated = self.model.sampling_generator(self._latents, training=False)
    generated = np.asarray(keras.ops.convert_to_numpy(generated), np.float64)
    record = toy_metrics.measure(generated, self._distribution)
    record["step"] = step
    title = (f"{self._distribution.name} step {step}: modes {record['modes_covered']}/"
             f"{record['num_modes']}, high quality {record['high_quality_fraction']:.3f}, "
             f"KL {record['kl']:.3f}")
    picture = self.picture(generated, title)
    images_lib.write_png(os.path.join(self._sample_dir, f"step_{step:07d}.png"), picture)
    with self._writer.as_default(step=step):
      for key in ("modes_covered", "high_quality_fraction", "kl"):
        tf.summary.scalar(f"toy/{key}", float(record[key]))
      tf.summary.image("decision_surface", picture[None], max_outputs=1)
    self._writer.flush()
    if self._metrics_file:
      os.makedirs(os.path.dirname(self._metrics_file) or ".", exist_ok=True)
      with open(self._metrics_file, "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
    if self._print_fn is not None:
      self._print_fn(title)
    self._last_step = step
    self.history.append(record)
    return record

  def on_period(self, step: int) -> None:
    self.write(step)


class CheckpointSaver(periodic.PeriodicCallback):
  """Saves the `tf.train.CheckpointManager` every `checkpoint_every` steps and at the end."""

  def __init__(self, manager: tf.train.CheckpointManager, checkpoint_every: int):
    super().__init__(checkpoint_every)
    self._manager = manager

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

  def on_period(self, step: int) -> None:
    del step
    self._save()

  def on_train_end(self, logs=None):
    self._save()  # Always: _save skips a step that is already saved.


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
