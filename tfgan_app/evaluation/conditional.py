"""Measurements of class-conditional generators: label accuracy and intra-class FID.

Protocol: sample `i` asks for class `i mod num_classes` (`sample_labels`), so N samples split
equally across the classes (10,000 -> 1,000 per MNIST digit; the first N mod K classes get one
more when K does not divide N), with latent row `i` of `numpy default_rng(seed)` as for an
unconditional generator.

- `label_accuracy` (the ACGAN check, Odena et al. 2017 §4): the fraction of samples asked for
  class y that the domain classifier reads as y (argmax of its logits), over all samples and
  per class (`label_accuracy_per_class`). It needs a classifier of the generator's classes (the
  project's domain classifier, not Inception).
- intra-class FID (Miyato & Koyama 2018 §4.1): for each class y, the FID between the features
  of the samples asked for y and those of the real images labelled y (the first `num_real`
  images of the split, as for the overall FID), `intra_class_fid` [K]; reported as the mean
  over classes and the worst (largest) with its class.
"""

from typing import Optional, Sequence

import numpy as np
import tensorflow_datasets as tfds

from tfgan_app.evaluation import metrics as metrics_lib
from tfgan_app.evaluation import real_stats
from tfgan_app.evaluation.protocol import EvaluationError

# Record keys (null when not measured).
LABEL_ACCURACY = "label_accuracy"
LABEL_ACCURACY_PER_CLASS = "label_accuracy_per_class"
INTRA_CLASS_FID = "intra_class_fid"
INTRA_CLASS_FID_MEAN = "intra_class_fid_mean"
INTRA_CLASS_FID_WORST = "intra_class_fid_worst"
INTRA_CLASS_FID_WORST_CLASS = "intra_class_fid_worst_class"
KEYS = (LABEL_ACCURACY, LABEL_ACCURACY_PER_CLASS, INTRA_CLASS_FID, INTRA_CLASS_FID_MEAN,
        INTRA_CLASS_FID_WORST, INTRA_CLASS_FID_WORST_CLASS)
LABEL_SAMPLING = "sample i asks for class i mod num_classes"


def sample_labels(num_samples: int, num_classes: int) -> np.ndarray:
  """int32 [num_samples]: the class sample i asks for, i mod num_classes."""
  return (np.arange(num_samples) % num_classes).astype(np.int32)


def label_accuracy(logits, labels, num_classes: int) -> dict:
  """How often the classifier reads the class asked for.

  Args:
    logits: [N, K] classifier logits (or probabilities) of the samples.
    labels: [N] the classes asked for, in [0, K).
    num_classes: K.

  Returns:
    {"label_accuracy": mean(argmax(logits) == labels), "label_accuracy_per_class": [K] the same
    over the samples of each class (None for a class with no samples)}. Ties in the argmax go
    to the lower class (numpy's rule).

  Raises:
    ValueError: shapes that do not fit, or a classifier with another number of classes.
  """
  logits, labels = np.asarray(logits), np.asarray(labels)
  if logits.ndim != 2 or labels.shape != (len(logits),) or not len(labels):
    raise ValueError(f"need logits [N, K] and labels [N] with N >= 1, got shapes "
                     f"{list(logits.shape)} and {list(labels.shape)}")
  if logits.shape[1] != num_classes:
    raise ValueError(f"the classifier has {logits.shape[1]} classes, the generator "
                     f"{num_classes}; label accuracy needs a classifier of the generator's classes")
  right = np.argmax(logits, axis=1) == labels
  per_class = [float(np.mean(right[labels == label])) if np.any(labels == label) else None
               for label in range(num_classes)]
  return {LABEL_ACCURACY: float(np.mean(right)), LABEL_ACCURACY_PER_CLASS: per_class}


def intra_class_fid(real_features, real_labels, generated_features, generated_labels,
                    num_classes: int) -> dict:
  """FID of each class's samples against that class's real images (`metrics.frechet_distance`).

  Returns:
    {"intra_class_fid": [K] floats, "intra_class_fid_mean": their mean,
     "intra_class_fid_worst": their maximum, "intra_class_fid_worst_class": its class}.

  Raises:
    ValueError: a class with fewer than 2 real or 2 generated samples, or bad shapes.
  """
  real_features, generated_features = np.asarray(real_features), np.asarray(generated_features)
  real_labels, generated_labels = np.asarray(real_labels), np.asarray(generated_labels)
  if len(real_labels) != len(real_features) or len(generated_labels) != len(generated_features):
    raise ValueError("need one label per row of features")
  distances = []
  for label in range(num_classes):
    real = real_features[real_labels == label]
    generated = generated_features[generated_labels == label]
    if len(real) < 2 or len(generated) < 2:
      raise ValueError(f"class {label} has {len(real)} real and {len(generated)} generated "
                       "samples; intra-class FID needs 2 of each (more samples: "
                       "--num_samples)")
    distances.append(metrics_lib.frechet_distance(real, generated))
  worst = int(np.argmax(distances))
  return {INTRA_CLASS_FID: distances, INTRA_CLASS_FID_MEAN: float(np.mean(distances)),
          INTRA_CLASS_FID_WORST: distances[worst], INTRA_CLASS_FID_WORST_CLASS: worst}


def real_labels(dataset: str, split: str, num_real: int, image_shape: Sequence[int],
                data_dir: Optional[str] = None) -> np.ndarray:
  """int64 [num_real]: the labels of the real images `real_stats.real_statistics` measures (the
  first `num_real` of the split, in the same order).

  Raises:
    EvaluationError: the dataset has no labels.
  """
  info = real_stats.prepare_real(dataset, split, image_shape, data_dir)
  if info.folder is not None:
    if info.folder.labels is None:
      raise EvaluationError(f"{dataset} has no class subdirectories: no real labels for the "
                            "intra-class FID")
    return np.asarray(info.folder.labels[:num_real], np.int64)
  builder = tfds.builder(info.name, data_dir=data_dir)
  if "label" not in builder.info.features:
    raise EvaluationError(f"{dataset} has no 'label' feature: no real labels for the "
                          "intra-class FID")
  # TFDS's file order, as `data.load_uint8_images`; the images are not decoded.
  examples = tfds.load(info.name, split=info.split, data_dir=data_dir, download=False,
                       shuffle_files=False, decoders={"image": tfds.decode.SkipDecoding()})
  labels = examples.map(lambda example: example["label"]).take(num_real).batch(10_000)
  return np.concatenate([batch.numpy() for batch in labels] + [np.zeros([0], np.int64)])


def class_metrics(generated: metrics_lib.Activations, labels: np.ndarray, num_classes: int,
                  real_features: Optional[np.ndarray] = None,
                  real_label_array: Optional[np.ndarray] = None) -> dict:
  """The record's conditional keys: label accuracy when `generated.logits` are the domain
  classifier's, intra-class FID when the real features have labels; None where not measured."""
  record = {key: None for key in KEYS}
  record.update(num_classes=int(num_classes), label_sampling=LABEL_SAMPLING)
  try:
    if generated.logits is not None:
      record.update(label_accuracy(generated.logits, labels, num_classes))
    if real_label_array is not None and generated.features is not None:
      record.update(intra_class_fid(real_features, real_label_array, generated.features,
                                    labels, num_classes))
  except ValueError as error:
    raise EvaluationError(str(error)) from error
  return record


def format_lines(record: dict, class_names: Optional[Sequence[str]] = None) -> list:
  """(label, value) rows of the conditional keys present in `record`, for the tables."""
  num_classes = record.get("num_classes") or 0
  names = list(class_names or [str(label) for label in range(num_classes)])
  rows = []
  if record.get(LABEL_ACCURACY) is not None:
    per_class = record[LABEL_ACCURACY_PER_CLASS]
    rows.append(("label accuracy", f"{record[LABEL_ACCURACY]:.2%}"))
    rows.append(("  per class", ", ".join(
        f"{name} {value:.1%}" for name, value in zip(names, per_class) if value is not None)))
    lowest = int(np.argmin([1.0 if v is None else v for v in per_class]))
    rows.append(("  lowest", f"{names[lowest]} {per_class[lowest]:.2%}"))
  if record.get(INTRA_CLASS_FID_MEAN) is not None:
    worst = record[INTRA_CLASS_FID_WORST_CLASS]
    rows.append(("intra-class FID mean", f"{record[INTRA_CLASS_FID_MEAN]:.6g}"))
    rows.append(("intra-class FID worst", f"{record[INTRA_CLASS_FID_WORST]:.6g} "
                                          f"({names[worst]})"))
  return rows

