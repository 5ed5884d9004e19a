"""Evaluation during training: `EvalCallback` runs the metrics every N steps."""

from typing import Callable, Optional, Sequence

import tensorflow as tf

from tfgan_app.common import periodic
from tfgan_app.evaluation import classifiers
from tfgan_app.evaluation import evaluator
from tfgan_app.evaluation import metrics as metrics_lib
from tfgan_app.evaluation.protocol import append_record
from tfgan_app.evaluation.protocol import DEFAULT_METRICS, DEFAULT_NUM_SAMPLES, DEFAULT_SPLIT


class EvalCallback(periodic.PeriodicCallback):
  """Runs the metrics on the GAN's `sampling_generator` (EMA when present) every N steps.

  Values go to TensorBoard as `eval/<key>` scalars at the GAN's global step and, as one JSON
  line per evaluation (the `evaluate_generator` record plus `step`), to `metrics_file`.
  Real statistics are computed (or read from the cache) once, at the start of training.
  """

  def __init__(self, every_steps: int, dataset: str, image_shape: Sequence[int],
               classifier=None, metrics: Sequence[str] = DEFAULT_METRICS,
               num_samples: int = DEFAULT_NUM_SAMPLES, seed: int = 0,
               split: str = DEFAULT_SPLIT, writer=None, metrics_file: Optional[str] = None,
               data_dir: Optional[str] = None, cache_dir: Optional[str] = None,
               real_stats: Optional[evaluator.RealStats] = None,
               print_fn: Optional[Callable] = print):
    """Configures the evaluation; nothing is loaded until training begins.

    Args:
      every_steps: evaluate when the GAN's step (generator updates) reaches a multiple of
        this (> 0); also at the end of training if the last step was not evaluated.
      dataset: TFDS name of the real data (the training dataset).
      image_shape: [H, W, C] of the generator's images.
      classifier: a classifier spec (directory, `inception`, or None for
        `default_classifier(dataset, channels)`) or an already loaded `DomainClassifier` /
        `InceptionClassifier`.
      metrics: names in `metrics.REGISTRY`, e.g. ("fid", "is", "kid").
      num_samples: generated images per evaluation (and wanted real images); evaluation time
        grows linearly with it (10,000: about 20-30 s on 2 CPU cores for a 28x28 DCGAN).
      seed: latent seed; the same latents every evaluation, so changes reflect the weights.
      split: real split, e.g. "test".
      writer: a `tf.summary` writer, or None for no TensorBoard scalars.
      metrics_file: path of the JSONL file to append to (e.g. <workdir>/metrics.jsonl), or None.
      data_dir: TFDS data directory (None: TFDS's default).
      cache_dir: real-statistics cache (None: `default_cache_dir()`, "": no cache).
      real_stats: precomputed `RealStats` for `classifier` (skips loading the real data).
      print_fn: called with one summary line per evaluation; None for silence.

    Raises:
      ValueError: every_steps <= 0 or an unknown metric name (at construction, before training).
    """
    if every_steps <= 0:
      raise ValueError(f"every_steps must be > 0, got {every_steps}")
    super().__init__(every_steps)
    for name in metrics:
      if name not in metrics_lib.REGISTRY:
        raise ValueError(f"unknown metric {name!r}; accepted: {', '.join(metrics_lib.REGISTRY)}")
    self.dataset = dataset
    self.image_shape = tuple(int(d) for d in image_shape)
    self.metrics = tuple(metrics)
    self.num_samples = int(num_samples)
    self.seed = int(seed)
    self.split = split
    self._classifier = classifier
    self._writer = writer
    self._metrics_file = metrics_file
    self._data_dir = data_dir
    self._cache_dir = cache_dir
    self._real_stats = real_stats
    self._print_fn = print_fn
    self._generate_fn = None
    self._num_classes = 0
    self.history = []  # The records of this callback's evaluations.

  def _prepare(self):
    if self._classifier is None or isinstance(self._classifier, str):
      spec = self._classifier or classifiers.default_classifier(self.dataset, self.image_shape[-1])
      self._classifier = classifiers.load_evaluation_classifier(spec)
    self._classifier.check_image_shape(self.image_shape)
    if self._real_stats is None:
      self._real_stats = evaluator.real_statistics(self._classifier, self.dataset, self.split,
                                         self.image_shape, self.num_samples, self._data_dir,
                                         self._cache_dir)

  def on_train_begin(self, logs=None):
    self._prepare()
    super().on_train_begin(logs)

  def on_period(self, step: int) -> None:
    self.evaluate_now(step)

  def evaluate_now(self, step: Optional[int] = None) -> dict:
    """Evaluates the current sampling generator, logs and returns the record."""
    if self._real_stats is None:
      self._prepare()
    step = int(self.model.step.numpy()) if step is None else int(step)
    if self._generate_fn is None:
      generator = self.model.sampling_generator
      # A class-conditional generator is asked for every class in turn (label accuracy with a
      # domain classifier; no intra-class FID here, which needs the real labels).
      self._num_classes = num_classes = int(getattr(generator, "num_classes", 0) or 0)
      self._generate_fn = tf.function(lambda latents, labels=None: generator(
          latents, training=False, **({"labels": labels} if num_classes else {})))
    record = evaluator.evaluate_generator(self._generate_fn, int(self.model.latent_dim),
                                          self._real_stats, self._classifier, self.metrics,
                                          self.num_samples, self.seed,
                                          num_classes=self._num_classes)
    record["step"] = step
    self._last_step = step
    self.history.append(record)
    values = {key: record[key] for key in ("fid", "is", "kid", "kid_std", "precision", "recall",
                                           "label_accuracy") if record.get(key) is not None}
    if self._writer is not None:
      with self._writer.as_default():
        for key, value in values.items():
          tf.summary.scalar(f"eval/{key}", value, step=step)
      self._writer.flush()
    if self._metrics_file:
      append_record(self._metrics_file, record)
    if self._print_fn is not None:
      self._print_fn(f"eval step {step}: " + ", ".join(f"{key} {value:.4g}"
                                                       for key, value in values.items())
                     + f" ({record['seconds']:.1f} s)")
    return record
