"""The classifiers that evaluation measures with: the project's domain classifier and TF-GAN's
Inception v3, behind one interface (`load_evaluation_classifier`)."""

import hashlib
import os

import numpy as np
import tensorflow as tf

from tfgan_app.evaluation import classifier as classifier_lib
from tfgan_app.evaluation import metrics as metrics_lib
from tfgan_app.evaluation.protocol import (  # pylint: disable=g-multiple-import
    GENERATION_BATCH_SIZE, INCEPTION, INCEPTION_HANDLE, INCEPTION_SIZE, EvaluationError)


def content_sha256(path: str) -> str:
  """sha256 over a SavedModel's graph file and every file under `variables/`, in name order.

  Identifies the classifier's weights and graph, independent of where it lives.

  Raises:
    EvaluationError: `path` holds no saved_model.pb / tfhub_module.pb.
  """
  digest = hashlib.sha256()
  graph = next((name for name in ("saved_model.pb", "tfhub_module.pb")
                if os.path.isfile(os.path.join(path, name))), None)
  if graph is None:
    raise EvaluationError(f"no SavedModel at {path} (no saved_model.pb)")
  files = [graph]
  variables = os.path.join(path, "variables")
  for root, _, names in os.walk(variables):
    files.extend(os.path.relpath(os.path.join(root, name), path) for name in names)
  for relative in [files[0]] + sorted(files[1:]):
    digest.update(relative.encode() + b"\0")
    with open(os.path.join(path, relative), "rb") as f:
      for chunk in iter(lambda: f.read(1 << 20), b""):
        digest.update(chunk)
  return digest.hexdigest()


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


class InceptionClassifier:
  """TF-GAN's Inception v3 (TF-Hub module): `pool_3` features [N, 2048], logits [N, 1008].

  Images in [-1, 1] go back to [0, 255], are resized bilinearly to 299x299 and rescaled by
  `tfgan.eval.preprocess_image`; grayscale images are repeated to three channels.
  """

  def __init__(self, handle: str = INCEPTION_HANDLE, batch_size: int = 100):
    import tensorflow_hub as hub  # pylint: disable=import-outside-toplevel
    from tfgan_app.common.tfgan_compat import tfgan  # pylint: disable=import-outside-toplevel
    self._tfgan = tfgan
    try:
      local = handle if os.path.isdir(handle) else hub.resolve(handle)
      self._module = hub.load(local)
    except Exception as error:  # Network, missing cache, wrong format: one answer to the user.
      first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
      raise EvaluationError(
          f"cannot load TF-GAN's Inception module from {handle} ({first[:200]}); offline, "
          f"download {INCEPTION_HANDLE}?tf-hub-format=compressed elsewhere, unpack it and pass "
          "--classifier=<that directory>, or set TFHUB_CACHE_DIR to a cache that holds it") \
          from error
    self.path = local
    self.sha256 = content_sha256(local)
    self.image_shape = None  # Any size, 1 or 3 channels.
    self.dataset = None
    self.resize = f"bilinear to {INCEPTION_SIZE}x{INCEPTION_SIZE} (tfgan.eval.preprocess_image)"
    self.batch_size = batch_size

  def check_image_shape(self, image_shape) -> None:
    if image_shape[-1] not in (1, 3):
      raise EvaluationError(f"Inception takes 1- or 3-channel images, got {image_shape}")

  def activations(self, images: np.ndarray, needs) -> metrics_lib.Activations:
    features, logits = [], []
    for start in range(0, len(images), self.batch_size):
      batch = tf.constant(images[start:start + self.batch_size], tf.float32)
      if batch.shape[-1] == 1:
        batch = tf.repeat(batch, 3, axis=-1)
      batch = self._tfgan.eval.preprocess_image((batch + 1.0) * 127.5, INCEPTION_SIZE,
                                                INCEPTION_SIZE)
      outputs = self._module(batch)
      features.append(np.asarray(outputs["pool_3"]).reshape(len(batch), -1))
      logits.append(np.asarray(outputs["logits"]))
    return metrics_lib.Activations(
        features=np.concatenate(features) if "features" in needs else None,
        logits=np.concatenate(logits) if "logits" in needs else None)


def default_classifier(dataset: str, num_channels: int) -> str:
  """The classifier spec used when --classifier is not given (see the module docstring).

  Raises:
    EvaluationError: a grayscale dataset whose environment variable is not set.
  """
  if num_channels == 3:
    return INCEPTION
  variable = f"TFGAN_APP_{dataset.upper().replace('-', '_')}_CLASSIFIER"
  path = os.environ.get(variable)
  if not path:
    raise EvaluationError(
        f"no classifier for {dataset}: pass --classifier=DIR or set ${variable}; train one "
        f"with python -m tfgan_app.classifier --dataset={dataset} --out=DIR")
  return path


def load_evaluation_classifier(spec: str):
  """Loads `spec`: a tfgan_app classifier directory, `inception`, or an Inception directory.

  Returns:
    A `DomainClassifier` or an `InceptionClassifier`.

  Raises:
    EvaluationError: nothing usable at `spec` (the message says how to supply one).
  """
  if spec == INCEPTION:
    return InceptionClassifier(os.environ.get("TFGAN_APP_INCEPTION", INCEPTION_HANDLE))
  if not os.path.isdir(spec):
    raise EvaluationError(
        f"no classifier at --classifier={spec}: pass a directory written by python -m "
        "tfgan_app.classifier --dataset=mnist --out=DIR, or 'inception'")
  if os.path.isfile(os.path.join(spec, classifier_lib.METADATA_FILE)):
    try:
      return DomainClassifier(spec)
    except classifier_lib.ClassifierError as error:
      raise EvaluationError(str(error)) from error
  if os.path.isfile(os.path.join(spec, "tfhub_module.pb")):
    return InceptionClassifier(spec)
  try:
    return DomainClassifier(spec)
  except classifier_lib.ClassifierError as error:
    raise EvaluationError(f"{error}; or pass a directory holding TF-GAN's Inception module") \
        from error
