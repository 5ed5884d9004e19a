"""The domain classifier: it learns, its export round-trips (TF Serving's loader too), bad input.

Trains once per module on 2,000 MNIST examples for 2 epochs (a few seconds; about 89% test
accuracy, far above the 10% of chance).
"""

import json
import os
import subprocess
import sys

from absl import flags
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgan_app import classifier
from tfgan_app import data
from conftest import HANG_TIMEOUT_S, REPO_ROOT, tfds_data_dir

NUM_TEST_IMAGES = 1234  # Not a multiple of the inference batch: covers the last, short batch.


def _data_dir():
  path = tfds_data_dir()
  if not os.path.isdir(os.path.join(path, "mnist")):
    pytest.fail(f"MNIST for TFDS not found under {path}; set TFDS_DATA_DIR")
  return path


def _run_cli(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", "tfgan_app.classifier", *args], cwd=REPO_ROOT,
                        env=env, capture_output=True, text=True, timeout=HANG_TIMEOUT_S)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  out_dir = str(tmp_path_factory.mktemp("classifier") / "mnist")
  return classifier.train_classifier("mnist", _data_dir(), out_dir, epochs=2,
                                     train_examples=2000, seed=1, download=False)


@pytest.fixture(scope="module")
def test_images():
  images, labels = classifier.load_split("mnist", f"test[:{NUM_TEST_IMAGES}]", _data_dir())
  return data.to_unit_range(images).numpy(), labels


def test_training_beats_chance_and_describes_itself(trained):
  assert trained["test_accuracy"] > 0.8
  assert trained["test_examples"] == 10_000
  assert trained["train_examples"] == 2000
  with open(os.path.join(trained["path"], classifier.METADATA_FILE)) as f:
    metadata = json.load(f)
  assert metadata["dataset"] == "mnist"
  assert metadata["image_shape"] == [28, 28, 1]
  assert metadata["num_classes"] == 10
  assert metadata["class_names"] == [str(digit) for digit in range(10)]
  assert metadata["test_accuracy"] == trained["test_accuracy"]


def test_signatures_have_the_promised_names_and_shapes(trained):
  loaded = tf.saved_model.load(trained["path"])
  assert set(loaded.signatures) == {"logits", "features"}
  for name, output, width in (("logits", "logits", 10),
                              ("features", "features", classifier.FEATURE_DIM)):
    function = loaded.signatures[name]
    spec = function.structured_input_signature[1]["images"]
    assert spec.dtype == tf.float32
    assert spec.shape.as_list() == [None, 28, 28, 1]
    assert function.structured_outputs[output].shape.as_list() == [None, width]
    result = function(images=tf.zeros([3, 28, 28, 1]))[output]
    assert result.shape == (3, width)


def test_saved_model_reproduces_the_in_memory_model(trained, test_images):
  images, labels = test_images
  loaded = classifier.load_classifier(trained["path"])
  logits = loaded.logits(images)
  features = loaded.features(images)
  assert logits.shape == (NUM_TEST_IMAGES, 10)
  assert features.shape == (NUM_TEST_IMAGES, classifier.FEATURE_DIM)
  model = trained["model"]
  np.testing.assert_allclose(logits, keras.ops.convert_to_numpy(model(images, training=False)),
                             rtol=1e-5, atol=1e-5)
  expected_features = classifier.feature_model(model)(images, training=False)
  np.testing.assert_allclose(features, keras.ops.convert_to_numpy(expected_features),
                             rtol=1e-5, atol=1e-5)
  # Batching is invisible: one big call and many small ones agree.
  np.testing.assert_allclose(classifier.load_classifier(trained["path"], batch_size=97)
                             .logits(images), logits, rtol=1e-5, atol=1e-5)
  assert np.mean(np.argmax(logits, axis=1) == labels) > 0.8
  probabilities = loaded.probabilities(images)
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-12)
  assert loaded.image_shape == (28, 28, 1)
  assert loaded.num_classes == 10
  assert loaded.feature_dim == classifier.FEATURE_DIM
  assert loaded.metadata["dataset"] == "mnist"


def test_export_works_under_the_tf1_session_loader(trained, test_images):
  # saved_model_cli's and TF Serving's restore path: a module that held the Keras 3 model as
  # an attribute passes tf.saved_model.load but fails here with "Could not find variable"
  # (shared/notes/stack.md §3).
  images, _ = test_images
  expected = classifier.load_classifier(trained["path"]).logits(images[:50])
  with tf.Graph().as_default(), tf.compat.v1.Session() as session:
    meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], trained["path"])
    signature = meta_graph.signature_def["logits"]
    logits = session.run(signature.outputs["logits"].name,
                         {signature.inputs["images"].name: images[:50]})
  np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)


def test_classifier_refuses_uint8_and_wrong_shapes(trained):
  loaded = classifier.load_classifier(trained["path"])
  with pytest.raises(ValueError, match="x / 127.5 - 1"):
    loaded.logits(np.zeros([2, 28, 28, 1], np.uint8))
  with pytest.raises(ValueError, match=r"\[N, 28, 28, 1\]"):
    loaded.features(np.zeros([2, 32, 32, 1], np.float32))
  assert loaded.logits(np.zeros([0, 28, 28, 1], np.float32)).shape == (0, 10)


def test_saving_again_replaces_an_older_export(trained, tmp_path):
  out_dir = str(tmp_path / "again")
  classifier.save_classifier(trained["model"], out_dir, {"version": 1})
  classifier.save_classifier(trained["model"], out_dir, {"version": 2})
  assert classifier.load_classifier(out_dir).metadata == {"version": 2}
  assert sorted(os.listdir(tmp_path)) == ["again"]  # No staging or backup left behind.


def test_out_dir_with_other_files_is_refused_before_training(tmp_path):
  (tmp_path / "notes.txt").write_text("mine")
  with pytest.raises(classifier.ClassifierError, match="notes.txt"):
    classifier.train_classifier("mnist", _data_dir(), str(tmp_path), epochs=1)


@pytest.mark.parametrize("dataset, message", [
    ("no_such_dataset", "unknown dataset 'no_such_dataset'"),
    ("iris", "no 'image' feature"),  # A registered TFDS dataset without images.
    ("celeb_a", "no 'label' feature"),  # Images, but no class label.
])
def test_unusable_datasets_are_refused(dataset, message, tmp_path):
  with pytest.raises(data.DatasetError, match=message):
    classifier.train_classifier(dataset, _data_dir(), str(tmp_path / "out"), epochs=1,
                                download=False)
  assert not (tmp_path / "out").exists()


def test_load_classifier_refuses_a_directory_without_a_model(tmp_path):
  with pytest.raises(classifier.ClassifierError, match="no classifier"):
    classifier.load_classifier(str(tmp_path))


def test_every_flag_has_a_default_and_help():
  flag_values = flags.FlagValues()
  classifier.define_flags(flag_values)
  flag_values(["classifier"])  # Parses with no arguments: every flag has a default.
  names = {name for name in flag_values if flag_values[name].name == name}
  assert {"dataset", "out", "data_dir", "epochs", "train_examples"} <= names
  for name in names:
    assert flag_values[name].help.strip(), name
  # Importing the module defined nothing globally (it would clash with tfgan_app.flags).
  assert not flags.FLAGS.flags_by_module_dict().get(classifier.__name__)


def test_command_rejects_an_unknown_dataset_in_one_line(tmp_path):
  result = _run_cli("--dataset=no_such_dataset", f"--out={tmp_path / 'out'}",
                    f"--data_dir={_data_dir()}")
  assert result.returncode == 1
  last_line = result.stderr.strip().splitlines()[-1]
  assert last_line.startswith("python -m tfgan_app.classifier: error: unknown dataset "
                              "'no_such_dataset'")
  assert result.stdout == ""
  assert not (tmp_path / "out").exists()


def test_command_trains_saves_and_ends_with_a_json_line(tmp_path):
  out_dir = tmp_path / "out"
  result = _run_cli("--dataset=mnist", f"--out={out_dir}", f"--data_dir={_data_dir()}",
                    "--train_examples=512", "--epochs=1", "--download=false")
  assert result.returncode == 0, result.stderr[-2000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert 0.0 <= report["test_accuracy"] <= 1.0
  assert report["train_examples"] == 512
  assert report["path"] == str(out_dir)
  with open(out_dir / classifier.METADATA_FILE) as f:
    assert json.load(f)["test_accuracy"] == report["test_accuracy"]
  assert (out_dir / "saved_model.pb").is_file()
