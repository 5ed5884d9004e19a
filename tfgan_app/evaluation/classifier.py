"""The project's own domain classifier, the judge of generated MNIST / Fashion-MNIST images.

  python -m tfgan_app.classifier --dataset=mnist --out=/work/classifiers/mnist
  # about 40 s (30 CPU-seconds) on 2 CPU cores; test accuracy 99.3% (fashion_mnist: 91.4%)

TF-GAN's own MNIST classifier loads from TF-Hub, which needs a network (shared/notes/stack.md
§1), so tests and offline users judge samples with this one. It is a small CNN trained on the
TFDS train split with images as the GAN sees them (float32 NHWC in [-1, 1]) and evaluated on
the test split.

The output directory is a SavedModel with two signatures, `logits` and `features` (both take
`images` float32 [N, H, W, C] in [-1, 1]), plus `classifier.json` describing it. The module
tracks only the raw `tf.Variable`s and reaches the Keras model through a closure: a `tf.Module`
that holds a Keras 3 model as an attribute loads in Python but fails under TF Serving's C++
loader (stack.md §3).
"""

import json
import os
import time
from typing import Optional, Sequence

import keras
from keras import layers
import numpy as np
import tensorflow as tf

from tfgan_app.common import atomic
from tfgan_app.data import datasets as data
from tfgan_app.evaluation import classifier_models as models
# Re-exported: the classifier's users reach the architectures here.
from tfgan_app.evaluation.classifier_models import (  # pylint: disable=g-multiple-import,unused-import
    ARCHITECTURES, FEATURES, IMAGES, LOGITS, build_model)
# Re-exported: the classifier's users reach them here.
from tfgan_app.data.labelled import (  # pylint: disable=g-multiple-import,unused-import
    TEST_SPLIT, TRAIN_SPLIT, describe_dataset, load_split)
from tfgan_app.hardware.precision import classifier_compute_dtype as default_compute_dtype

# Signature names: a contract with every caller of the exported classifier (tensor names:
# classifier_models.IMAGES, LOGITS, FEATURES).
LOGITS_SIGNATURE = "logits"
FEATURES_SIGNATURE = "features"
METADATA_FILE = "classifier.json"

COMPUTE_DTYPES = ("auto", "mixed_bfloat16", "float32")

# small_cnn's recipe (classifier_models.RECIPES), the defaults for MNIST-like data.
DEFAULT_EPOCHS = models.RECIPES["small_cnn"].epochs
DEFAULT_BATCH_SIZE = models.RECIPES["small_cnn"].batch_size
DEFAULT_LEARNING_RATE = models.RECIPES["small_cnn"].learning_rate
FEATURE_DIM = models.SMALL_CNN_FEATURE_DIM
# Rows per call in `Classifier` and in evaluation: large enough to amortise the per-call cost,
# small enough that 10,000 images never sit in one activation tensor.
INFERENCE_BATCH_SIZE = 500

# Files a previous classifier export leaves; an existing --out holding anything else is refused
# rather than overwritten.
_EXPORT_ENTRIES = frozenset({"saved_model.pb", "variables", "assets", "fingerprint.pb",
                             METADATA_FILE})


class ClassifierError(RuntimeError):
  """The classifier cannot be trained, written or loaded (bad destination, bad directory)."""


def feature_model(model: keras.Model) -> keras.Model:
  """A model sharing `model`'s weights that outputs its "features" layer [N, FEATURE_DIM]."""
  # model.input, not model.inputs: a one-element list makes Keras warn on every tensor call.
  return keras.Model(model.input, model.get_layer(FEATURES).output, name="classifier_features")


class ClassifierExportModule(tf.Module):
  """A `tf.Module` with the classifier's `logits` and `features` signatures."""

  def __init__(self, model: keras.Model):
    super().__init__(name="classifier_export")
    # Raw tf.Variables only, the Keras model only in closures (see the module docstring).
    self._variables = [v.value for v in model.variables]
    features = feature_model(model)
    image_shape = tuple(model.input_shape[1:])
    spec = tf.TensorSpec([None, *image_shape], tf.float32, name=IMAGES)

    def logits_fn(images):
      return {LOGITS: model(images, training=False)}

    def features_fn(images):
      return {FEATURES: features(images, training=False)}

    self.logits = tf.function(logits_fn, input_signature=[spec])
    self.features = tf.function(features_fn, input_signature=[spec])

  def signatures(self):
    return {LOGITS_SIGNATURE: self.logits.get_concrete_function(),
            FEATURES_SIGNATURE: self.features.get_concrete_function()}


def save_classifier(model: keras.Model, out_dir: str, metadata: dict) -> str:
  """Writes the SavedModel and `classifier.json` to `out_dir`, replacing an older export.

  The export is written under a temporary sibling name and renamed into place, so a reader
  never sees half a classifier.

  Returns:
    `out_dir`.

  Raises:
    ClassifierError: `out_dir` holds something other than a classifier export, or cannot be
      written.
  """
  out_dir = os.path.abspath(out_dir)
  check_out_dir(out_dir)
  parent = os.path.dirname(out_dir)
  try:
    staging = atomic.make_staging_dir(out_dir, prefix=f".{os.path.basename(out_dir)}.tmp-")
  except OSError as error:
    raise ClassifierError(f"cannot write under {parent}: {error.strerror}") from error
  try:
    # An older export is moved aside and replaced (os.rename cannot replace a non-empty
    # directory).
    with atomic.publish_dir(out_dir, staging, replace=True):
      module = ClassifierExportModule(model)
      tf.saved_model.save(module, staging, signatures=module.signatures())
      with open(os.path.join(staging, METADATA_FILE), "w") as f:
        json.dump(metadata, f, indent=2, sort_keys=True)
        f.write("\n")
  except Exception as error:
    raise ClassifierError(f"saving the classifier to {out_dir} failed: {error}") from error
  return out_dir


def check_out_dir(out_dir: str) -> None:
  """Refuses an `out_dir` that exists and is not an empty directory or an older export.

  Called before training as well as before saving, so a bad --out costs seconds, not a run.

  Raises:
    ClassifierError: as described.
  """
  if not os.path.exists(out_dir):
    return
  if not os.path.isdir(out_dir):
    raise ClassifierError(f"--out={out_dir} exists and is not a directory")
  foreign = sorted(set(os.listdir(out_dir)) - _EXPORT_ENTRIES)
  if foreign:
    raise ClassifierError(
        f"--out={out_dir} exists and holds files that are not a classifier export "
        f"({', '.join(foreign[:5])}); pass a new or empty directory")


def default_out_name(dataset: str) -> str:
  """The directory name of a dataset's classifier: the dataset, or a folder dataset's name."""
  if data.is_folder(dataset):
    return os.path.basename(os.path.normpath(dataset[len("folder:"):])) or "folder"
  return dataset


def recorded_dataset(dataset: str) -> str:
  """The dataset name that classifier.json records: folder paths made absolute."""
  if data.is_folder(dataset):
    return "folder:" + os.path.realpath(dataset[len("folder:"):])
  return dataset


def predict_logits(model: keras.Model, images: np.ndarray) -> np.ndarray:
  """Logits [N, num_classes] of uint8 or [-1, 1] float images, in inference batches."""
  outputs = []
  for start in range(0, len(images), INFERENCE_BATCH_SIZE):
    batch = images[start:start + INFERENCE_BATCH_SIZE]
    if batch.dtype == np.uint8:
      batch = data.to_unit_range(batch)
    outputs.append(keras.ops.convert_to_numpy(model(batch, training=False)))
  return np.concatenate(outputs)


def train_classifier(dataset: str, data_dir: Optional[str], out_dir: str,
                     epochs: Optional[int] = None, train_examples: Optional[int] = None,
                     batch_size: Optional[int] = None,
                     learning_rate: Optional[float] = None, seed: int = 0,
                     compute_dtype: str = "auto", download: bool = True,
                     verbose: int = 0, architecture: str = "auto") -> dict:
  """Trains the classifier on the train split, evaluates it on the test split, saves it.

  Args:
    dataset: TFDS image classification dataset with `image` and `label` features, e.g. mnist,
      fashion_mnist, cifar10; or `folder:PATH` with class subdirectories and train/test splits.
    data_dir: TFDS data directory; None: TFDS's default, which honours $TFDS_DATA_DIR.
    out_dir: directory of the SavedModel and `classifier.json` (new, empty or an older export).
    epochs: passes over the training examples; None: the architecture's recipe
      (`classifier_models.RECIPES`).
    train_examples: use only the first N training examples (None: all of them).
    batch_size: training batch size; None: the recipe's.
    learning_rate: peak learning rate of the warmup + cosine-decay schedule (Adam for
      small_cnn, Nesterov SGD for colour_cnn); None: the recipe's.
    seed: seed of the initial weights, dropout, augmentation and data order. Sets Keras's
      global seeds.
    compute_dtype: "auto" (see `default_compute_dtype`), "mixed_bfloat16" or "float32" for
      training. The saved model always computes in float32.
    download: download and prepare the dataset if `data_dir` lacks it.
    verbose: Keras `fit` verbosity (0 silent, 2 one line per epoch).
    architecture: `classifier_models.ARCHITECTURES`; "auto": colour_cnn for 3-channel
      images, small_cnn otherwise.

  Returns:
    The contents of `classifier.json` (dataset, image_shape, num_classes, class_names,
    architecture, test_accuracy, ...) plus "path" (the saved model) and "model" (the trained
    float32 `keras.Model`, whose logits the SavedModel reproduces).

  Raises:
    data.DatasetError: see `describe_dataset`.
    ClassifierError: bad arguments or `out_dir`.
  """
  if architecture not in ARCHITECTURES:
    raise ClassifierError(f"architecture {architecture!r}; accepted: {ARCHITECTURES}")
  if compute_dtype not in COMPUTE_DTYPES:
    raise ClassifierError(f"compute_dtype {compute_dtype!r}; accepted: {COMPUTE_DTYPES}")
  for name, value in (("epochs", epochs), ("batch_size", batch_size),
                      ("learning_rate", learning_rate)):
    if value is not None and value <= 0:
      raise ClassifierError(f"{name} must be positive, got {value}")
  check_out_dir(os.path.abspath(out_dir))
  start_time = time.time()
  info = describe_dataset(dataset, data_dir, download=download)
  architecture = models.resolve_architecture(architecture, info["image_shape"])
  recipe = models.RECIPES[architecture]
  epochs = epochs or recipe.epochs
  batch_size = batch_size or recipe.batch_size
  learning_rate = learning_rate or recipe.learning_rate
  if train_examples is not None and train_examples < batch_size:
    raise ClassifierError(f"train_examples={train_examples} is fewer than one batch "
                          f"({batch_size}); pass more examples or a smaller batch")
  split = TRAIN_SPLIT if train_examples is None else f"{TRAIN_SPLIT}[:{train_examples}]"
  train_images, train_labels = load_split(dataset, split, data_dir)
  test_images, test_labels = load_split(dataset, TEST_SPLIT, data_dir)
  load_seconds = time.time() - start_time
  if verbose:
    print(f"Loaded {dataset}: {len(train_images)} train and {len(test_images)} test images "
          f"{'x'.join(map(str, info['image_shape']))}, {info['num_classes']} classes "
          f"({load_seconds:.1f} s); {architecture}, {epochs} epochs of batch {batch_size}",
          flush=True)

  keras.utils.set_random_seed(seed)
  if compute_dtype == "auto":
    compute_dtype = default_compute_dtype()
  model = build_model(info["image_shape"], info["num_classes"], compute_dtype, architecture,
                      recipe.weight_decay)
  steps_per_epoch = len(train_images) // batch_size
  models.compile_model(model, recipe, learning_rate, epochs * steps_per_epoch)
  stream = models.training_stream(train_images, train_labels, recipe, batch_size, epochs,
                                  info["num_classes"], seed)
  fit_start = time.time()
  model.fit(stream, epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=verbose,
            shuffle=False)  # Shuffled above.
  train_seconds = time.time() - fit_start

  # The export computes in float32 whatever the training precision, so that features (for
  # FID-like metrics) carry full precision; accuracy is measured on exactly that model.
  export_model = build_model(info["image_shape"], info["num_classes"], "float32",
                             architecture)
  export_model.set_weights(model.get_weights())
  predictions = np.argmax(predict_logits(export_model, test_images), axis=1)
  test_accuracy = float(np.mean(predictions == test_labels))
  metadata = {
      "dataset": recorded_dataset(dataset),
      "image_shape": info["image_shape"],
      "num_classes": info["num_classes"],
      "class_names": info["class_names"],
      "architecture": architecture,
      "feature_dim": int(feature_model(export_model).output.shape[-1]),
      "test_accuracy": test_accuracy,
      "test_examples": int(len(test_images)),
      "train_examples": int(len(train_images)),
      "epochs": epochs,
      "batch_size": batch_size,
      "learning_rate": learning_rate,
      "seed": seed,
      "compute_dtype": compute_dtype,
      "train_seconds": round(train_seconds, 1),
      "tensorflow_version": tf.__version__,
      "keras_version": keras.__version__,
  }
  path = save_classifier(export_model, out_dir, metadata)
  return dict(metadata, path=path, model=export_model)


class Classifier:
  """A loaded classifier export: numpy in, numpy out, in batches of `batch_size` rows."""

  def __init__(self, path: str, batch_size: int = INFERENCE_BATCH_SIZE):
    """Loads the SavedModel at `path`.

    Raises:
      ClassifierError: `path` is not a classifier export.
    """
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
      raise ClassifierError(f"no classifier at {path} (no saved_model.pb); train one with "
                            "python -m tfgan_app.classifier --dataset=mnist --out=DIR")
    # The loaded root must outlive the signature functions, which do not keep their
    # variables alive by themselves.
    self._loaded = tf.saved_model.load(path)
    missing = {LOGITS_SIGNATURE, FEATURES_SIGNATURE} - set(self._loaded.signatures.keys())
    if missing:
      raise ClassifierError(f"{path} is a SavedModel without the signature(s) "
                            f"{sorted(missing)} of a tfgan_app classifier")
    self._logits = self._loaded.signatures[LOGITS_SIGNATURE]
    self._features = self._loaded.signatures[FEATURES_SIGNATURE]
    self.batch_size = batch_size
    self.path = path
    spec = self._logits.structured_input_signature[1][IMAGES]
    self.image_shape = tuple(int(d) for d in spec.shape[1:])  # (H, W, C)
    metadata_path = os.path.join(path, METADATA_FILE)
    self.metadata = {}
    if os.path.isfile(metadata_path):
      with open(metadata_path) as f:
        self.metadata = json.load(f)
    self.num_classes = int(self._logits.structured_outputs[LOGITS].shape[-1])
    self.feature_dim = int(self._features.structured_outputs[FEATURES].shape[-1])

  def logits(self, images) -> np.ndarray:
    """float32 images [N, H, W, C] in [-1, 1] -> float32 logits [N, num_classes]."""
    return self._run(self._logits, LOGITS, images)

  def features(self, images) -> np.ndarray:
    """float32 images [N, H, W, C] in [-1, 1] -> float32 features [N, feature_dim]."""
    return self._run(self._features, FEATURES, images)

  def probabilities(self, images) -> np.ndarray:
    """Softmax of `logits`, float64 [N, num_classes] (rows sum to 1 to ~1e-15)."""
    logits = self.logits(images).astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)

  def _run(self, function, output, images) -> np.ndarray:
    images = images.numpy() if isinstance(images, tf.Tensor) else np.asarray(images)
    if images.dtype == np.uint8:
      # A uint8 batch here is almost always [0, 255] pixels, which would be classified as if
      # nearly saturated; refuse rather than answer wrongly.
      raise ValueError("the classifier takes float images in [-1, 1]; convert uint8 pixels "
                       "with x / 127.5 - 1")
    if images.ndim != 4 or tuple(images.shape[1:]) != self.image_shape:
      raise ValueError(f"the classifier takes images [N, {', '.join(map(str, self.image_shape))}]"
                       f", got shape {list(images.shape)}")
    images = images.astype(np.float32, copy=False)
    width = self.num_classes if output == LOGITS else self.feature_dim
    outputs = [np.zeros([0, width], np.float32)]  # Keeps an empty batch [0, width].
    for start in range(0, len(images), self.batch_size):
      batch = tf.constant(images[start:start + self.batch_size])
      outputs.append(function(**{IMAGES: batch})[output].numpy())
    return np.concatenate(outputs)


def load_classifier(path: str, batch_size: int = INFERENCE_BATCH_SIZE) -> Classifier:
  """Loads a classifier written by `train_classifier` (or this module's command).

  Returns:
    A `Classifier` with `.logits(images)`, `.features(images)`, `.probabilities(images)`,
    `.image_shape`, `.num_classes`, `.feature_dim` and `.metadata` (the `classifier.json`
    contents, {} if the file is absent).

  Raises:
    ClassifierError: `path` is not a classifier export.
  """
  return Classifier(path, batch_size)
