"""Measuring class-conditional exports: label accuracy and intra-class FID, in `sample_quality`
and `evaluate`, on stand-ins whose answers are known (a generator that paints class k as band k,
a classifier that reads bands)."""

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from conftest import (HANG_TIMEOUT_S, REPO_ROOT, band_classifier, conditional_standin,
                      numpy_frechet_distance, tfds_data_dir)
from tfgan_app.evaluation import callback as eval_callback
from tfgan_app.evaluation import classifier as classifier_lib
from tfgan_app.evaluation import conditional
from tfgan_app.evaluation import evaluator
from tfgan_app.evaluation import sample_quality
from tfgan_app.data import datasets as data
from tfgan_app.exporting import saved_model as export

LATENT_DIM = 12
NUM_CLASSES = 10


def test_label_accuracy_matches_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(50, 3))
  labels = conditional.sample_labels(50, 3)
  assert labels.tolist()[:5] == [0, 1, 2, 0, 1] and np.bincount(labels).tolist() == [17, 17, 16]
  result = conditional.label_accuracy(logits, labels, 3)
  right = logits.argmax(axis=1) == labels
  assert result["label_accuracy"] == pytest.approx(right.mean())
  assert result["label_accuracy_per_class"] == pytest.approx(
      [right[labels == k].mean() for k in range(3)])
  with pytest.raises(ValueError, match="classifier has 3 classes, the generator 4"):
    conditional.label_accuracy(logits, labels, 4)


def test_intra_class_fid_is_each_class_against_its_own_real_images():
  rng = np.random.default_rng(1)
  real_labels = rng.integers(0, 3, 300)
  real = rng.normal(size=(300, 4)) + real_labels[:, None]
  generated_labels = conditional.sample_labels(150, 3)
  generated = rng.normal(size=(150, 4)) * 1.5 + generated_labels[:, None]
  result = conditional.intra_class_fid(real, real_labels, generated, generated_labels, 3)
  expected = [numpy_frechet_distance(real[real_labels == k], generated[generated_labels == k])
              for k in range(3)]
  np.testing.assert_allclose(result["intra_class_fid"], expected, rtol=1e-6)
  assert result["intra_class_fid_mean"] == pytest.approx(np.mean(expected), rel=1e-6)
  assert result["intra_class_fid_worst"] == max(result["intra_class_fid"])
  assert result["intra_class_fid_worst_class"] == int(np.argmax(expected))
  with pytest.raises(ValueError, match="class 2 has 0 real"):
    conditional.intra_class_fid(real[real_labels < 2], real_labels[real_labels < 2], generated,
                                generated_labels, 3)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
  """(band classifier dir, export of a label-following generator, of a label-ignoring one)."""
  base = tmp_path_factory.mktemp("conditional")
  judge = band_classifier(str(base / "judge"))
  paths = []
  for follow in (True, False):
    generator = conditional_standin(LATENT_DIM, (28, 28, 1), NUM_CLASSES, bands=True,
                                    follow_labels=follow)
    paths.append(export.export_generator(
        generator, LATENT_DIM, str(base / f"follow_{follow}"), "cgan", 1,
        {"dataset": "mnist", "latent_dim": LATENT_DIM, "image_shape": [28, 28, 1]},
        warmup=False))
  return judge, paths[0], paths[1]


def test_sample_quality_label_accuracy(exports):
  judge, follows, ignores = exports
  report = sample_quality.measure_sample_quality(follows, judge, num_samples=500, seed=3,
                                                 batch_size=64)
  assert report["label_accuracy"] == 1.0 and report["num_classes"] == NUM_CLASSES
  assert report["label_accuracy_per_class"] == [1.0] * NUM_CLASSES
  assert report["class_fractions"] == [0.1] * NUM_CLASSES  # 50 asked for each class.
  # A generator that ignores its labels is read as the class it paints: argmax(z[:10]).
  report = sample_quality.measure_sample_quality(ignores, judge, num_samples=500, seed=3)
  latents = np.random.default_rng(3).standard_normal((500, LATENT_DIM), dtype=np.float32)
  right = np.argmax(latents[:, :NUM_CLASSES], axis=1) == np.arange(500) % NUM_CLASSES
  assert report["label_accuracy"] == pytest.approx(right.mean())
  assert 0.03 < report["label_accuracy"] < 0.2  # About 1 / num_classes.
  assert report["label_accuracy_per_class"] == pytest.approx(
      [right[k::NUM_CLASSES].mean() for k in range(NUM_CLASSES)])
  summary = sample_quality.format_summary(report)
  assert f"label accuracy: {right.mean():.2%}" in summary


def test_sample_quality_command_prints_and_records_label_accuracy(exports):
  judge, follows, _ = exports
  result = subprocess.run(
      [sys.executable, "-m", "tfgan_app.sample_quality", f"--saved_model={follows}",
       f"--classifier={judge}", "--num_samples=100"], cwd=REPO_ROOT,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), capture_output=True, text=True,
      timeout=HANG_TIMEOUT_S)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "label accuracy: 100.00%" in result.stdout
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report["label_accuracy"] == 1.0 and len(report["label_accuracy_per_class"]) == 10


def test_evaluate_reports_label_accuracy_and_intra_class_fid(exports, tmp_path):
  judge, follows, _ = exports
  data_dir = tfds_data_dir()
  generator = evaluator.load_saved_model_generator(follows)
  assert generator.num_classes == NUM_CLASSES
  record = evaluator.evaluate(generator, judge, ("fid",), 200, seed=2, data_dir=data_dir,
                              cache_dir=str(tmp_path))
  assert record["label_accuracy"] == 1.0 and record["num_classes"] == NUM_CLASSES
  assert record["class_names"] == [str(k) for k in range(NUM_CLASSES)]  # The default names.
  # The numbers from scratch: the classifier's features of the first 200 test images, by label.
  images, labels = classifier_lib.load_split("mnist", "test[:200]", data_dir)
  reader = classifier_lib.load_classifier(judge)
  real = reader.features(data.to_unit_range(images).numpy())
  latents = np.random.default_rng(2).standard_normal((200, LATENT_DIM), dtype=np.float32)
  asked = conditional.sample_labels(200, NUM_CLASSES)
  fake = reader.features(data.to_unit_range(generator.generate_fn(latents, asked)).numpy())
  expected = [numpy_frechet_distance(real[labels == k], fake[asked == k])
              for k in range(NUM_CLASSES)]
  np.testing.assert_allclose(record["intra_class_fid"], expected, rtol=1e-4, atol=1e-6)
  assert record["intra_class_fid_mean"] == pytest.approx(np.mean(expected), rel=1e-4)
  assert record["intra_class_fid_worst_class"] == int(np.argmax(expected))
  assert record["fid"] == pytest.approx(numpy_frechet_distance(real, fake), rel=1e-4)
  table = evaluator.format_table(record)
  assert "label accuracy" in table and "intra-class FID worst" in table
  # Cached real statistics, the same labels: the same numbers.
  again = evaluator.evaluate(generator, judge, ("fid",), 200, seed=2, data_dir=data_dir,
                             cache_dir=str(tmp_path))
  assert again["real_stats_cached"] and again["intra_class_fid"] == record["intra_class_fid"]


def test_training_callback_reports_label_accuracy_of_a_conditional_model(exports, tmp_path):
  judge, _, _ = exports
  model = types.SimpleNamespace(
      sampling_generator=conditional_standin(LATENT_DIM, (28, 28, 1), NUM_CLASSES, bands=True),
      latent_dim=LATENT_DIM, step=tf.Variable(4, dtype=tf.int64))
  lines = []
  callback = eval_callback.EvalCallback(2, "mnist", (28, 28, 1), classifier=judge,
                                        metrics=("fid",), num_samples=100,
                                        data_dir=tfds_data_dir(), cache_dir=str(tmp_path),
                                        print_fn=lines.append)
  callback.set_model(model)
  record = callback.evaluate_now()
  assert record["label_accuracy"] == 1.0 and record["intra_class_fid"] is None
  assert "label_accuracy 1" in lines[0]
