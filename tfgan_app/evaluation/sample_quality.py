"""Judges a generator export with the domain classifier: are its samples confident and varied?

  python -m tfgan_app.sample_quality --saved_model=runs/dcgan/export/dcgan/2000 \
      --classifier=/work/classifiers/mnist
  # about 20 s for 10,000 samples on 2 CPU cores

A generator that makes recognisable digits gets confident classifier answers (top softmax
probability above --threshold); one that covers every class avoids the commonest GAN failure,
mode collapse. The verdict `passes` needs both: at least 80% of the samples confident and every
class predicted for at least 5% of them (half the fair share of a 10-class dataset). It is a
smoke test of sample quality, cheaper and easier to read than FID, not a replacement for it.

A class-conditional export (metadata `num_classes`) is asked for every class in equal shares
(sample i: class i mod num_classes, so 10,000 samples are 1,000 of each MNIST digit), and the
report adds `label_accuracy` and `label_accuracy_per_class`: how often the classifier reads
the class asked for (`tfgan_app.evaluation.conditional`). The verdict stays the one above.

The command exits 0 whether or not the samples pass (the verdict is in the report); errors
such as a missing export exit 1 with one line on stderr.
"""

from typing import Optional

import numpy as np
import tensorflow as tf

from tfgan_app.data import datasets as data
from tfgan_app.evaluation import classifier as classifier_lib
from tfgan_app.evaluation import conditional
from tfgan_app.exporting import contract
from tfgan_app.exporting import loader

# The verdict's bars (see the module docstring).
MIN_CONFIDENT_FRACTION = 0.8
MIN_CLASS_FRACTION = 0.05
DEFAULT_NUM_SAMPLES = loader.DEFAULT_NUM_SAMPLES
DEFAULT_THRESHOLD = 0.9
GENERATION_BATCH_SIZE = 500
# Softmax rows are accepted if they sum to 1 within this (float32 softmax is off by ~1e-7).
_SUM_TOLERANCE = 1e-3


class SampleQualityError(RuntimeError):
  """The generator export cannot be judged (missing, wrong signature, shape mismatch)."""


def confidence_report(probabilities, threshold: float,
                      min_confident_fraction: float = MIN_CONFIDENT_FRACTION,
                      min_class_fraction: float = MIN_CLASS_FRACTION) -> dict:
  """Summarises classifier probabilities of generated samples.

  Args:
    probabilities: [N, K] class probabilities (rows sum to 1), N >= 1 samples, K classes.
    threshold: a sample is confident when its top probability is strictly above this, in
      [0, 1).
    min_confident_fraction: the verdict's bar on `confident_fraction`.
    min_class_fraction: the verdict's bar on `min_class_fraction`.

  Returns:
    {"num_samples": N, "threshold": threshold,
     "confident_fraction": fraction of samples whose top probability > threshold,
     "class_fractions": [K] fraction of samples whose argmax is each class,
     "min_class_fraction": min(class_fractions),
     "passes": confident_fraction >= min_confident_fraction and
               min_class_fraction >= min_class_fraction}
    with plain Python numbers, ready for `json.dumps`. Ties in the argmax go to the lower
    class index (numpy's rule).

  Raises:
    ValueError: `probabilities` is not a non-empty [N, K] array of finite probabilities whose
      rows sum to 1, or `threshold` is outside [0, 1).
  """
  probabilities = np.asarray(probabilities, dtype=np.float64)
  if probabilities.ndim != 2 or probabilities.shape[0] == 0 or probabilities.shape[1] == 0:
    raise ValueError(f"probabilities must be [num_samples, num_classes] with both > 0, got "
                     f"shape {list(probabilities.shape)}")
  if not np.all(np.isfinite(probabilities)) or np.any(probabilities < 0):
    raise ValueError("probabilities must be finite and non-negative")
  row_sums = probabilities.sum(axis=1)
  if np.any(np.abs(row_sums - 1.0) > _SUM_TOLERANCE):
    worst = int(np.argmax(np.abs(row_sums - 1.0)))
    raise ValueError(f"probability rows must sum to 1 (row {worst} sums to "
                     f"{row_sums[worst]:.6g}); pass softmax outputs, not logits")
  if not 0.0 <= threshold < 1.0:
    raise ValueError(f"threshold must be in [0, 1), got {threshold}")
  num_samples, num_classes = probabilities.shape
  confident_fraction = float(np.mean(probabilities.max(axis=1) > threshold))
  counts = np.bincount(probabilities.argmax(axis=1), minlength=num_classes)
  class_fractions = [float(count) / num_samples for count in counts]
  lowest = min(class_fractions)
  return {
      "num_samples": int(num_samples),
      "threshold": float(threshold),
      "confident_fraction": confident_fraction,
      "class_fractions": class_fractions,
      "min_class_fraction": lowest,
      "passes": bool(confident_fraction >= min_confident_fraction
                     and lowest >= min_class_fraction),
  }


def load_generator(saved_model: str) -> loader.LoadedExport:
  """Loads a generator export (`root` keeps the variables alive: the function does not).

  Raises:
    SampleQualityError: not a SavedModel, or no `serving_default` latents -> images signature
      with a fixed latent dimension.
  """
  try:
    return loader.load_export(saved_model, loader.IMAGES)
  except loader.ExportLoadError as error:
    raise SampleQualityError(str(error)) from error


def measure_sample_quality(saved_model: str, classifier_dir: str,
                           num_samples: int = DEFAULT_NUM_SAMPLES, seed: int = 0,
                           threshold: float = DEFAULT_THRESHOLD,
                           batch_size: int = GENERATION_BATCH_SIZE,
                           classifier: Optional[classifier_lib.Classifier] = None) -> dict:
  """Generates `num_samples` images from N(0, 1) latents and reports on their class posteriors.

  Args:
    saved_model: generator export version directory (`serving_default`: `latents` float32
      [N, latent_dim] -> `images` uint8 [N, H, W, C]).
    classifier_dir: classifier export directory (`python -m tfgan_app.classifier`).
    num_samples: images to generate (>= 1).
    seed: seed of the latents: numpy `default_rng(seed).standard_normal`, so a run is
      reproducible and independent of `batch_size`.
    threshold: confidence threshold of `confidence_report`.
    batch_size: images per generator and classifier call.
    classifier: an already loaded classifier to use instead of loading `classifier_dir`.

  Returns:
    `confidence_report(...)` plus "seed"; for a conditional export also "num_classes",
    "label_sampling", "label_accuracy" and "label_accuracy_per_class".

  Raises:
    SampleQualityError: bad export or arguments, or images the classifier cannot take.
    classifier_lib.ClassifierError: `classifier_dir` is not a classifier export.
  """
  if num_samples < 1 or batch_size < 1:
    raise SampleQualityError(f"num_samples and batch_size must be >= 1, got {num_samples}, "
                             f"{batch_size}")
  if not 0.0 <= threshold < 1.0:
    raise SampleQualityError(f"threshold must be in [0, 1), got {threshold}")
  judge = classifier or classifier_lib.load_classifier(classifier_dir)
  export = load_generator(saved_model)
  num_classes = export.num_classes
  if num_classes and num_classes != judge.num_classes:
    raise SampleQualityError(
        f"{saved_model} generates {num_classes} classes but the classifier at {classifier_dir} "
        f"knows {judge.num_classes}; use a classifier of the generator's dataset")
  # The export refuses larger batches (in its graph).
  batch_size = min(batch_size, contract.request_limit(saved_model) or batch_size)
  latents = np.random.default_rng(seed).standard_normal((num_samples, export.latent_dim),
                                                        dtype=np.float32)
  labels = conditional.sample_labels(num_samples, num_classes) if num_classes else None
  probabilities = []
  for images in loader.batches(export.generate, latents, batch_size, tf.constant, labels):
    # images: [B, H, W, C] uint8
    if images.dtype != tf.uint8:
      raise SampleQualityError(f"{saved_model} returns {images.dtype.name} images; expected "
                               "uint8 in [0, 255]")
    if tuple(images.shape[1:]) != judge.image_shape:
      raise SampleQualityError(
          f"the generator makes {'x'.join(map(str, images.shape[1:]))} images but the "
          f"classifier at {classifier_dir} takes {'x'.join(map(str, judge.image_shape))}; use "
          "a classifier trained on the generator's dataset at its image size")
    probabilities.append(judge.probabilities(data.to_unit_range(images).numpy()))
  probabilities = np.concatenate(probabilities)
  report = confidence_report(probabilities, threshold)
  report["seed"] = int(seed)
  if num_classes:
    report.update(num_classes=num_classes, label_sampling=conditional.LABEL_SAMPLING,
                  **conditional.label_accuracy(probabilities, labels, num_classes))
  return report


def format_summary(report: dict, class_names=None) -> str:
  """A few human-readable lines about a `measure_sample_quality` report."""
  names = class_names or [str(index) for index in range(len(report["class_fractions"]))]
  fractions = report["class_fractions"]
  rarest = int(np.argmin(fractions))
  lines = [
      f"samples: {report['num_samples']} (latent seed {report['seed']})",
      f"confident (top probability > {report['threshold']:g}): "
      f"{report['confident_fraction']:.1%} (bar: >= {MIN_CONFIDENT_FRACTION:.0%})",
      "predicted classes: " + ", ".join(f"{name} {fraction:.1%}"
                                        for name, fraction in zip(names, fractions)),
      f"rarest class: {names[rarest]} at {report['min_class_fraction']:.1%} "
      f"(bar: >= {MIN_CLASS_FRACTION:.0%})",
      f"verdict: {'PASS' if report['passes'] else 'FAIL'}",
  ]
  lines += [f"{label}: {text}" for label, text in conditional.format_lines(report, names)]
  return "\n".join(lines)
