"""The classifiers that evaluation measures with: the project's domain classifier and TF-GAN's
Inception v3, behind one interface (`load_evaluation_classifier`)."""

import os
from typing import Optional

import numpy as np

from tfgan_app.evaluation import classifier as classifier_lib
from tfgan_app.evaluation import metrics as metrics_lib
# Re-exported: InceptionClassifier and content_sha256 are reached through this module.
from tfgan_app.evaluation import inception
from tfgan_app.evaluation.inception import InceptionClassifier  # pylint: disable=unused-import
from tfgan_app.evaluation.protocol import (  # pylint: disable=g-multiple-import,unused-import
    FOLDER_PREFIX, GENERATION_BATCH_SIZE, INCEPTION, INCEPTION_HANDLE, EvaluationError,
    content_sha256)


class DomainClassifier:
  """The project's classifier (`tfgan_app.evaluation.classifier`) behind the evaluator's interface.

  Attributes: path, sha256, image_shape (H, W, C), dataset (from classifier.json or None),
  resize ("none": images must already have the classifier's shape).
  """

  def __init__(self, path: str, batch_size: int = GENERATION_BATCH_SIZE):
    self._classifier = classifier_lib.load_classifier(path, batch_size)
    self.path = os.path.abspath(path)
    self.sha256 = content_sha256(path)
    self.image_shape = self._classifier.image_shape
    self.dataset = self._classifier.metadata.get("dataset")
    self.resize = "none"
    self.resize_method = None  # Images must already have the classifier's size.

  def check_image_shape(self, image_shape) -> None:
    """Raises EvaluationError unless images of `image_shape` [H, W, C] fit the classifier."""
    if tuple(image_shape) != tuple(self.image_shape):
      raise EvaluationError(
          f"the images are {'x'.join(map(str, image_shape))} but the classifier at {self.path} "
          f"takes {'x'.join(map(str, self.image_shape))}; use a classifier trained on the "
          "generator's dataset at its image size (python -m tfgan_app.classifier)")

  def activations(self, images: np.ndarray, needs) -> metrics_lib.Activations:
    """float32 [N, H, W, C] in [-1, 1] -> the `Activations` fields named in `needs`."""
    return metrics_lib.Activations(
        features=self._classifier.features(images) if "features" in needs else None,
        logits=self._classifier.logits(images) if "logits" in needs else None)


def classifier_variable(dataset: str) -> str:
  """The environment variable naming `dataset`'s default classifier.

  TFGAN_APP_<NAME>_CLASSIFIER, NAME the dataset upper-cased with every other character than a
  letter or digit turned into "_"; for `folder:PATH` the folder's own name: mnist ->
  TFGAN_APP_MNIST_CLASSIFIER, folder:../shared/images/cifar10_jpeg ->
  TFGAN_APP_CIFAR10_JPEG_CLASSIFIER.
  """
  if dataset.startswith(FOLDER_PREFIX):
    dataset = os.path.basename(os.path.normpath(dataset[len(FOLDER_PREFIX):]))
  name = "".join(c if c.isalnum() else "_" for c in dataset.upper())
  return f"TFGAN_APP_{name}_CLASSIFIER"


def default_classifier(dataset: str, num_channels: int) -> str:
  """The classifier spec used when --classifier is not given.

  $TFGAN_APP_<DATASET>_CLASSIFIER (`classifier_variable`) when it is set; otherwise `inception`
  for colour images.

  Raises:
    EvaluationError: a grayscale dataset whose environment variable is not set.
  """
  variable = classifier_variable(dataset)
  path = os.environ.get(variable)
  if path:
    return path
  if num_channels == 3:
    return INCEPTION
  raise EvaluationError(
      f"no classifier for {dataset}: pass --classifier=DIR or set ${variable}; train one "
      f"with python -m tfgan_app.classifier --dataset={dataset} --out=DIR")


def load_evaluation_classifier(spec: str, resize_method: Optional[str] = None):
  """Loads `spec`: a tfgan_app classifier directory, `inception`, or an Inception copy.

  Args:
    spec: a directory written by `python -m tfgan_app.classifier`; `inception` (the TF-Hub
      handle, or $TFGAN_APP_INCEPTION); a directory holding TF-GAN's Inception module, or a
      SavedModel directory or `.keras` file with its interface (`tfgan_app.evaluation.inception`).
    resize_method: Inception's resize protocol, "clean" or "tf_bilinear"; None: the default
      (clean). Domain classifiers take images at their own size and refuse a resize method.

  Returns:
    A `DomainClassifier` or an `InceptionClassifier`.

  Raises:
    EvaluationError: nothing usable at `spec` (the message says how to supply one), or a resize
      method given for a domain classifier.
  """
  if spec == INCEPTION:
    return inception.load_inception(os.environ.get("TFGAN_APP_INCEPTION", INCEPTION_HANDLE),
                                     resize_method)
  if os.path.isfile(spec) and spec.endswith(inception.KERAS_SUFFIX):
    return inception.load_inception(spec, resize_method)
  if not os.path.isdir(spec):
    raise EvaluationError(
        f"no classifier at --classifier={spec}: pass a directory written by python -m "
        "tfgan_app.classifier --dataset=mnist --out=DIR, 'inception', or a local Inception "
        "(module directory, SavedModel directory or .keras file)")
  if os.path.isfile(os.path.join(spec, "tfhub_module.pb")):
    return inception.load_inception(spec, resize_method)
  try:
    classifier = DomainClassifier(spec)
  except classifier_lib.ClassifierError as error:
    if not os.path.isfile(os.path.join(spec, classifier_lib.METADATA_FILE)):
      try:  # A SavedModel with Inception's interface rather than the classifier's signatures.
        return inception.load_inception(spec, resize_method)
      except EvaluationError:
        pass
    raise EvaluationError(f"{error}; or pass a directory holding TF-GAN's Inception module") \
        from error
  if resize_method is not None:
    raise EvaluationError(f"--resize_method={resize_method} applies to Inception only; the "
                          f"classifier at {spec} takes images at their own size: drop it")
  return classifier
