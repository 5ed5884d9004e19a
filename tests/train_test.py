"""The training entry point: files it writes, exact resume, finished runs, bad input."""

import json
import os
import re
import shutil
import subprocess
import sys

import keras
import numpy as np
from absl import flags
import pytest
import tensorflow as tf

from tfgan_app import toy_metrics as toy_metrics_command
from tfgan_app import train as train_command
from tfgan_app.common import cli
from tfgan_app.common import config as config_lib
from tfgan_app.exporting import saved_model as export
from tfgan_app.runs import restore
from tfgan_app.runs import workdir as workdir_lib
from tfgan_app.training import flags as app_flags
from tfgan_app.training import loop as train
from conftest import (HANG_TIMEOUT_S, REPO_ROOT, checkpoint_values,
                      resume_with_field_left_out, tfds_data_dir, tiny_config)


def _checkpoint_values(workdir):
  return checkpoint_values(tf.train.latest_checkpoint(os.path.join(workdir,
                                                                   workdir_lib.CHECKPOINT_DIR)))


def _run_cli(*args, env_extra=None):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env_extra or {}))
  return subprocess.run([sys.executable, "-m", "tfgan_app.train", *args], cwd=REPO_ROOT,
                        env=env, capture_output=True, text=True, timeout=HANG_TIMEOUT_S)


def _tiny_flags(workdir, data_dir, *extra):
  config = tiny_config(workdir, data_dir)
  flagfile = f"{workdir}.cfg"
  with open(flagfile, "w") as f:
    f.write(config.to_flagfile())
  return [f"--flagfile={flagfile}", *extra]


def test_entry_point_writes_every_promised_file(tmp_path, data_dir):
  workdir = tmp_path / "run"
  result = _run_cli(*_tiny_flags(workdir, data_dir))
  assert result.returncode == 0, result.stderr[-2000:]
  files = {os.path.relpath(os.path.join(root, name), workdir)
           for root, _, names in os.walk(workdir) for name in names}
  assert "flags.cfg" in files and "run_spec.json" in files
  assert any(name.startswith("train/events.out.tfevents") for name in files)
  assert {"samples/step_0000002.png", "samples/step_0000004.png"} <= files
  assert {"checkpoints/checkpoint", "checkpoints/ckpt-4.index"} <= files
  assert "export/tiny/4/saved_model.pb" in files
  assert "export/tiny/4/assets.extra/tfgan_app_metadata.json" in files
  assert not any("/.tmp-" in name for name in files)  # No staging left behind.
  # The resolved flagfile reproduces the run's configuration.
  flags_text = (workdir / "flags.cfg").read_text()
  assert "--train_steps=4" in flags_text and "--image_size=28" not in flags_text
  assert "--latent_dim=8" in flags_text and "--deterministic" in flags_text
  # TensorBoard holds the promised scalars and sample images.
  tags = set()
  for event_file in (workdir / "train").iterdir():
    for event in tf.compat.v1.train.summary_iterator(str(event_file)):
      tags.update(value.tag for value in event.summary.value)
  assert {"d_loss", "g_loss", "d_real", "d_fake", "jsd", "images_per_sec", "samples"} <= tags
  png = tf.io.decode_png(tf.io.read_file(str(workdir / "samples/step_0000004.png")))
  assert png.shape[-1] == 1 and png.shape[0] == 2 * 28 + 1


@pytest.mark.parametrize("overrides", [
    {},
    # Dropout in D (its random state must be checkpointed) and the simultaneous update.
    {"architecture": "tf_tutorial", "kernel_size": 5, "update": "simultaneous"},
], ids=["dcgan", "tf_tutorial_simultaneous"])
def test_resume_reaches_the_weights_of_an_uninterrupted_run(tmp_path, data_dir, overrides):
  straight = tiny_config(tmp_path / "straight", data_dir, train_steps=6, checkpoint_every=3,
                         export=False, **overrides)
  train.train_and_export(straight)
  interrupted = straight.with_updates(workdir=str(tmp_path / "resumed"), train_steps=3)
  assert train.train_and_export(interrupted).step == 3
  result = train.train_and_export(interrupted.with_updates(train_steps=6))
  assert result.step == 6 and not result.finished_before
  result_dir = str(tmp_path / "resumed")
  expected, got = _checkpoint_values(straight.workdir), _checkpoint_values(result_dir)
  assert set(expected) == set(got)
  # Generator, discriminator, both optimizers' slots and iteration counts, step and seed.
  assert any("g_optimizer" in name for name in got) and any("d_optimizer" in name for name in got)
  for name in expected:
    np.testing.assert_array_equal(got[name], expected[name], err_msg=f"{name} in {result_dir}")


def test_finished_run_says_so_and_exits(tmp_path, data_dir, capsys):
  config = tiny_config(tmp_path / "run", data_dir, train_steps=2, checkpoint_every=2)
  train.train_and_export(config)
  before = _checkpoint_values(config.workdir)
  result = train.train_and_export(config)
  assert result.finished_before and result.step == 2
  assert "already finished at step 2" in capsys.readouterr().out
  after = _checkpoint_values(config.workdir)
  assert all(np.array_equal(before[name], after[name]) for name in before)


def _snapshot(directory):
  return {os.path.join(root, name): os.path.getmtime(os.path.join(root, name))
          for root, _, names in os.walk(directory) for name in names}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  """One finished tiny run shared by the bad-input cases, which must leave it untouched."""
  workdir = tmp_path_factory.mktemp("bad_input") / "run"
  train.train_and_export(tiny_config(workdir, tfds_data_dir(), train_steps=2,
                                     checkpoint_every=2))
  return workdir


# The real entry point in a child process: exit status, one stderr line, nothing changed.
@pytest.mark.parametrize("extra,message", [
    (["--no_such_flag=1"], "Unknown command line flag 'no_such_flag'"),
    (["--latent_dim=16"], "holds a checkpoint of a different model (latent_dim: checkpoint 8"),
])
def test_bad_input_fails_in_one_line_and_changes_nothing(finished_run, data_dir, extra, message):
  workdir = finished_run
  before = _snapshot(workdir)
  result = _run_cli(*_tiny_flags(workdir, data_dir, *extra))
  assert result.returncode != 0
  # TensorFlow's native start-up notices (CUDA probing) may precede it; ours is one line.
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  error_lines = [line for line in result.stderr.splitlines()
                 if line.startswith("python -m tfgan_app.train: error:")]
  assert len(error_lines) == 1, result.stderr[-3000:]
  assert message in error_lines[0]
  assert _snapshot(workdir) == before


def _run_in_process(argv, capsys):
  """What `python -m tfgan_app.train ARGV` does, in this process (no TensorFlow start-up per
  case): the entry point's flags parser, then `train_command.main`. Returns (exit status, stderr)."""
  capsys.readouterr()
  flags.FLAGS.unparse_flags()
  try:
    train_command.main(app_flags.flags_parser("python -m tfgan_app.train")(["train", *argv]))
    status = 0
  except SystemExit as exit_:
    status = exit_.code
  finally:
    flags.FLAGS.unparse_flags()
  return status, capsys.readouterr().err


@pytest.mark.parametrize("extra,message", [
    (["--dataset=no_such_dataset"], "unknown dataset 'no_such_dataset'"),
    (["--dataset=imdb_reviews"], "has no 'image' feature"),
    (["--batch_size=0"], "--batch_size=0: must be a positive number"),
    (["--image_size=-28"], "--image_size=-28: must be a positive number of pixels"),
    (["--latent_dim=-1"], "--latent_dim=-1: must be a positive number"),
    (["--loss=relativistic"], "--loss=relativistic: value should be one of "
                              "<non_saturating|minimax|wasserstein|hinge|least_squares>"),
    (["--loss=hinge", "--label_smoothing=0.1"], "--loss=hinge has none"),
    (["--gradient_penalty=-1"], "--gradient_penalty=-1: -1.0 is not a non-negative number"),
    (["--diffaugment=color,flip"], "expected a comma-separated subset of "
                                   "color,translation,cutout"),
    (["--image_size=30"], "image_size 30 is not base * 2**n"),
    (["--g_filters=16"], "holds a checkpoint of a different model (g_filters: checkpoint 8"),
    (["--minibatch_discrimination"], "holds a checkpoint of a different model "
     "(minibatch_discrimination: checkpoint False, flags True)"),
    (["--minibatch_kernels=0"], "--minibatch_kernels=0: must be a positive number"),
    (["--spectral_norm"], "holds a checkpoint of a different model "
     "(spectral_norm: checkpoint False, flags True)"),
    (["--architecture=gmm", "--spectral_norm"], "--architecture=gmm has none"),
    (["--g_objective=mean"], "--g_objective=mean: value should be one of "
     "<standard|feature_matching>"),
    (["--architecture=gmm"], "holds a checkpoint of a different model (architecture: "
     "checkpoint 'dcgan', flags 'gmm'"),
    (["--architecture=gmm", "--strategy=mirrored"], "--architecture=gmm fits on one device"),
    (["--gmm_components=0"], "--gmm_components=0: must be a positive number"),
    (["--steps_per_execution=3"], "--train_steps=4 is not a multiple of --steps_per_execution=3"),
    (["--steps_per_execution=2", "--log_every=3"],
     "--log_every=3 is not a multiple of --steps_per_execution=2"),
    (["--update=simultaneous", "--d_steps=2"], "--update=simultaneous needs --d_steps=1"),
    (["--update=sometimes"], "--update=sometimes: value should be one of"),
    (["--intra_op_threads=-1"], "--intra_op_threads=-1: must be >= 0"),
    (["--architecture=tf_tutorial", "--image_size=32"], "makes 28x28 images, got 32x32"),
])
def test_bad_input_fails_in_one_line_and_changes_nothing_in_process(finished_run, data_dir, extra,
                                                                    message, capsys):
  workdir = finished_run
  before = _snapshot(workdir)
  status, stderr = _run_in_process(_tiny_flags(workdir, data_dir, *extra), capsys)
  assert status in (1, 2)
  error_lines = [line for line in stderr.splitlines()
                 if line.startswith("python -m tfgan_app.train: error:")]
  assert len(error_lines) == 1, stderr[-3000:]
  assert message in error_lines[0]
  assert _snapshot(workdir) == before


def test_a_copied_workdir_resumes_in_place_through_its_own_flags_cfg(tmp_path, data_dir,
                                                                     capsys):
  original = tmp_path / "original"
  train.train_and_export(tiny_config(original, data_dir, train_steps=2, checkpoint_every=2))
  copy = tmp_path / "copy"
  shutil.copytree(original, copy)
  before = _snapshot(original)
  # flags.cfg names the original workdir; read from the copy it stands for the copy.
  assert f"--workdir={original}" in (copy / "flags.cfg").read_text()
  status, stderr = _run_in_process([f"--flagfile={copy / 'flags.cfg'}", "--train_steps=4"],
                                   capsys)
  assert status == 0, stderr[-3000:]
  assert _snapshot(original) == before
  assert tf.train.latest_checkpoint(str(copy / "checkpoints")).endswith("ckpt-4")
  assert (copy / "export" / "tiny" / "4" / "saved_model.pb").exists()
  assert f"--workdir={copy}\n" in (copy / "flags.cfg").read_text()


def test_workdir_follows_only_a_runs_own_flags_cfg(tmp_path):
  run = tmp_path / "run"
  run.mkdir()
  (run / "flags.cfg").write_text("--workdir=/elsewhere\n")
  (run / "run_spec.json").write_text("{}")
  (tmp_path / "flags.cfg").write_text("--workdir=/elsewhere\n")  # No run_spec.json beside it.
  pin = app_flags.workdir_follows_run_flagfile
  assert pin(["train", f"--flagfile={run}/flags.cfg", "--seed=1"]) == [
      "train", f"--flagfile={run}/flags.cfg", f"--workdir={run}", "--seed=1"]
  assert pin(["train", "--flagfile", f"{run}/flags.cfg"]) == [
      "train", "--flagfile", f"{run}/flags.cfg", f"--workdir={run}"]
  # A --workdir after it still wins (absl: the last value does).
  assert pin(["train", f"--flagfile={run}/flags.cfg", "--workdir=other"])[-1] == "--workdir=other"
  for argv in (["train", f"--flagfile={tmp_path}/flags.cfg"],
               ["train", "--flagfile=configs/dcgan.cfg"],
               ["train", "--", f"--flagfile={run}/flags.cfg"]):
    assert pin(argv) == argv
  assert (app_flags.RUN_FLAGFILE, app_flags.RUN_SPEC) == (workdir_lib.FLAGFILE,
                                                          workdir_lib.RUN_SPEC)


def test_export_is_written_and_metadata_describes_it(tmp_path, data_dir):
  config = tiny_config(tmp_path / "run", data_dir, train_steps=2, checkpoint_every=2)
  result = train.train_and_export(config)
  assert result.export_path == os.path.join(config.workdir, "export", "tiny", "2")
  metadata = export.read_metadata(result.export_path)
  assert metadata["latent_dim"] == 8 and metadata["image_shape"] == [28, 28, 1]
  assert metadata["step"] == 2 and metadata["flags"]["seed"] == 3
  assert json.loads(json.dumps(metadata)) == metadata


def test_minibatch_discrimination_run_records_its_sizes_and_restores(tmp_path, data_dir):
  config = tiny_config(tmp_path / "run", data_dir, train_steps=2, checkpoint_every=2,
                       minibatch_discrimination=True, minibatch_kernels=4,
                       minibatch_kernel_dim=3, g_objective="feature_matching")
  assert train.train_and_export(config).step == 2
  spec = json.loads((tmp_path / "run" / "run_spec.json").read_text())
  assert (spec["minibatch_discrimination"], spec["minibatch_kernels"],
          spec["minibatch_kernel_dim"]) == (True, 4, 3)
  with pytest.raises(workdir_lib.ConfigError, match="minibatch_kernels: checkpoint 4, flags 8"):
    train.train_and_export(config.with_updates(minibatch_kernels=8, train_steps=3))
  # Export and evaluation rebuild the run from its workdir alone, layer included.
  model, restored, _, _ = restore.restore_run(str(tmp_path / "run"))
  assert restored.minibatch_kernels == 4 and model.discriminator.minibatch.num_kernels == 4
  assert any("minibatch" in v.path for v in model.discriminator.variables)


def test_runs_from_before_minibatch_discrimination_still_resume(tmp_path, data_dir):
  resume_with_field_left_out(tiny_config(tmp_path / "run", data_dir), "minibatch_discrimination")


def _gmm_config(workdir, data_dir, **overrides):
  return tiny_config(workdir, data_dir, architecture="gmm", gmm_components=3,
                     model_name="gmm", **overrides)


def test_gmm_entry_point_writes_the_workdir_and_a_servable_export(tmp_path, data_dir):
  workdir = tmp_path / "gmm"
  config = _gmm_config(workdir, data_dir)
  flagfile = tmp_path / "gmm.cfg"
  flagfile.write_text(config.to_flagfile())
  result = _run_cli(f"--flagfile={flagfile}")
  assert result.returncode == 0, result.stderr[-2000:]
  assert "step 4/4 nll=" in result.stdout and "test_bits_per_dim=" in result.stdout
  files = {os.path.relpath(os.path.join(root, name), workdir)
           for root, _, names in os.walk(workdir) for name in names}
  assert {"flags.cfg", "run_spec.json", "samples/step_0000002.png", "samples/step_0000004.png",
          "checkpoints/ckpt-4.index", "export/gmm/4/saved_model.pb"} <= files
  spec = json.loads((workdir / "run_spec.json").read_text())
  assert spec.pop("precision")["requested"] == "float32"  # What the run computed in, and why.
  assert spec == {"architecture": "gmm", "dataset": "mnist", "image_shape": [28, 28, 1],
                  "latent_dim": 785, "gmm_components": 3}
  assert "--latent_dim=785" in (workdir / "flags.cfg").read_text()
  tags = set()
  for event_file in (workdir / "train").iterdir():
    for event in tf.compat.v1.train.summary_iterator(str(event_file)):
      tags.update(value.tag for value in event.summary.value)
  assert {"nll", "bits_per_dim", "test_nll", "test_bits_per_dim", "samples"} <= tags
  # The export answers the generator signatures: latents [N, 785] -> uint8 images.
  path = str(workdir / "export" / "gmm" / "4")
  assert export.read_metadata(path)["latent_dim"] == 785
  loaded = tf.saved_model.load(path)
  latents = tf.random.stateless_normal([3, 785], seed=[1, 2])
  images = loaded.signatures[export.SERVING_SIGNATURE](**{export.LATENTS: latents})
  assert images[export.IMAGES].dtype == tf.uint8
  assert images[export.IMAGES].shape == (3, 28, 28, 1)
  sampled = loaded.signatures[export.SAMPLE_SIGNATURE](
      **{export.NUM_SAMPLES: tf.constant(2), export.SEED: tf.constant(5, tf.int64)})
  assert sampled[export.PNG_BYTES].shape == (2,)
  # The workdir's checkpoint gives the same images as the export (restore_run rebuilds it).
  model, restored_config, _, _ = restore.restore_run(str(workdir))
  assert restored_config.gmm_components == 3 and int(model.step.numpy()) == 4
  np.testing.assert_array_equal(
      export.to_uint8(model.sampling_generator(latents)).numpy(),
      images[export.IMAGES].numpy())


def test_gmm_resume_reaches_the_parameters_of_an_uninterrupted_run(tmp_path, data_dir):
  straight = _gmm_config(tmp_path / "straight", data_dir, train_steps=4, export=False)
  train.train_and_export(straight)
  interrupted = straight.with_updates(workdir=str(tmp_path / "resumed"), train_steps=2)
  train.train_and_export(interrupted)
  assert train.train_and_export(interrupted.with_updates(train_steps=4)).step == 4
  expected, got = _checkpoint_values(straight.workdir), _checkpoint_values(interrupted.workdir)
  assert set(expected) == set(got) and any("gmm" in name for name in got)
  for name in expected:
    np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


# --- Toy distributions through the real entry point.


def _toy_flags(workdir, *extra):
  return [f"--workdir={workdir}", "--dataset=ring8", "--architecture=mlp", "--model_name=ring8",
          "--g_units=32,32", "--d_units=32,32", "--latent_dim=4", "--batch_size=64",
          "--train_steps=6", "--log_every=3", "--sample_every=3", "--checkpoint_every=3",
          "--seed=1", *extra]


def test_ring8_run_writes_toy_metrics_plots_and_a_samples_export(tmp_path, capsys):
  workdir = tmp_path / "ring8"
  result = _run_cli(*_toy_flags(workdir))
  assert result.returncode == 0, result.stderr[-2000:]
  files = {os.path.relpath(os.path.join(root, name), workdir)
           for root, _, names in os.walk(workdir) for name in names}
  assert {"samples/step_0000003.png", "samples/step_0000006.png", "metrics.jsonl",
          "export/ring8/6/saved_model.pb"} <= files
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [record["step"] for record in records] == [3, 6]
  assert {"modes_covered", "num_modes", "high_quality_fraction", "kl"} <= set(records[0])
  tags = set()
  for event_file in (workdir / "train").iterdir():
    for event in tf.compat.v1.train.summary_iterator(str(event_file)):
      tags.update(value.tag for value in event.summary.value)
  assert {"toy/modes_covered", "toy/high_quality_fraction", "toy/kl", "decision_surface",
          "d_loss", "jsd"} <= tags
  assert "samples" not in tags  # No image grid for points.
  picture = tf.io.decode_png(tf.io.read_file(str(workdir / "samples/step_0000006.png")))
  assert picture.shape[-1] == 3 and picture.shape[0] > 300
  # The export: serving_default maps latents to float32 samples [N, 2].
  path = str(workdir / "export/ring8/6")
  serve = tf.saved_model.load(path).signatures[export.SERVING_SIGNATURE]
  assert serve.structured_input_signature[1][export.LATENTS].shape.as_list() == [None, 4]
  assert serve.structured_outputs[export.SAMPLES].dtype == tf.float32
  samples = serve(**{export.LATENTS: tf.zeros([5, 4])})
  assert list(samples) == [export.SAMPLES] and samples[export.SAMPLES].shape == (5, 2)
  metadata = export.read_metadata(path)
  assert metadata["dataset"] == "ring8" and metadata["sample_shape"] == [2]
  # The toy metrics command (in process: main returns its exit status) measures it; its last
  # line is JSON.
  assert toy_metrics_command.main(["toy_metrics", f"--saved_model={path}", "--num_samples=1000"]) == 0
  record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert record["dataset"] == "ring8" and record["num_samples"] == 1000
  assert 0 <= record["modes_covered"] <= 8 and 0.0 <= record["high_quality_fraction"] <= 1.0


def test_toy_resume_with_dropout_reaches_the_uninterrupted_weights(tmp_path):
  values = dict(dataset="ring8", architecture="mlp", g_units="16,16", d_units="16,16",
                d_dropout=0.5, latent_dim=4, batch_size=32, d_steps=2, log_every=2,
                sample_every=100, checkpoint_every=3, seed=4, deterministic=True,
                export=False, model_name="toy")
  straight = config_lib.TrainConfig(workdir=str(tmp_path / "straight"), train_steps=6, **values)
  train.train_and_export(straight)
  interrupted = straight.with_updates(workdir=str(tmp_path / "resumed"), train_steps=3)
  train.train_and_export(interrupted)
  train.train_and_export(interrupted.with_updates(train_steps=6))
  expected = _checkpoint_values(straight.workdir)
  got = _checkpoint_values(str(tmp_path / "resumed"))
  assert set(expected) == set(got)
  assert any(name.startswith("discriminator_random/") for name in got)  # Dropout's RNG.
  for name in expected:
    np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


def test_steps_per_execution_trains_the_same_steps_and_saves_at_the_same_steps(tmp_path,
                                                                               data_dir):
  one = tiny_config(tmp_path / "one", data_dir, train_steps=4, checkpoint_every=2, export=False)
  train.train_and_export(one)
  two = one.with_updates(workdir=str(tmp_path / "two"), steps_per_execution=2)
  result = train.train_and_export(two)
  assert result.step == 4
  assert sorted(os.listdir(os.path.join(two.workdir, "samples"))) == [
      "step_0000002.png", "step_0000004.png"]
  index = tf.train.get_checkpoint_state(os.path.join(two.workdir, workdir_lib.CHECKPOINT_DIR))
  assert [os.path.basename(p) for p in index.all_model_checkpoint_paths] == ["ckpt-2", "ckpt-4"]
  expected, got = _checkpoint_values(one.workdir), _checkpoint_values(two.workdir)
  for name in expected:
    np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


@pytest.mark.parametrize("extra,message", [
    (["--image_size=28"], "--image_size=28 applies to image datasets; 'ring8' is a toy"),
    (["--g_units=32,0"], "--g_units=32,0: '32,0' is not a comma-separated list of positive"),
])
def test_toy_bad_input_fails_in_one_line(tmp_path, extra, message, capsys):
  status, stderr = _run_in_process(_toy_flags(tmp_path / "run", *extra), capsys)
  assert status in (1, 2)
  error_lines = [line for line in stderr.splitlines()
                 if line.startswith("python -m tfgan_app.train: error:")]
  assert len(error_lines) == 1 and message in error_lines[0], stderr[-3000:]
  assert not os.path.exists(tmp_path / "run" / "checkpoints")


@pytest.mark.parametrize("change,message", [
    (dict(architecture="dcgan"), "--architecture=dcgan needs images [H, W, C]"),
    (dict(eval_every=3), "--eval_every measures images with a classifier"),
])
def test_toy_configuration_errors_come_before_the_workdir_is_touched(tmp_path, change, message):
  config = config_lib.TrainConfig(workdir=str(tmp_path / "run"), dataset="ring8",
                                  architecture="mlp").with_updates(**change)
  with pytest.raises(workdir_lib.ConfigError, match=re.escape(message)):
    train.train_and_export(config)
  assert not os.path.exists(config.workdir)


def test_toy_resume_with_other_mlp_widths_or_dropout_is_refused(tmp_path):
  config = config_lib.TrainConfig(
      workdir=str(tmp_path / "run"), dataset="ring8", architecture="mlp", g_units="8",
      d_units="8", d_dropout=0.0, latent_dim=2, batch_size=16, train_steps=2, export=False,
      sample_every=2, checkpoint_every=2)
  train.train_and_export(config)
  for change, message in ((dict(d_units="16"), "d_units: checkpoint '8', flags '16'"),
                          (dict(d_dropout=0.5), "d_dropout: checkpoint 0.0, flags 0.5")):
    with pytest.raises(workdir_lib.ConfigError, match=message):
      train.train_and_export(config.with_updates(train_steps=4, **change))


def test_gaussian1d_run_draws_densities_and_exports_one_dimensional_samples(tmp_path):
  config = config_lib.TrainConfig(
      workdir=str(tmp_path / "run"), dataset="gaussian1d", architecture="mlp", g_units="8",
      d_units="8", latent_dim=1, batch_size=16, train_steps=2, sample_every=2,
      checkpoint_every=2, model_name="line")
  result = train.train_and_export(config)
  picture = tf.io.decode_png(tf.io.read_file(os.path.join(config.workdir, "samples",
                                                          "step_0000002.png")))
  assert picture.shape[1] > 500 and picture.shape[-1] == 3
  record = json.loads(open(os.path.join(config.workdir, "metrics.jsonl")).read())
  assert record["dataset"] == "gaussian1d" and record["num_modes"] == 1 and record["step"] == 2
  serve = tf.saved_model.load(result.export_path).signatures[export.SERVING_SIGNATURE]
  assert serve(**{export.LATENTS: tf.zeros([3, 1])})[export.SAMPLES].shape == (3, 1)
  assert export.read_metadata(result.export_path)["sample_shape"] == [1]


def test_mixed_float16_scales_both_losses(tmp_path, data_dir):
  config = tiny_config(tmp_path / "run", data_dir, train_steps=2, checkpoint_every=2,
                       export=False, mixed_precision="mixed_float16", deterministic=False)
  try:
    result = train.train_and_export(config)
  finally:
    keras.mixed_precision.set_global_policy("float32")
  assert result.step == 2 and all(np.isfinite(v) for v in result.last_logs.values())
  names = set(_checkpoint_values(config.workdir))
  # Each player's LossScaleOptimizer keeps its own dynamic scale.
  for player in ("g_optimizer", "d_optimizer"):
    assert any(name.startswith(player) and "dynamic_scale" in name for name in names), names
