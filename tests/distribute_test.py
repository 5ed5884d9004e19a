"""One replica or many, one worker or two: the same GAN, the same numbers."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import (HANG_TIMEOUT_S, REPO_ROOT, checkpoint_values, logged_scalars,
                      run_script_ok, tfds_data_dir)

# float32: one replica and two agree to 1e-5 there; bfloat16 rounds each replica's partial sums.
_TINY = ["--batch_size=32", "--seed=11", "--deterministic", "--train_steps=3", "--log_every=1",
         "--sample_every=3", "--checkpoint_every=3", "--g_filters=8", "--d_filters=8",
         "--latent_dim=8", "--split=train[:2000]", "--nodownload", "--num_sample_images=4",
         "--mixed_precision=float32"]


def _train(workdir, *extra, env_extra=None, wait=True):
  env = dict(os.environ, TFDS_DATA_DIR=tfds_data_dir(), **(env_extra or {}))
  command = [sys.executable, "-m", "tfgan_app.train", f"--workdir={workdir}", *_TINY, *extra]
  process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
  if not wait:
    return process
  stdout, stderr = process.communicate(timeout=HANG_TIMEOUT_S)
  assert process.returncode == 0, stderr[-3000:]
  return stdout


def _checkpoint(workdir):
  """Everything the run's last checkpoint holds. The trained weights are saved under the
  optimizers (`d_optimizer/_trainable_variables/N`), Adam's moments under
  `d_optimizer/_variables/N`; `generator/` and `discriminator/` hold only BatchNorm statistics."""
  return checkpoint_values(tf.train.latest_checkpoint(os.path.join(str(workdir), "checkpoints")))


def _assert_same_weights(expected, got):
  assert set(expected) == set(got)
  for player in ("g_optimizer", "d_optimizer"):
    # Each weight, Adam's two moments of it.
    weights = [name for name in expected if name.startswith(f"{player}/_trainable_variables/")]
    moments = [name for name in expected if name.startswith(f"{player}/_variables/")]
    assert weights and len(moments) == 2 * len(weights), sorted(expected)
  for name in expected:
    scale = np.linalg.norm(expected[name]) or 1.0
    relative = np.linalg.norm(got[name] - expected[name]) / scale
    assert relative <= 1e-5, f"{name}: relative difference {relative:.2e}"


# Each case covers several paths at once (each pair of runs costs two TensorFlow processes).
@pytest.mark.parametrize("extra, extra_tags", [
    # The simultaneous update (both players' gradients from one generator pass); eps of WGAN-GP
    # sliced from one global draw, on translated images (DiffAugment).
    (["--update=simultaneous", "--loss=wasserstein", "--gradient_penalty=10",
      "--diffaugment=translation"], {"gradient_penalty"}),
    # k = 2 discriminator updates, each on its own real batch and its own drawn labels, then a
    # feature-matching G step (its loss is of global-batch feature means, gan.py) plus G's class
    # loss; the class losses and accuracy are global means.
    (["--conditioning=acgan", "--d_steps=2", "--g_objective=feature_matching"],
     {"d_class_loss", "g_class_loss", "real_class_accuracy"}),
    # Alternating with one D step. Lazy R1 differentiating the projection discriminator at real
    # images and their labels: updates 0 and 2 compute it, update 1 logs the record of update 0.
    # D without BatchNorm (--spectral_norm): lazy R1 refuses D's synchronised BatchNorm under
    # replicas. The smooth default loss: under hinge, whose kinks a rounding difference can
    # cross, this seed's runs part by 5e-4 at step 2.
    (["--conditioning=projection", "--r1_gamma=1", "--r1_every=2", "--spectral_norm"],
     {"r1_penalty"})],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None)
def test_two_replicas_train_like_one(tmp_path, extra, extra_tags):
  # float32 throughout (_TINY): the replicas' partial sums differ from one replica's sums by
  # rounding only; after three steps every value agrees to 4e-6 relative or better (measured).
  # No export: this compares training; the multi-worker test below checks a replicated export.
  flags = ["--sync_batchnorm", "--noexport", *extra]
  _train(tmp_path / "one", "--strategy=default", *flags)
  _train(tmp_path / "two", "--strategy=mirrored", "--num_cpu_replicas=2", *flags)
  _assert_same_weights(_checkpoint(tmp_path / "one"), _checkpoint(tmp_path / "two"))
  one, two = logged_scalars(tmp_path / "one"), logged_scalars(tmp_path / "two")
  tags = {tag for tag, _ in one}
  # The four below, D's estimate (jsd, or wasserstein under that loss) and the extra ones.
  assert {"d_loss", "g_loss", "d_real", "d_fake"} | extra_tags <= tags, sorted(tags)
  assert len(tags) == 5 + len(extra_tags), sorted(tags)
  assert set(one) == set(two) and len(one) == 3 * len(tags)
  for penalty in extra_tags & {"gradient_penalty", "r1_penalty"}:
    assert all(one[(penalty, step)] > 0 for step in (1, 2, 3))
  for key in one:
    assert two[key] == pytest.approx(one[key], rel=1e-4, abs=1e-5), key


def test_replicas_draw_different_latents_from_one_global_batch():
  script = """
import numpy as np, tensorflow as tf
from tfgan_app.gan import model as gan
from tfgan_app.hardware import distribute
strategy = distribute.build_strategy("mirrored", num_cpu_replicas=2)
fn = lambda: gan.replica_latents(3, 7, 0, 8, 4, 5)
per_replica = strategy.experimental_local_results(strategy.run(fn))
a, b = (x.numpy() for x in per_replica)
assert not np.allclose(a, b), "replicas drew the same latents"
whole = gan.replica_latents(3, 7, 0, 8, 8, 5).numpy()
np.testing.assert_array_equal(np.concatenate([a, b]), whole)
print("ok")
"""
  run_script_ok(script)


def test_feature_matching_gradients_summed_over_replicas_equal_one_replicas():
  # Adam hides a gradient off by a constant factor (its steps are scale-free), so the training
  # comparison above cannot see one: compare the gradients themselves.
  script = """
import numpy as np, tensorflow as tf
from tfgan_app.gan import losses
from tfgan_app.gan import model as gan
from tfgan_app.hardware import distribute
strategy = distribute.build_strategy("mirrored", num_cpu_replicas=2)
inputs = np.random.default_rng(0).normal(size=(8, 2)).astype(np.float32)
real_mean = tf.constant([0.3, -0.2, 1.0])
with strategy.scope():
  weights = tf.Variable([[1.0, -2.0, 0.5], [0.2, 0.1, -1.0]])

def gradient(local_inputs):
  with tf.GradientTape() as tape:
    fake_mean = gan.global_batch_feature_mean(tf.matmul(local_inputs, weights), 8)
    loss = losses.feature_matching_loss(real_mean, fake_mean)
  return tape.gradient(loss, weights), loss

shards = strategy.experimental_distribute_values_from_function(
    lambda context: inputs[4 * context.replica_id_in_sync_group:][:4])
grads, loss_values = strategy.run(gradient, args=(shards,))
summed = strategy.reduce(tf.distribute.ReduceOp.SUM, grads, axis=None).numpy()
one_grad, one_loss = gradient(tf.constant(inputs))
np.testing.assert_allclose(summed, one_grad.numpy(), rtol=1e-5)
for value in strategy.experimental_local_results(loss_values):
  np.testing.assert_allclose(value.numpy(), one_loss.numpy(), rtol=1e-6)
print("ok")
"""
  run_script_ok(script)


@pytest.mark.parametrize("extra, message", [
    (["--batch_size=33"], "--batch_size=33 is not divisible by the 2 replicas of "
                          "--strategy=mirrored; use a multiple of 2"),
    # Keras 3's multi-step loop fails under replicas at run time (keras-team/keras#19246).
    (["--steps_per_execution=3", "--log_every=3"],
     "--steps_per_execution=3 cannot run under the 2 replicas of --strategy=mirrored: Keras 3 "
     "fails on several steps per execution with replicas (keras-team/keras#19246); use "
     "--steps_per_execution=1")])
def test_what_replicas_cannot_run_fails_before_training(tmp_path, extra, message):
  env = dict(os.environ, TFDS_DATA_DIR=tfds_data_dir())
  result = subprocess.run(
      [sys.executable, "-m", "tfgan_app.train", f"--workdir={tmp_path / 'run'}", *_TINY,
       "--strategy=mirrored", "--num_cpu_replicas=2", *extra],
      cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=HANG_TIMEOUT_S)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == f"python -m tfgan_app.train: error: {message}"
  assert not os.path.exists(tmp_path / "run")


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _train_workers(workers, workdir, *extra):
  """Runs one training process per worker address; returns each one's (stdout, stderr)."""
  processes = []
  for index in range(len(workers)):
    tf_config = json.dumps({"cluster": {"worker": workers},
                            "task": {"type": "worker", "index": index}})
    processes.append(_train(workdir, "--strategy=multi_worker", *extra,
                            env_extra={"TF_CONFIG": tf_config}, wait=False))
  outputs = [process.communicate(timeout=HANG_TIMEOUT_S) for process in processes]
  for process, (_, stderr) in zip(processes, outputs):
    assert process.returncode == 0, stderr[-3000:]
  return outputs


def test_multi_worker_trains_identically_and_only_the_chief_writes(tmp_path):
  # A class-conditional GAN: its class losses are global values too, and its export is the
  # labelled one.
  workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
  workdir = tmp_path / "run"
  outputs = _train_workers(workers, workdir, "--checkpoint_every=2", "--conditioning=acgan")
  # Both workers logged the same global values (identical weights at every step).
  lines = [[line for line in stdout.splitlines() if line.startswith("step ")]
           for stdout, _ in outputs]
  assert len(lines[0]) == 3 and "d_class_loss=" in lines[0][-1]
  # The values, without the timings (steps/s, images/s, eta) that follow them.
  assert [l.split(" steps/s")[0] for l in lines[0]] == [l.split(" steps/s")[0]
                                                       for l in lines[1]]
  # Exactly one set of checkpoints and one export, in the workdir.
  assert sorted(os.listdir(workdir / "checkpoints")) == [
      "checkpoint", "ckpt-2.data-00000-of-00001", "ckpt-2.index",
      "ckpt-3.data-00000-of-00001", "ckpt-3.index"]
  assert sorted(os.listdir(workdir / "export" / "dcgan")) == ["3"]
  assert "Exported generator" in outputs[0][0] and "Exported generator" not in outputs[1][0]
  exported = tf.saved_model.load(str(workdir / "export" / "dcgan" / "3"))
  images = exported.signatures["serving_default"](
      latents=tf.zeros([2, 8]), labels=tf.constant([0, 9], tf.int32))["images"]
  assert images.shape == (2, 28, 28, 1)
  # A multi-worker run resumes: both workers restore the chief's checkpoint and go on.
  _train_workers(workers, workdir, "--train_steps=4", "--conditioning=acgan")
  assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-4")
