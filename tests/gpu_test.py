"""On a GPU: the policy auto picks, a short training run under it, one replica against two.

Skipped where TensorFlow sees no GPU (CI's machines have none). `.ci/gpu_check` runs this file
with the dcgan.cfg benchmark on a GPU machine; README, section "Precision and the hardware",
has its figures.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfgan_app import precision
from conftest import HANG_TIMEOUT_S, REPO_ROOT, tfds_data_dir, tiny_config

pytestmark = pytest.mark.skipif(not tf.config.list_physical_devices("GPU"),
                                reason="no GPU visible to TensorFlow")


def test_auto_follows_this_gpus_compute_capability():
  hardware = precision.detect_hardware()
  assert hardware.gpus, "TensorFlow lists a GPU but reports no details for it"
  capability = min(capability for _, capability in hardware.gpus)
  expected = ("mixed_bfloat16" if capability >= (8, 0) else
              "mixed_float16" if capability >= (7, 0) else "float32")
  assert precision.resolve("auto").policy == expected


def test_training_under_auto_on_the_gpu(tmp_path, data_dir, capsys):
  # pylint: disable=import-outside-toplevel
  import keras
  from tfgan_app import train
  config = tiny_config(tmp_path / "run", data_dir, mixed_precision="auto", train_steps=20,
                       log_every=10, sample_every=10, checkpoint_every=10,
                       deterministic=False)
  try:
    result = train.train_and_export(config)
  finally:
    keras.mixed_precision.set_global_policy("float32")
  assert result.step == 20 and all(np.isfinite(value) for value in result.last_logs.values())
  expected = precision.resolve("auto").policy
  assert capsys.readouterr().out.startswith(f"Precision: {expected} ")
  spec = json.loads((tmp_path / "run" / "run_spec.json").read_text())
  assert spec["precision"]["policy"] == expected and "GPU" in spec["precision"]["hardware"]


_ONE_VERSUS_TWO = """
import json, sys
import numpy as np, tensorflow as tf
replicas = int(sys.argv[1])
gpu = tf.config.list_physical_devices("GPU")[0]
if replicas > 1:  # Two logical GPUs on one device.
  tf.config.set_logical_device_configuration(
      gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=4096)] * replicas)
from tfgan_app import config as config_lib, train
config = config_lib.TrainConfig(**json.loads(sys.argv[2]))
result = train.train_and_export(config)
path = tf.train.latest_checkpoint(config.workdir + "/checkpoints")
reader = tf.train.load_checkpoint(path)
np.savez(sys.argv[3], **{name.replace("/", "|"): reader.get_tensor(name)
                         for name, _ in tf.train.list_variables(path)
                         if not name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")})
print("ok", result.step)
"""


def test_one_replica_and_two_logical_gpus_train_alike(tmp_path, data_dir):
  weights = {}
  for replicas in (1, 2):
    config = tiny_config(tmp_path / f"run{replicas}", data_dir, train_steps=4, export=False,
                         strategy="mirrored", sync_batchnorm=True, mixed_precision="float32",
                         deterministic=False)
    values = {name: getattr(config, name) for name in config.__dataclass_fields__}
    out = tmp_path / f"weights{replicas}.npz"
    result = subprocess.run(
        [sys.executable, "-c", _ONE_VERSUS_TWO, str(replicas), json.dumps(values), str(out)],
        cwd=REPO_ROOT, env=dict(os.environ, TFDS_DATA_DIR=tfds_data_dir()),
        capture_output=True, text=True, timeout=HANG_TIMEOUT_S)
    assert result.returncode == 0 and "ok 4" in result.stdout, result.stderr[-3000:]
    weights[replicas] = dict(np.load(out))
  assert weights[1].keys() == weights[2].keys() and weights[1]
  for name in weights[1]:
    # GPU kernels sum in other orders at other batch shapes; 1e-4 is far below what a wrong
    # gradient reduction (a factor of 2) or unsynchronised BatchNorm would change.
    np.testing.assert_allclose(weights[2][name], weights[1][name], rtol=1e-3, atol=1e-4,
                               err_msg=name)
