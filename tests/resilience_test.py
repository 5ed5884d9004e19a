"""Training survives SIGKILL, SIGTERM, NaNs, unwritable workdirs and concurrent runs."""

import dataclasses
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tfgan_app.gan import objectives
from tfgan_app.training import callbacks as callbacks_lib
from tfgan_app.training import loop as train
from conftest import HANG_TIMEOUT_S, REPO_ROOT, tfds_data_dir, tiny_config

_TINY = ["--batch_size=16", "--seed=5", "--deterministic", "--log_every=1", "--sample_every=100",
         "--g_filters=8", "--d_filters=8", "--latent_dim=8", "--split=train[:2000]",
         "--nodownload", "--num_sample_images=4", "--model_name=tiny"]


def _command(workdir, *extra):
  return [sys.executable, "-m", "tfgan_app.train", f"--workdir={workdir}", *_TINY, *extra]


def _env():
  return dict(os.environ, TFDS_DATA_DIR=tfds_data_dir(), PYTHONUNBUFFERED="1")


def _run(workdir, *extra, **kwargs):
  return subprocess.run(_command(workdir, *extra), cwd=REPO_ROOT, env=_env(),
                        capture_output=True, text=True, timeout=HANG_TIMEOUT_S, **kwargs)


def _start(workdir, *extra):
  return subprocess.Popen(_command(workdir, *extra), cwd=REPO_ROOT, env=_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_line(process, prefix, timeout=HANG_TIMEOUT_S):
  deadline = time.time() + timeout
  while time.time() < deadline:
    line = process.stdout.readline()
    if not line:
      break
    if line.startswith(prefix):
      return line
  raise AssertionError(f"no line starting with {prefix!r}; stderr: {process.stderr.read()[-2000:]}")


def _weights(workdir):
  path = tf.train.latest_checkpoint(os.path.join(str(workdir), "checkpoints"))
  reader = tf.train.load_checkpoint(path)
  return path, {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(path)
                if not name.startswith("_CHECKPOINTABLE")}


def _wait_for_step(process, target, timeout=HANG_TIMEOUT_S):
  deadline = time.time() + timeout
  while time.time() < deadline:
    line = process.stdout.readline()
    if not line:
      break
    if line.startswith("step ") and int(line.split()[1].split("/")[0]) >= target:
      return
  raise AssertionError(f"step {target} not reached; stderr: {process.stderr.read()[-2000:]}")


def test_sigkill_at_random_moments_then_resume_equals_an_uninterrupted_run(tmp_path):
  steps = ["--train_steps=40", "--checkpoint_every=7"]
  straight = _run(tmp_path / "straight", *steps)
  assert straight.returncode == 0, straight.stderr[-2000:]
  rng = random.Random(0)
  workdir = tmp_path / "killed"
  for target in sorted(rng.sample(range(3, 36), 2)):
    process = _start(workdir, *steps)
    # The kill lands while the run goes on past the step it printed: anywhere in a later step,
    # a checkpoint write included.
    _wait_for_step(process, target)
    process.send_signal(signal.SIGKILL)
    process.wait()
  finished = _run(workdir, *steps)
  assert finished.returncode == 0, finished.stderr[-2000:]
  assert "Resumed from" in finished.stdout
  _, expected = _weights(tmp_path / "straight")
  path, got = _weights(workdir)
  assert path.endswith("ckpt-40")
  for name in expected:
    np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
  exported = tf.saved_model.load(str(workdir / "export" / "tiny" / "40"))
  reference = tf.saved_model.load(str(tmp_path / "straight" / "export" / "tiny" / "40"))
  latents = tf.random.stateless_normal([6, 8], seed=[1, 2])
  np.testing.assert_array_equal(
      exported.signatures["serving_default"](latents=latents)["images"].numpy(),
      reference.signatures["serving_default"](latents=latents)["images"].numpy())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_finishes_the_step_checkpoints_and_exits_zero(tmp_path, signum):
  workdir = tmp_path / "run"
  process = _start(workdir, "--train_steps=100000", "--checkpoint_every=100000")
  line = _wait_for_line(process, "step 3/")
  assert line
  process.send_signal(signum)
  stdout, stderr = process.communicate(timeout=HANG_TIMEOUT_S)
  assert process.returncode == 0, stderr[-2000:]
  assert "Resume with: python -m tfgan_app.train --flagfile=" in stdout
  path, values = _weights(workdir)
  step = int(values["step/.ATTRIBUTES/VARIABLE_VALUE"])
  assert step >= 3 and path.endswith(f"ckpt-{step}")
  assert not (workdir / "export").exists()  # An unfinished run is not exported.


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, data_dir,
                                                               monkeypatch):
  config = tiny_config(tmp_path / "run", data_dir, train_steps=4, checkpoint_every=2)
  train.train_and_export(config)
  good_path, good = _weights(config.workdir)
  # Inject a NaN into the generator loss: it reaches the logs and, through the gradients,
  # the weights.
  healthy = objectives.OBJECTIVES["non_saturating"]
  monkeypatch.setitem(objectives.OBJECTIVES, "non_saturating", dataclasses.replace(
      healthy, generator_loss=lambda logits: healthy.generator_loss(logits) * float("nan")))
  diverging = config.with_updates(train_steps=8)
  with pytest.raises(callbacks_lib.TrainingDivergedError,
                     match=r"NaN/Inf at step \d+; last good checkpoint: .*ckpt-4"):
    train.train_and_export(diverging)
  path, after = _weights(config.workdir)
  assert path == good_path
  for name in good:
    np.testing.assert_array_equal(after[name], good[name])
  assert sorted(os.listdir(os.path.join(config.workdir, "export", "tiny"))) == ["4"]


def _make_unwritable(path):
  """Makes a directory unwritable even for root (CI runs as root, which ignores file modes)."""
  if os.geteuid() == 0:
    subprocess.run(["chattr", "+i", str(path)], check=True)
  else:
    os.chmod(path, 0o555)


def _make_writable(path):
  if os.geteuid() == 0:
    subprocess.run(["chattr", "-i", str(path)], check=False)
  os.chmod(path, 0o755)


@pytest.fixture(scope="module")
def trained_workdir(tmp_path_factory):
  """A workdir the command trained to step 4 (checkpoints at 2 and 4, no export), trained once
  for the tests below, each of which works on its own copy."""
  workdir = tmp_path_factory.mktemp("trained") / "run"
  first = _run(workdir, "--train_steps=4", "--checkpoint_every=2", "--noexport")
  assert first.returncode == 0, first.stderr[-2000:]
  return workdir


def _copy_of(trained_workdir, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(trained_workdir, workdir)
  return workdir


@pytest.mark.parametrize("locked,message", [
    ("", "cannot write"),  # The workdir itself: fails before training.
    ("checkpoints", "cannot write the checkpoint of step 6"),  # Fails while checkpointing.
])
def test_unwritable_workdir_fails_clearly_and_keeps_the_checkpoint(tmp_path, trained_workdir,
                                                                   locked, message):
  workdir = _copy_of(trained_workdir, tmp_path)
  good_path, good = _weights(workdir)
  target = workdir / locked if locked else workdir
  _make_unwritable(target)
  try:
    result = _run(workdir, "--train_steps=6", "--checkpoint_every=2")
  finally:
    _make_writable(target)
  assert result.returncode == 1, result.stderr[-2000:]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  errors = [line for line in result.stderr.splitlines()
            if line.startswith("python -m tfgan_app.train: error:")]
  assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
  path, after = _weights(workdir)
  assert path == good_path
  assert all(np.array_equal(after[name], good[name]) for name in good)


def test_second_concurrent_run_refuses_and_a_dead_run_leaves_no_lock(tmp_path):
  workdir = tmp_path / "run"
  first = _start(workdir, "--train_steps=100000", "--checkpoint_every=100000")
  _wait_for_line(first, "step ")
  second = _run(workdir, "--train_steps=10")
  first.send_signal(signal.SIGKILL)
  first.wait()
  assert second.returncode == 1
  assert f"another training run (pid {first.pid}) is using workdir" in second.stderr
  # The killed run's lock died with it.
  third = _run(workdir, "--train_steps=2", "--noexport")
  assert third.returncode == 0, third.stderr[-2000:]


def test_truncated_newest_checkpoint_the_resumed_command_falls_back(tmp_path,
                                                                    trained_workdir):
  workdir = _copy_of(trained_workdir, tmp_path)
  data = workdir / "checkpoints" / "ckpt-4.data-00000-of-00001"
  with open(data, "r+b") as f:
    f.truncate(os.path.getsize(data) // 2)
  # (tfgan_app.export's main: tests/checkpoint_fallback_test.py.)
  resumed = _run(workdir, "--train_steps=6", "--checkpoint_every=2", "--noexport")
  assert resumed.returncode == 0 and "Traceback" not in resumed.stderr, resumed.stderr[-3000:]
  skipped = [line for line in resumed.stderr.splitlines() if line.startswith("Skipped")]
  assert len(skipped) == 1 and "ckpt-4" in skipped[0], resumed.stderr[-3000:]
  assert f"Resumed from {workdir}/checkpoints/ckpt-2 at step 2" in resumed.stdout
  path, values = _weights(workdir)
  assert path.endswith("ckpt-6") and int(values["step/.ATTRIBUTES/VARIABLE_VALUE"]) == 6
