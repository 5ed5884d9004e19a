"""The evaluate command end to end on a tiny export, the workdir path, the callback, bad input.

The classifier is /work/classifiers/mnist when present; otherwise (CI, or with
TFGAN_APP_TEST_TRAIN_CLASSIFIER=1) a tiny one is trained here on 2,000 examples.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import HANG_TIMEOUT_S, REPO_ROOT, tfds_data_dir, tiny_config
from tfgan_app.evaluation import callback as eval_callback
from tfgan_app.evaluation import evaluator as evaluate
from tfgan_app.exporting import saved_model as export
from tfgan_app.gan import build as gan_build
from tfgan_app.models import registry as models
from tfgan_app.runs import checkpoints
from tfgan_app.runs import workdir as workdir_lib

_SHARED_CLASSIFIER = "/work/classifiers/mnist"
_LATENT_DIM = 8
_NUM_SAMPLES = 200


@pytest.fixture(scope="module")
def data_dir():
  path = tfds_data_dir()
  if not os.path.isdir(os.path.join(path, "mnist")):
    pytest.fail(f"MNIST for TFDS not found under {path}; set TFDS_DATA_DIR")
  return path


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory, data_dir):
  if (os.path.isfile(os.path.join(_SHARED_CLASSIFIER, "saved_model.pb"))
      and not os.environ.get("TFGAN_APP_TEST_TRAIN_CLASSIFIER")):
    return _SHARED_CLASSIFIER
  from tfgan_app.evaluation import classifier  # pylint: disable=import-outside-toplevel
  out = str(tmp_path_factory.mktemp("classifier") / "mnist")
  classifier.train_classifier("mnist", data_dir, out, epochs=1, train_examples=2000,
                              compute_dtype="float32", download=False)
  return out


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
  generator = models.build_generator("dcgan", _LATENT_DIM, (28, 28, 1), filters=8)
  base = str(tmp_path_factory.mktemp("export"))
  return export.export_generator(generator, _LATENT_DIM, base, "tiny", 1,
                                 {"dataset": "mnist", "latent_dim": _LATENT_DIM,
                                  "image_shape": [28, 28, 1], "step": 1}, warmup=False)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("cache"))


def _env(data_dir):
  return dict(os.environ, TFDS_DATA_DIR=data_dir, PYTHONPATH=REPO_ROOT)


def test_command_end_to_end_and_a_bad_export(export_dir, classifier_dir, cache_dir, data_dir,
                                             tmp_path):
  command = [sys.executable, "-m", "tfgan_app.evaluate", f"--saved_model={export_dir}",
             f"--classifier={classifier_dir}", "--metrics=fid,is,kid,precision_recall",
             f"--num_samples={_NUM_SAMPLES}", f"--cache_dir={cache_dir}", "--seed=5"]
  bad = [sys.executable, "-m", "tfgan_app.evaluate", f"--saved_model={tmp_path}/missing",
         f"--classifier={classifier_dir}"]
  # Both at once: most of each run is importing TensorFlow.
  good_run = subprocess.Popen(command, cwd=REPO_ROOT, env=_env(data_dir), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  bad_run = subprocess.Popen(bad, cwd=REPO_ROOT, env=_env(data_dir), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  stdout, stderr = good_run.communicate(timeout=HANG_TIMEOUT_S)
  bad_stdout, bad_stderr = bad_run.communicate(timeout=HANG_TIMEOUT_S)

  assert good_run.returncode == 0, stderr[-2000:]
  lines = stdout.strip().splitlines()
  record = json.loads(lines[-1])
  assert any(line.startswith("FID") for line in lines[:-1])  # The table.
  for key in ("fid", "is", "kid", "precision", "recall"):
    assert np.isfinite(record[key]), key
  assert record["kid_std"] is None  # 200 samples: one KID block, no spread to measure.
  assert record["fid"] > 0 and 1.0 <= record["is"] <= 10.0
  assert record["num_real"] == record["num_generated"] == _NUM_SAMPLES
  assert record["split"] == "test" and record["dataset"] == "mnist" and record["seed"] == 5
  assert record["resize"] == "none" and record["classifier"] == os.path.abspath(classifier_dir)
  assert record["classifier_sha256"] == evaluate.content_sha256(classifier_dir)
  assert os.listdir(os.path.join(cache_dir, "real_stats"))  # Real statistics were cached.

  assert bad_run.returncode == 1 and not bad_stdout
  error_lines = [line for line in bad_stderr.splitlines() if "tfgan_app.evaluate" in line]
  assert len(error_lines) == 1 and "no SavedModel" in error_lines[0], bad_stderr[-2000:]


def test_in_process_matches_command_protocol_and_reuses_the_cache(export_dir, classifier_dir,
                                                                  cache_dir, data_dir):
  generator = evaluate.load_saved_model_generator(export_dir)
  first = evaluate.evaluate(generator, classifier_dir, ("fid", "is"), _NUM_SAMPLES,
                            seed=1, data_dir=data_dir, cache_dir=cache_dir)
  second = evaluate.evaluate(generator, classifier_dir, ("fid", "is"), _NUM_SAMPLES,
                             seed=1, data_dir=data_dir, cache_dir=cache_dir)
  assert second["real_stats_cached"]
  assert first["fid"] == second["fid"] and first["is"] == second["is"]
  assert first["kid"] is None  # Required key, not requested.
  assert "FID" in evaluate.format_table(first)


def _write_workdir(workdir, data_dir, **overrides):
  """A workdir like a training run leaves, without training: flags.cfg, run_spec, ckpt."""
  config = tiny_config(workdir, data_dir, **overrides)
  model = gan_build.build_gan(config, (28, 28, 1))
  model.step.assign(7)
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, workdir_lib.FLAGFILE), "w") as f:
    f.write(config.to_flagfile())
  with open(os.path.join(workdir, workdir_lib.RUN_SPEC), "w") as f:
    json.dump(workdir_lib.run_spec(config, (28, 28, 1)), f)
  checkpoints.make_checkpoint(model).save(
      os.path.join(workdir, workdir_lib.CHECKPOINT_DIR, "ckpt"))
  return model


def test_workdir_generator_is_the_checkpointed_ema_generator(tmp_path, data_dir):
  workdir = str(tmp_path / "run")
  model = _write_workdir(workdir, data_dir, ema_decay=0.999)
  # Make the EMA weights differ from G's, so that the test tells them apart.
  for variable in model.ema_generator.trainable_variables:
    variable.assign(variable * 0.5)
  checkpoints.make_checkpoint(model).save(
      os.path.join(workdir, workdir_lib.CHECKPOINT_DIR, "ckpt"))
  loaded = evaluate.load_workdir_generator(workdir)
  assert loaded.source["step"] == 7 and loaded.dataset == "mnist"
  latents = tf.random.normal([3, loaded.latent_dim], seed=1)
  np.testing.assert_allclose(loaded.generate_fn(latents).numpy(),
                             model.ema_generator(latents, training=False).numpy(), atol=1e-5)


def test_workdir_errors(tmp_path, data_dir):
  with pytest.raises(evaluate.EvaluationError, match="not a training workdir"):
    evaluate.load_workdir_generator(str(tmp_path))
  workdir = str(tmp_path / "run")
  _write_workdir(workdir, data_dir)
  # The run_spec claims another model than the checkpoint holds.
  spec_path = os.path.join(workdir, "run_spec.json")
  with open(spec_path) as f:
    spec = json.load(f)
  spec["g_filters"] = 16
  with open(spec_path, "w") as f:
    json.dump(spec, f)
  with pytest.raises(evaluate.EvaluationError, match="cannot restore checkpoint"):
    evaluate.load_workdir_generator(workdir)


def test_eval_callback_logs_every_n_steps(tmp_path, classifier_dir, cache_dir, data_dir):
  model = gan_build.build_gan(tiny_config(tmp_path, data_dir), (28, 28, 1))
  writer = tf.summary.create_file_writer(str(tmp_path / "train"))
  jsonl = str(tmp_path / evaluate.METRICS_FILE)
  callback = eval_callback.EvalCallback(2, "mnist", (28, 28, 1), classifier=classifier_dir,
                                   metrics=("fid", "kid"), num_samples=100, writer=writer,
                                   metrics_file=jsonl, data_dir=data_dir, cache_dir=cache_dir,
                                   print_fn=None)
  callback.set_model(model)
  callback.on_train_begin()
  for step in (1, 2, 3):
    model.step.assign(step)
    callback.on_train_batch_end(step - 1)
  callback.on_train_end()  # Step 3 was not evaluated yet.
  with open(jsonl) as f:
    records = [json.loads(line) for line in f]
  assert [record["step"] for record in records] == [2, 3]
  assert all(np.isfinite(record["fid"]) and record["is"] is None for record in records)
  assert os.listdir(tmp_path / "train")  # TensorBoard events.
  with pytest.raises(ValueError, match="unknown metric"):
    eval_callback.EvalCallback(2, "mnist", (28, 28, 1), metrics=("fid", "bogus"))


def test_bad_input_gives_clear_errors(classifier_dir, data_dir, cache_dir, tmp_path,
                                      monkeypatch):
  with pytest.raises(evaluate.EvaluationError, match="no SavedModel"):
    evaluate.load_saved_model_generator(str(tmp_path))
  with pytest.raises(evaluate.EvaluationError, match="python -m tfgan_app.classifier"):
    evaluate.load_evaluation_classifier(str(tmp_path / "nowhere"))
  monkeypatch.delenv("TFGAN_APP_MNIST_CLASSIFIER", raising=False)
  with pytest.raises(evaluate.EvaluationError,
                     match="TFGAN_APP_MNIST_CLASSIFIER.*--dataset=mnist --out=DIR"):
    evaluate.default_classifier("mnist", 1)
  with pytest.raises(evaluate.EvaluationError, match="applies to Inception only"):
    evaluate.load_evaluation_classifier(classifier_dir, "clean")
  monkeypatch.setenv("TFGAN_APP_INCEPTION", str(tmp_path / "no_inception_here"))
  with pytest.raises(evaluate.EvaluationError, match="TFHUB_CACHE_DIR"):
    evaluate.load_evaluation_classifier("inception")

  # A generator whose images the 28x28x1 classifier cannot take.
  def wrong_size(latents):
    return tf.zeros([latents.shape[0], 32, 32, 1], tf.uint8)

  generator = evaluate.LoadedGenerator(wrong_size, 4, None, "mnist", {})
  with pytest.raises(evaluate.EvaluationError, match="32x32x1 but the classifier .* 28x28x1"):
    evaluate.evaluate(generator, classifier_dir, num_samples=10, data_dir=data_dir,
                      cache_dir=cache_dir)


def test_training_with_eval_every_writes_metrics_jsonl(tmp_path, classifier_dir, data_dir,
                                                       monkeypatch):
  from tfgan_app.training import loop as train  # pylint: disable=import-outside-toplevel
  monkeypatch.setenv("TFGAN_APP_CACHE_DIR", str(tmp_path / "cache"))
  config = tiny_config(tmp_path / "run", data_dir, train_steps=4, eval_every=2,
                       eval_metrics="fid,kid", eval_num_samples=64,
                       eval_classifier=classifier_dir, export=False)
  train.train_and_export(config)
  with open(tmp_path / "run" / evaluate.METRICS_FILE) as f:
    records = [json.loads(line) for line in f]
  assert [record["step"] for record in records] == [2, 4]
  assert all(record["fid"] > 0 and record["num_generated"] == 64 for record in records)
