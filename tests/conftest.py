"""Shared test fixtures: where the offline TFDS data lives, and a tiny training config."""

import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)

from tfgan_app.common import config as config_lib  # pylint: disable=wrong-import-position


def tfds_data_dir() -> str:
  """$TFDS_DATA_DIR, else ../shared/tfds beside the checkout (the CI layout)."""
  path = os.environ.get("TFDS_DATA_DIR") or os.path.join(REPO_ROOT, "..", "shared", "tfds")
  return os.path.abspath(path)


@pytest.fixture
def data_dir():
  path = tfds_data_dir()
  if not os.path.isdir(os.path.join(path, "mnist")):
    pytest.fail(f"MNIST for TFDS not found under {path}; set TFDS_DATA_DIR")
  return path


def tiny_config(workdir, data_dir, **overrides) -> config_lib.TrainConfig:
  """A DCGAN small enough to train a few steps in seconds on a CPU."""
  # float32: exact comparisons (resume, replicas) are calibrated on it, and it is fast on every
  # CPU; runs that use the resolved precision say mixed_precision="auto".
  values = dict(dataset="mnist", data_dir=data_dir, workdir=str(workdir), train_steps=4,
                batch_size=16, latent_dim=8, g_filters=8, d_filters=8, log_every=2,
                sample_every=2, num_sample_images=4, checkpoint_every=2, keep_checkpoints=5,
                seed=3, deterministic=True, download=False, shuffle_buffer=1000,
                split="train[:2000]", model_name="tiny", mixed_precision="float32")
  values.update(overrides)
  return config_lib.TrainConfig(**values)


def checkpoint_values(path) -> dict:
  """Every value a checkpoint holds, by name (the object graph left out): for exact compares."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  reader = tf.train.load_checkpoint(str(path))
  return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(str(path))
          if not name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")}


def values_and_gradients(layer, inputs):
  """[outputs, d loss/d inputs, d loss/d each trainable weight] for loss = sum(outputs^2)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  with tf.GradientTape() as tape:
    tape.watch(inputs)
    outputs = layer(inputs)
    loss = tf.reduce_sum(tf.cast(outputs, tf.float32) ** 2)
  return [outputs] + tape.gradient(loss, [inputs] + layer.trainable_variables)


def assert_images_match(actual, expected, max_fraction_off_by_one=0.01):
  """uint8 images of one generator computed at different batch shapes or through another graph.

  oneDNN picks its kernels, and so its summation orders, per CPU and per batch shape: values
  agree to about 1e-7, so a pixel on a rounding boundary may land one level apart. Anything a
  real bug changes (another seed, other weights, another latent) moves far more pixels further.
  Bit-equality is asserted only where the contract promises it: same inputs, same shapes.
  """
  import numpy as np  # pylint: disable=import-outside-toplevel
  actual, expected = np.asarray(actual), np.asarray(expected)
  assert actual.shape == expected.shape and actual.dtype == expected.dtype
  difference = np.abs(actual.astype(np.int16) - expected.astype(np.int16))
  assert difference.max(initial=0) <= 1, f"pixels differ by up to {difference.max()} levels"
  assert np.mean(difference > 0) <= max_fraction_off_by_one, (
      f"{np.mean(difference > 0):.2%} of the pixels differ")


def assert_values_match(actual, expected):
  """float32 values computed at different batch shapes (see `assert_images_match`)."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)

# Seconds a child process or a wait may take before a test calls it hung. A guard against hangs,
# not a speed limit: an AVX2-only CPU shared with other jobs ran these tests 10-20x slower than
# the reference machine, and no test may fail because the machine is slow.
HANG_TIMEOUT_S = 1800


def run_script_ok(script: str) -> None:
  """Runs `script` in a fresh Python (a process of its own: logical CPU devices for replicas
  must be configured before TensorFlow starts) and asserts it ends by printing "ok"."""
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=HANG_TIMEOUT_S)
  assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


def numpy_frechet_distance(a, b) -> float:
  """FID's formula in numpy/scipy, independent of TF-GAN: ||mu_a - mu_b||^2 +
  Tr(C_a + C_b - 2 (C_a C_b)^(1/2))."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  import scipy.linalg  # pylint: disable=import-outside-toplevel
  mu_a, mu_b = a.mean(0), b.mean(0)
  cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  sqrt_product = scipy.linalg.sqrtm(cov_a @ cov_b).real
  return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2.0 * sqrt_product))


def numpy_unbiased_mmd2(a, b) -> float:
  """KID's unbiased MMD^2 in numpy with k(x, y) = (x.y / d + 1)^3 (one block)."""
  dim = a.shape[1]
  k_aa = (a @ a.T / dim + 1) ** 3
  k_bb = (b @ b.T / dim + 1) ** 3
  k_ab = (a @ b.T / dim + 1) ** 3
  m, n = len(a), len(b)
  return float((k_aa.sum() - k_aa.trace()) / (m * (m - 1))
               + (k_bb.sum() - k_bb.trace()) / (n * (n - 1)) - 2 * k_ab.mean())


# --- Class-conditional stand-ins (the interface the conditional models implement).


def conditional_standin(latent_dim: int, output_shape, num_classes: int, bands: bool = False,
                        follow_labels: bool = True):
  """A tiny class-conditional generator: `generator(latents, labels=labels, training=False)`,
  latents float32 [B, latent_dim], labels int32 [B] -> [B, *output_shape] in [-1, 1], with
  `num_classes`. An Embedding of the class joined to z, then Dense -> tanh -> reshape.

  bands=True (images [H, W, 1], H >= 2 num_classes): fixed weights that paint class k as
  rows 2k, 2k+1 at about +tanh(3) and everything else at about -tanh(3) (varying a little with
  z), which `band_classifier` reads as k.
  follow_labels=False: the class painted is argmax(latents[:, :num_classes]), whatever the
  labels say (a generator that ignores its labels).
  """
  import keras  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from keras import layers  # pylint: disable=import-outside-toplevel

  class ConditionalStandIn(keras.Model):

    def __init__(self):
      super().__init__(name="conditional_standin")
      self.num_classes = int(num_classes)
      self.embed = layers.Embedding(num_classes, num_classes, name="embed")
      self.project = layers.Dense(int(np.prod(output_shape)), name="project")

    def call(self, latents, labels=None, training=False):
      if not follow_labels:
        labels = keras.ops.argmax(latents[:, :num_classes], axis=1)
      joined = keras.ops.concatenate([latents, self.embed(labels)], axis=-1)
      return keras.ops.reshape(keras.ops.tanh(self.project(joined)), (-1, *output_shape))

  keras.utils.set_random_seed(3)
  model = ConditionalStandIn()
  model(np.zeros([1, latent_dim], np.float32), labels=np.zeros([1], np.int32))
  if bands:
    pixels = int(np.prod(output_shape))
    kernel = np.zeros([latent_dim + num_classes, pixels], np.float32)
    # Some variation with z, far too little to move a band's mean across zero.
    kernel[:latent_dim] = np.random.default_rng(0).normal(0.0, 0.2, [latent_dim, pixels])
    for label in range(num_classes):
      kernel[latent_dim + label] = -3.0 + 6.0 * band_mask(output_shape, num_classes)[label]
    model.embed.set_weights([np.eye(num_classes, dtype=np.float32)])
    model.project.set_weights([kernel, np.zeros([pixels], np.float32)])
  return model


def band_mask(image_shape, num_classes: int):
  """[num_classes, H * W * C] float32: 1 on rows 2k and 2k + 1 of class k, else 0."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  masks = np.zeros([num_classes, *image_shape], np.float32)
  for label in range(num_classes):
    masks[label, 2 * label:2 * label + 2] = 1.0
  return masks.reshape(num_classes, -1)


def band_classifier(out_dir: str, image_shape=(28, 28, 1), num_classes: int = 10,
                    dataset: str = "mnist") -> str:
  """A domain-classifier export (tfgan_app.evaluation.classifier's format) with fixed weights:
  features = the mean of each class's band of rows (`band_mask`), logits = 20 x features.
  Band images of `conditional_standin(bands=True)` are read as their class with confidence."""
  import keras  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from keras import layers  # pylint: disable=import-outside-toplevel
  from tfgan_app.evaluation import classifier as classifier_lib  # pylint: disable=import-outside-toplevel
  images = keras.Input(image_shape)
  flat = layers.Flatten()(images)
  features = layers.Dense(num_classes, name=classifier_lib.FEATURES)(flat)
  logits = layers.Dense(num_classes, name="head")(features)
  model = keras.Model(images, logits)
  masks = band_mask(image_shape, num_classes)
  model.get_layer(classifier_lib.FEATURES).set_weights(
      [(masks / masks.sum(axis=1, keepdims=True)).T, np.zeros([num_classes], np.float32)])
  model.get_layer("head").set_weights([20.0 * np.eye(num_classes, dtype=np.float32),
                                       np.zeros([num_classes], np.float32)])
  return classifier_lib.save_classifier(model, out_dir, {
      "dataset": dataset, "image_shape": list(image_shape), "num_classes": num_classes,
      "class_names": [str(label) for label in range(num_classes)]})


def cc_loader_check_binary() -> str:
  """serving/cc_loader_check.cc built against the wheel's C++ loader; cached by source and TF."""
  import hashlib  # pylint: disable=import-outside-toplevel
  import shutil  # pylint: disable=import-outside-toplevel
  import subprocess  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  compiler = shutil.which("g++")
  if compiler is None:
    pytest.skip("g++ not found: cannot build the TF Serving loader check")
  source = os.path.join(REPO_ROOT, "serving", "cc_loader_check.cc")
  tf_dir = os.path.dirname(tf.__file__)
  with open(source, "rb") as f:
    key = hashlib.sha256(f.read() + tf.__version__.encode() + tf_dir.encode()).hexdigest()[:16]
  cache = os.environ.get("TFGAN_APP_CACHE") or os.path.expanduser("~/.cache/tfgan_app")
  binary = os.path.join(cache, f"cc_loader_check-{key}")
  if not os.path.exists(binary):
    os.makedirs(cache, exist_ok=True)
    staging = f"{binary}.{os.getpid()}.tmp"
    result = subprocess.run(
        [compiler, "-O1", "-w", f"-I{tf_dir}/include", "-D_GLIBCXX_USE_CXX11_ABI=1",
         "--std=c++17", "-DEIGEN_MAX_ALIGN_BYTES=64", source, "-o", staging, f"-L{tf_dir}",
         "-Wl,--no-as-needed", "-l:libtensorflow_framework.so.2", "-l:libtensorflow_cc.so.2",
         f"-Wl,-rpath,{tf_dir}"], capture_output=True, text=True, timeout=HANG_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-3000:]
    os.replace(staging, binary)
  return binary


# Written once or not per training step: timings, the precision record, sample images.
NOT_STEP_LOGS = ("images_per_sec", "precision", "samples")


def logged_scalars(workdir, skip=NOT_STEP_LOGS) -> dict:
  """The values the training step logged (TensorBoard event files under <workdir>/train), by
  (tag, step); tags in `skip` left out."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  values = {}
  train_dir = os.path.join(str(workdir), "train")
  for name in os.listdir(train_dir):
    for event in tf.compat.v1.train.summary_iterator(os.path.join(train_dir, name)):
      for value in event.summary.value:
        if value.tag not in skip:
          values[(value.tag, event.step)] = float(tf.make_ndarray(value.tensor))
  return values


def straight_and_resumed_checkpoints(straight, stop_at=2):
  """Trains `straight` (a TrainConfig) without a stop, and the same run stopped at step `stop_at`
  and resumed to its end in another workdir; returns both last checkpoints' values
  (`checkpoint_values`), which an exact resume makes equal."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tfgan_app.runs import workdir as workdir_lib  # pylint: disable=import-outside-toplevel
  from tfgan_app.training import loop as train  # pylint: disable=import-outside-toplevel
  train.train_and_export(straight)
  resumed = straight.with_updates(workdir=straight.workdir + "_resumed", train_steps=stop_at)
  assert train.train_and_export(resumed).step == stop_at
  end = straight.train_steps
  assert train.train_and_export(resumed.with_updates(train_steps=end)).step == end
  last = lambda config: tf.train.latest_checkpoint(
      os.path.join(config.workdir, workdir_lib.CHECKPOINT_DIR))
  return checkpoint_values(last(straight)), checkpoint_values(last(resumed))


def resume_with_field_left_out(config, field):
  """Trains `config` 2 steps, removes `field` from its run_spec.json as runs of versions before
  that field wrote it, and resumes to step 3 (which must be accepted); returns the spec as
  written before the removal."""
  import json  # pylint: disable=import-outside-toplevel
  from tfgan_app.training import loop as train  # pylint: disable=import-outside-toplevel
  config = config.with_updates(train_steps=2, checkpoint_every=2, export=False)
  train.train_and_export(config)
  spec_path = os.path.join(config.workdir, "run_spec.json")
  with open(spec_path) as f:
    spec = json.load(f)
  older = {name: value for name, value in spec.items() if name != field}
  with open(spec_path, "w") as f:
    json.dump(older, f)
  assert train.train_and_export(config.with_updates(train_steps=3)).step == 3
  return spec
