"""A broken newest checkpoint: training, export and evaluation fall back to the newest one that
restores, say so, and the resumed run ends with an uninterrupted run's weights. A checkpoint
asked for by step (`export --step`) is that one or an error, never another."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tfgan_app import export as export_command
from tfgan_app.evaluation import evaluator
from tfgan_app.exporting import saved_model
from tfgan_app.gan import build as gan_build
from tfgan_app.runs import checkpoints
from tfgan_app.runs import export_run
from tfgan_app.runs import workdir as workdir_lib
from tfgan_app.training import loop as train
from conftest import checkpoint_values, tfds_data_dir, tiny_config


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """A finished 6-step run, and the same run stopped at step 4 (checkpoints 2 and 4)."""
  base = tmp_path_factory.mktemp("fallback")
  straight = tiny_config(base / "straight", tfds_data_dir(), train_steps=6, export=False)
  train.train_and_export(straight)
  stopped = straight.with_updates(workdir=str(base / "stopped"), train_steps=4)
  train.train_and_export(stopped)
  return straight, stopped


def _copy(config, destination):
  """The stopped run in a workdir of its own (the index holds relative paths)."""
  shutil.copytree(config.workdir, destination)
  return config.with_updates(workdir=str(destination))


def _checkpoint(config, step):
  return os.path.join(config.workdir, workdir_lib.CHECKPOINT_DIR, f"ckpt-{step}")


def _truncate(path):
  size = os.path.getsize(path)
  with open(path, "r+b") as f:
    f.truncate(size // 2)


def _break(config, step, how):
  prefix = _checkpoint(config, step)
  if how == "data":
    _truncate(prefix + ".data-00000-of-00001")
  elif how == "index":
    _truncate(prefix + ".index")
  else:
    os.remove(prefix + ".index")


@pytest.mark.parametrize("how", ["data", "index", "missing_index"])
def test_resume_skips_a_broken_newest_checkpoint_and_reaches_the_uninterrupted_weights(
    runs, tmp_path, capfd, how):
  straight, stopped = runs
  config = _copy(stopped, tmp_path / "run")
  _break(config, 4, how)
  capfd.readouterr()
  result = train.train_and_export(config.with_updates(train_steps=6))
  out, err = capfd.readouterr()
  assert result.step == 6
  skipped = [line for line in err.splitlines() if line.startswith("Skipped checkpoint")]
  assert len(skipped) == 1 and _checkpoint(config, 4) in skipped[0], err[-3000:]
  assert f"Resumed from {_checkpoint(config, 2)} at step 2 (newer ckpt-4 cannot be" in out
  # From step 2 on it trained as the uninterrupted run did, and saved step 4 again.
  for step in (4, 6):
    expected = checkpoint_values(_checkpoint(straight, step))
    got = checkpoint_values(_checkpoint(config, step))
    assert set(got) == set(expected)
    for name in expected:
      np.testing.assert_array_equal(got[name], expected[name], err_msg=f"{name} at step {step}")
  state = tf.train.get_checkpoint_state(os.path.join(config.workdir, workdir_lib.CHECKPOINT_DIR))
  assert [os.path.basename(path) for path in state.all_model_checkpoint_paths] == [
      "ckpt-2", "ckpt-4", "ckpt-6"]
  # A second resume finds nothing broken any more.
  capfd.readouterr()
  assert train.train_and_export(config.with_updates(train_steps=6)).finished_before
  assert "Skipped" not in capfd.readouterr().err


def test_fallback_overwrites_every_value_a_failed_restore_wrote(runs, tmp_path):
  _, stopped = runs
  config = _copy(stopped, tmp_path / "run")
  model = gan_build.build_gan(config, (28, 28, 1))
  # The model holds step 4's values everywhere, as after a failed restore of ckpt-4 that wrote
  # everything it could; then ckpt-4 breaks.
  checkpoints.restore_checkpoint(model, _checkpoint(config, 4))
  _break(config, 4, "data")
  lines = []
  restored = checkpoints.restore_checkpoints(
      model, os.path.join(config.workdir, workdir_lib.CHECKPOINT_DIR), config.workdir,
      report=lines.append)
  assert restored.path == _checkpoint(config, 2)
  assert [path for path, _ in restored.skipped] == [_checkpoint(config, 4)]
  assert "IndexError" in restored.skipped[0][1] and len(lines) == 1
  # Every value the objects hold now (weights, optimizer slots and counters, step, seed) is
  # ckpt-2's.
  written = checkpoints.make_checkpoint(model).write(str(tmp_path / "now" / "ckpt"))
  expected, got = checkpoint_values(_checkpoint(config, 2)), checkpoint_values(written)
  del expected["save_counter/.ATTRIBUTES/VARIABLE_VALUE"]  # The manager's, not the model's.
  assert set(got) == set(expected)
  for name in expected:
    np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
  assert int(model.step.numpy()) == 2


def test_export_and_evaluate_use_the_newest_checkpoint_that_restores(runs, tmp_path, capsys):
  _, stopped = runs
  config = _copy(stopped, tmp_path / "run")
  _break(config, 4, "data")
  capsys.readouterr()
  assert export_command.main(["export", f"--workdir={config.workdir}"]) == 0
  out, err = capsys.readouterr()
  assert "Traceback" not in err
  assert f"Skipped checkpoint {_checkpoint(config, 4)}: cannot restore it (IndexError" in err
  assert f"Using {_checkpoint(config, 2)} (step 2)" in err
  assert out.strip().endswith(os.path.join(config.workdir, "export", "tiny", "2"))
  loaded = evaluator.load_workdir_generator(config.workdir)
  assert loaded.source["checkpoint"] == _checkpoint(config, 2) and loaded.source["step"] == 2
  # Reading is all they do: the broken checkpoint stays listed for the training run to handle.
  state = tf.train.get_checkpoint_state(os.path.join(config.workdir, workdir_lib.CHECKPOINT_DIR))
  assert os.path.basename(state.model_checkpoint_path) == "ckpt-4"


def test_no_checkpoint_restores_one_error_names_each_and_keeps_the_run(runs, tmp_path):
  _, stopped = runs
  config = _copy(stopped, tmp_path / "run")
  _break(config, 4, "data")
  _break(config, 2, "index")
  files = sorted(os.listdir(os.path.join(config.workdir, workdir_lib.CHECKPOINT_DIR)))
  with pytest.raises(workdir_lib.ConfigError) as raised:
    train.train_and_export(config.with_updates(train_steps=6))
  message = str(raised.value)
  assert "\n" not in message
  assert message.startswith(f"cannot restore checkpoint {_checkpoint(config, 4)}: IndexError")
  assert f"; {_checkpoint(config, 2)}: " in message
  assert "restore" in message and "from a backup" in message and "new --workdir" not in message
  assert sorted(os.listdir(os.path.join(config.workdir, workdir_lib.CHECKPOINT_DIR))) == files
  with pytest.raises(saved_model.ExportError, match="cannot restore checkpoint .*ckpt-4: "):
    export_run.export_from_workdir(config.workdir)


@pytest.mark.parametrize("size", [0, 20])
def test_an_unreadable_checkpoint_index_is_one_error_not_a_fresh_start(runs, tmp_path, size):
  _, stopped = runs
  config = _copy(stopped, tmp_path / "run")
  index = os.path.join(config.workdir, workdir_lib.CHECKPOINT_DIR, "checkpoint")
  with open(index, "r+b") as f:
    f.truncate(size)  # Empty, or cut inside its first line.
  with pytest.raises(workdir_lib.ConfigError, match="cannot read the checkpoint index"):
    train.train_and_export(config.with_updates(train_steps=6))
  with pytest.raises(saved_model.ExportError, match="cannot read the checkpoint index"):
    export_run.export_from_workdir(config.workdir)
  assert os.path.getsize(index) == size
  assert not os.path.exists(_checkpoint(config, 6) + ".index")


def _images(version_dir):
  exported = tf.saved_model.load(str(version_dir))
  latents = tf.constant(np.random.default_rng(0).normal(size=(3, 8)), tf.float32)
  return exported.signatures["serving_default"](latents=latents)["images"].numpy()


def test_export_of_a_chosen_step_is_that_checkpoints_generator(runs, tmp_path, capsys):
  straight, stopped = runs
  config = _copy(straight, tmp_path / "run")
  capsys.readouterr()
  assert export_command.main(["export", f"--workdir={config.workdir}", "--step=4"]) == 0
  out = capsys.readouterr().out.strip()
  chosen = os.path.join(config.workdir, "export", "tiny", "4")
  assert out.endswith(chosen)
  # The finished run's step-4 checkpoint: the generator of the run that stopped at step 4.
  assert export_command.main(["export", f"--workdir={stopped.workdir}",
                              f"--export_dir={tmp_path / 'stopped'}"]) == 0
  np.testing.assert_array_equal(_images(chosen), _images(tmp_path / "stopped" / "tiny" / "4"))
  assert os.listdir(os.path.join(config.workdir, "export", "tiny")) == ["4"]


def test_export_of_a_step_not_kept_or_broken_is_one_error_and_writes_nothing(runs, tmp_path,
                                                                            capsys):
  straight, _ = runs
  config = _copy(straight, tmp_path / "run")
  capsys.readouterr()
  assert export_command.main(["export", f"--workdir={config.workdir}", "--step=5"]) == 1
  err = capsys.readouterr().err.strip()
  assert err == (f"python -m tfgan_app.export: error: no checkpoint of step 5 in "
                 f"{os.path.join(config.workdir, workdir_lib.CHECKPOINT_DIR)} (steps held: 2, 4, "
                 "6); --checkpoint_every and --keep_checkpoints decide which steps a run keeps")
  # A broken checkpoint of the step asked for: no other step is exported in its place.
  _break(config, 4, "data")
  assert export_command.main(["export", f"--workdir={config.workdir}", "--step=4"]) == 1
  err = capsys.readouterr().err.strip()
  assert err.startswith(f"python -m tfgan_app.export: error: cannot restore checkpoint "
                        f"{_checkpoint(config, 4)}: IndexError")
  assert "\n" not in err
  assert not os.path.exists(os.path.join(config.workdir, "export"))
