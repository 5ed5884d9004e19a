"""Sample quality: golden values of `confidence_report`, and the command end to end.

The end-to-end tests judge generators that replay real MNIST test digits: a small Keras model
maps the latents to one of a bank of images (argmax of the first latent coordinates), exported
the way the project exports generators (raw variables tracked, Keras model in a closure,
`serving_default`: `latents` -> uint8 `images`). The judge is a classifier trained here on
3,000 examples; the bank holds digits it classifies correctly and confidently, so the expected
report is known.
"""

import json
import os
import subprocess
import sys

from absl import flags
import keras
from keras import layers
import numpy as np
import pytest
import tensorflow as tf

from tfgan_app import classifier as classifier_lib
from tfgan_app import data
from tfgan_app import export
from tfgan_app import models
from tfgan_app import sample_quality
from conftest import HANG_TIMEOUT_S, REPO_ROOT, tfds_data_dir

LATENT_DIM = 24
IMAGES_PER_CLASS = 2


def _confident(labels, num_classes=10, top=0.95):
  """Probability rows with `top` on each label and the rest spread evenly."""
  rows = np.full([len(labels), num_classes], (1.0 - top) / (num_classes - 1))
  rows[np.arange(len(labels)), labels] = top
  return rows


# ---------------------------------------------------------------------------------------------
# Golden values.

def test_confident_and_evenly_spread_passes():
  report = sample_quality.confidence_report(_confident(np.arange(20) % 10), threshold=0.9)
  assert report == {"num_samples": 20, "threshold": 0.9, "confident_fraction": 1.0,
                    "class_fractions": [0.1] * 10, "min_class_fraction": 0.1, "passes": True}


def test_a_missing_class_fails():
  labels = np.arange(18) % 9  # Class 9 never predicted.
  report = sample_quality.confidence_report(_confident(labels), threshold=0.9)
  assert report["confident_fraction"] == 1.0
  assert report["class_fractions"] == [2 / 18] * 9 + [0.0]
  assert report["min_class_fraction"] == 0.0
  assert report["passes"] is False


def test_low_confidence_fails():
  report = sample_quality.confidence_report(_confident(np.arange(10), top=0.5), threshold=0.9)
  assert report["confident_fraction"] == 0.0
  assert report["class_fractions"] == [0.1] * 10
  assert report["passes"] is False


def test_bars_are_inclusive_and_the_threshold_strict():
  # 20 samples: 16 confident (exactly the 0.8 bar), class 0 predicted once (exactly 0.05).
  labels = np.array([0] + [1, 2, 3, 4, 5, 6, 7, 8, 9] * 2 + [1])
  tops = np.array([0.95] * 16 + [0.9] * 4)  # 0.9 is not above a 0.9 threshold.
  rows = np.stack([_confident([label], top=top)[0] for label, top in zip(labels, tops)])
  report = sample_quality.confidence_report(rows, threshold=0.9)
  assert report["confident_fraction"] == 0.8
  assert report["min_class_fraction"] == 0.05
  assert report["passes"] is True
  # One sample fewer above the threshold, or one fewer for class 0, and it fails.
  assert not sample_quality.confidence_report(rows, threshold=0.95)["passes"]
  rows[0] = _confident([1])[0]
  assert not sample_quality.confidence_report(rows, threshold=0.9)["passes"]


def test_two_classes_and_ties():
  # A tie goes to the lower index; class fractions then are [1.0, 0.0].
  report = sample_quality.confidence_report([[0.5, 0.5], [0.7, 0.3]], threshold=0.6)
  assert report["class_fractions"] == [1.0, 0.0]
  assert report["confident_fraction"] == 0.5
  assert report["passes"] is False


@pytest.mark.parametrize("probabilities, threshold, message", [
    (np.zeros([0, 10]), 0.9, "shape"),
    (np.full([10], 0.1), 0.9, "shape"),
    (np.full([4, 10], 1.0), 0.9, "sum to 1"),  # Logits or unnormalised scores.
    (np.full([4, 2], [1.5, -0.5]), 0.9, "non-negative"),
    (np.full([4, 2], [np.nan, 0.5]), 0.9, "finite"),
    (np.full([4, 2], 0.5), 1.0, "threshold"),
])
def test_bad_input_is_refused(probabilities, threshold, message):
  with pytest.raises(ValueError, match=message):
    sample_quality.confidence_report(probabilities, threshold)


def test_report_is_json_ready():
  report = sample_quality.confidence_report(np.float32(_confident(np.arange(10))), 0.9)
  assert json.loads(json.dumps(report)) == report


# ---------------------------------------------------------------------------------------------
# End to end.

def _data_dir():
  path = tfds_data_dir()
  if not os.path.isdir(os.path.join(path, "mnist")):
    pytest.fail(f"MNIST for TFDS not found under {path}; set TFDS_DATA_DIR")
  return path


class _GeneratorExport(tf.Module):
  """The generator export contract: `serving_default`, `latents` float32 -> `images` uint8."""

  def __init__(self, generator: keras.Model, latent_dim: int):
    super().__init__()
    self._variables = [v.value for v in generator.variables]  # Raw variables only.

    def serve(latents):
      images = generator(latents, training=False)  # [N, H, W, C] in [-1, 1]
      pixels = tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0.0, 255.0)
      return {"images": tf.cast(pixels, tf.uint8)}

    self.serve = tf.function(
        serve, input_signature=[tf.TensorSpec([None, latent_dim], tf.float32, name="latents")])


def _bank_generator(bank: np.ndarray) -> keras.Model:
  """latents [N, LATENT_DIM] -> bank[argmax(latents[:, :len(bank)])] as [-1, 1] floats."""
  num_images = len(bank)
  latents = keras.Input((LATENT_DIM,))
  choice = layers.Lambda(lambda z: keras.ops.one_hot(
      keras.ops.argmax(z[:, :num_images], axis=1), num_images))(latents)  # [N, num_images]
  flat = layers.Dense(int(np.prod(bank.shape[1:])), use_bias=False, name="bank")(choice)
  images = layers.Reshape(bank.shape[1:])(flat)  # [N, H, W, C]
  generator = keras.Model(latents, images)
  generator.get_layer("bank").set_weights(
      [data.to_unit_range(bank).numpy().reshape(num_images, -1)])
  return generator


def _export(bank: np.ndarray, path: str) -> str:
  module = _GeneratorExport(_bank_generator(bank), LATENT_DIM)
  tf.saved_model.save(module, path, signatures={"serving_default":
                                                module.serve.get_concrete_function()})
  return path


@pytest.fixture(scope="module")
def judge_and_banks(tmp_path_factory):
  """(classifier dir, loaded classifier, all-class bank, one-class bank) of uint8 images."""
  classifier_dir = str(tmp_path_factory.mktemp("judge") / "mnist")
  classifier_lib.train_classifier("mnist", _data_dir(), classifier_dir, epochs=2,
                                  train_examples=3000, seed=0, download=False)
  judge = classifier_lib.load_classifier(classifier_dir)
  images, labels = classifier_lib.load_split("mnist", "test[:1000]", _data_dir())
  probabilities = judge.probabilities(data.to_unit_range(images).numpy())
  right = np.argmax(probabilities, axis=1) == labels
  bank = []
  for digit in range(10):
    # The digit's most confidently and correctly classified images.
    candidates = np.flatnonzero(right & (labels == digit))
    best = candidates[np.argsort(-probabilities[candidates, digit])[:IMAGES_PER_CLASS]]
    assert np.all(probabilities[best, digit] > 0.95), "judge too weak for this test"
    bank.extend(best)
  sevens = np.flatnonzero(right & (labels == 7))[:IMAGES_PER_CLASS * 10]
  return classifier_dir, judge, images[bank], images[sevens]


def _expected_report(judge, bank, num_samples, seed, threshold):
  """What the command must report: the documented latents, replayed through the bank."""
  latents = np.random.default_rng(seed).standard_normal((num_samples, LATENT_DIM),
                                                        dtype=np.float32)
  chosen = bank[np.argmax(latents[:, :len(bank)], axis=1)]
  report = sample_quality.confidence_report(
      judge.probabilities(data.to_unit_range(chosen).numpy()), threshold)
  return dict(report, seed=seed)


def test_command_reports_on_a_varied_generator(judge_and_banks, tmp_path):
  classifier_dir, judge, bank, _ = judge_and_banks
  export_dir = _export(bank, str(tmp_path / "generator" / "1"))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  result = subprocess.run(
      [sys.executable, "-m", "tfgan_app.sample_quality", f"--saved_model={export_dir}",
       f"--classifier={classifier_dir}", "--num_samples=1000", "--seed=7",
       "--batch_size=300"],  # 300 does not divide 1000: a short last batch.
      cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=HANG_TIMEOUT_S)
  assert result.returncode == 0, result.stderr[-2000:]
  lines = result.stdout.strip().splitlines()
  report = json.loads(lines[-1])
  assert report == _expected_report(judge, bank, 1000, seed=7, threshold=0.9)
  assert report["passes"] is True
  assert report["confident_fraction"] == 1.0
  assert report["num_samples"] == 1000 and report["seed"] == 7 and report["threshold"] == 0.9
  assert any(line.startswith("verdict: PASS") for line in lines)


def test_a_collapsed_generator_fails(judge_and_banks, tmp_path):
  classifier_dir, judge, _, sevens = judge_and_banks
  export_dir = _export(sevens, str(tmp_path / "collapsed" / "1"))
  report = sample_quality.measure_sample_quality(export_dir, classifier_dir, num_samples=200,
                                                 seed=3, classifier=judge)
  assert report == _expected_report(judge, sevens, 200, seed=3, threshold=0.9)
  assert report["class_fractions"][7] > 0.9
  assert report["min_class_fraction"] == 0.0
  assert report["passes"] is False


def test_the_seed_decides_and_the_batch_size_does_not(judge_and_banks, tmp_path):
  classifier_dir, judge, bank, _ = judge_and_banks
  export_dir = _export(bank, str(tmp_path / "generator" / "1"))
  reports = [sample_quality.measure_sample_quality(export_dir, classifier_dir, num_samples=300,
                                                   seed=seed, batch_size=batch_size,
                                                   classifier=judge)
             for seed, batch_size in ((1, 300), (1, 7), (2, 300))]
  assert reports[0] == reports[1]
  assert reports[0]["class_fractions"] != reports[2]["class_fractions"]


def test_image_shape_mismatch_is_refused(judge_and_banks, tmp_path):
  classifier_dir, judge, _, _ = judge_and_banks
  export_dir = _export(np.zeros([4, 32, 32, 1], np.uint8), str(tmp_path / "g32" / "1"))
  with pytest.raises(sample_quality.SampleQualityError, match="32x32x1 images"):
    sample_quality.measure_sample_quality(export_dir, classifier_dir, num_samples=8,
                                          classifier=judge)


def test_missing_export_is_one_line_on_stderr(judge_and_banks, tmp_path):
  classifier_dir, _, _, _ = judge_and_banks
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  result = subprocess.run(
      [sys.executable, "-m", "tfgan_app.sample_quality", f"--saved_model={tmp_path / 'nope'}",
       f"--classifier={classifier_dir}"],
      cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=HANG_TIMEOUT_S)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith(
      "python -m tfgan_app.sample_quality: error: no SavedModel at --saved_model=")
  assert result.stdout == ""


def test_flags_have_defaults_and_help_except_the_two_paths():
  flag_values = flags.FlagValues()
  sample_quality.define_flags(flag_values)
  with pytest.raises(flags.IllegalFlagValueError, match="saved_model"):
    flag_values(["sample_quality"])
  flag_values(["sample_quality", "--saved_model=a", "--classifier=b"])
  assert flag_values.num_samples == 10_000 and flag_values.seed == 0
  assert flag_values.threshold == 0.9
  names = {name for name in flag_values if flag_values[name].name == name}
  assert all(flag_values[name].help.strip() for name in names)
  assert not flags.FLAGS.flags_by_module_dict().get(sample_quality.__name__)


def test_a_point_export_is_sent_to_the_toy_metrics(tmp_path):
  generator = models.build_generator("mlp", 4, (2,), 8, hidden_units=(8,))
  path = export.export_generator(generator, 4, str(tmp_path), "ring8", 1, {}, warmup=False)
  with pytest.raises(sample_quality.SampleQualityError,
                     match="generates points .* python -m tfgan_app.toy_metrics"):
    sample_quality.load_generator(path)
