"""Reference statistics files: written by the command, read back, equal to direct evaluation,
refused when made with another classifier, resize method or image size."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import HANG_TIMEOUT_S, REPO_ROOT, tfds_data_dir
from inception_test import _LATENT_DIM, mnist_export, save_stand_in, stand_in  # pylint: disable=unused-import
from tfgan_app.evaluation import evaluator
from tfgan_app.evaluation import reference

_NUM_SAMPLES = 30


def _command(*args):
  return subprocess.Popen([sys.executable, "-m", "tfgan_app.evaluate", *args], cwd=REPO_ROOT,
                          env=dict(os.environ, TFDS_DATA_DIR=tfds_data_dir(),
                                   PYTHONPATH=REPO_ROOT),
                          text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_command_writes_a_reference_and_refuses_a_mismatched_one(stand_in, mnist_export,
                                                                 tmp_path):
  path = str(tmp_path / "mnist-test.npz")
  writer = _command(f"--write_reference={path}", "--dataset=mnist", f"--classifier={stand_in}",
                    "--resize_method=tf_bilinear", f"--num_samples={_NUM_SAMPLES}",
                    "--cache_dir=")
  stdout, stderr = writer.communicate(timeout=HANG_TIMEOUT_S)
  assert writer.returncode == 0, stderr[-2000:]
  header = json.loads(stdout.strip().splitlines()[-1])
  assert header["path"] == path and header["num_images"] == _NUM_SAMPLES

  with np.load(path) as stored:
    stored_header = json.loads(str(stored["header"]))
    features = stored["features"]
    mean, covariance = stored["mean"], stored["covariance"]
  for key, value in (("dataset", "mnist"), ("split", "test"), ("resize_method", "tf_bilinear"),
                     ("image_shape", [28, 28, 1]), ("num_images", _NUM_SAMPLES),
                     ("feature_dim", 16), ("format", reference.REFERENCE_FORMAT)):
    assert stored_header[key] == value, key
  assert stored_header["classifier_sha256"] == evaluator.load_evaluation_classifier(
      stand_in).sha256
  assert features.shape == (_NUM_SAMPLES, 16) and features.dtype == np.float32
  np.testing.assert_allclose(mean, features.astype(np.float64).mean(0), rtol=1e-12)
  np.testing.assert_allclose(covariance, np.cov(features.astype(np.float64), rowvar=False),
                             rtol=1e-12)

  # Read with the default resize method (clean): refused in one line.
  reader = _command(f"--saved_model={mnist_export}", f"--classifier={stand_in}",
                    f"--reference={path}", f"--num_samples={_NUM_SAMPLES}")
  stdout, stderr = reader.communicate(timeout=HANG_TIMEOUT_S)
  assert reader.returncode == 1 and not stdout
  errors = [line for line in stderr.splitlines() if "tfgan_app.evaluate: error" in line]
  assert len(errors) == 1 and "--resize_method tf_bilinear" in errors[0], stderr[-2000:]


@pytest.mark.parametrize("resize_method", ["clean", "tf_bilinear"])
def test_fid_with_a_reference_equals_fid_computed_directly(resize_method, stand_in,
                                                           mnist_export, tmp_path):
  path = str(tmp_path / "reference.npz")
  written = evaluator.write_reference(path, "mnist", stand_in, resize_method,
                                      num_samples=_NUM_SAMPLES, data_dir=tfds_data_dir(),
                                      cache_dir="")
  assert written["resize_method"] == resize_method
  generator = evaluator.load_saved_model_generator(mnist_export)
  metrics = ("fid", "kid", "is", "precision_recall")
  direct = evaluator.evaluate(generator, stand_in, metrics, _NUM_SAMPLES, seed=2,
                              data_dir=tfds_data_dir(), cache_dir="",
                              resize_method=resize_method)
  from_file = evaluator.evaluate(generator, stand_in, metrics, _NUM_SAMPLES, seed=2,
                                 data_dir=tfds_data_dir(), cache_dir="",
                                 resize_method=resize_method, reference=path)
  for key in ("fid", "kid", "is", "precision", "recall"):
    assert from_file[key] == direct[key], key
  assert from_file["reference"]["path"] == path and direct["reference"] is None
  assert from_file["num_real"] == direct["num_real"] == _NUM_SAMPLES
  assert from_file["resize"] == direct["resize"]
  table = evaluator.format_table(dict(from_file, source={}))
  assert "reference" in table and path in table and resize_method in table


def test_mismatched_references_are_refused(stand_in, mnist_export, tmp_path):
  path = str(tmp_path / "reference.npz")
  evaluator.write_reference(path, "mnist", stand_in, "clean", num_samples=_NUM_SAMPLES,
                            data_dir=tfds_data_dir(), cache_dir="")
  generator = evaluator.load_saved_model_generator(mnist_export)
  other = save_stand_in(str(tmp_path / "other.keras"), seed=1)
  with pytest.raises(evaluator.EvaluationError, match=r"classifier \(sha256\)"):
    evaluator.evaluate(generator, other, ("fid",), _NUM_SAMPLES, reference=path)
  with pytest.raises(evaluator.EvaluationError, match="--resize_method clean"):
    evaluator.evaluate(generator, stand_in, ("fid",), _NUM_SAMPLES, reference=path,
                       resize_method="tf_bilinear")
  bigger = str(tmp_path / "bigger.npz")
  evaluator.write_reference(bigger, "mnist", stand_in, "clean", image_size=32,
                            num_samples=_NUM_SAMPLES, data_dir=tfds_data_dir(), cache_dir="")
  with pytest.raises(evaluator.EvaluationError, match=r"image size \[32, 32, 1\]"):
    evaluator.evaluate(generator, stand_in, ("fid",), _NUM_SAMPLES, reference=bigger)
  (tmp_path / "junk.npz").write_bytes(b"not a reference")
  with pytest.raises(evaluator.EvaluationError, match="not a reference file"):
    evaluator.evaluate(generator, stand_in, ("fid",), _NUM_SAMPLES,
                       reference=str(tmp_path / "junk.npz"))
  with pytest.raises(evaluator.EvaluationError, match="no such file"):
    evaluator.evaluate(generator, stand_in, ("fid",), _NUM_SAMPLES,
                       reference=str(tmp_path / "missing.npz"))
