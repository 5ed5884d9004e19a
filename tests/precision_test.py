"""--mixed_precision=auto: the policy chosen for each kind of CPU and GPU, and why."""

import glob
import json
import os

import numpy as np
import pytest

from tfgan_app.hardware import precision
from conftest import tiny_config

# /proc/cpuinfo flags of the CPUs this project has run on (abridged to what matters).
SAPPHIRE_RAPIDS = frozenset("fma avx2 avx512f avx512_bf16 amx_bf16 amx_tile".split())
ZEN5 = frozenset("fma avx2 avx512f avx512_bf16 avx512_vnni".split())
EPYC_AVX2 = frozenset("fma avx avx2".split())


def _cpu(flags, isa=""):
  return precision.Hardware(cpu_model="Test CPU", cpu_flags=flags, onednn_max_cpu_isa=isa)


def _gpus(*capabilities):
  return precision.Hardware(cpu_flags=ZEN5, gpus=tuple(
      (f"GPU {index}", capability) for index, capability in enumerate(capabilities)))


@pytest.mark.parametrize("flags, policy", [
    (SAPPHIRE_RAPIDS, "mixed_bfloat16"),  # AMX-BF16.
    (ZEN5, "mixed_bfloat16"),  # AVX512-BF16.
    (EPYC_AVX2, "float32"),  # bfloat16 would be emulated: 11x slower.
    (frozenset(), "float32"),  # Flags unknown (no /proc/cpuinfo).
])
def test_cpu_gets_bfloat16_only_with_native_bfloat16_arithmetic(flags, policy):
  chosen, reason = precision.choose_policy(_cpu(flags))
  assert chosen == policy
  assert reason


def test_onednn_isa_cap_below_bfloat16_rules_it_out():
  chosen, reason = precision.choose_policy(_cpu(ZEN5, isa="AVX2"))
  assert chosen == "float32" and "ONEDNN_MAX_CPU_ISA=AVX2" in reason
  assert precision.choose_policy(_cpu(ZEN5, isa="AVX512_CORE_BF16"))[0] == "mixed_bfloat16"


@pytest.mark.parametrize("capabilities, policy", [
    ([(9, 0)], "mixed_bfloat16"),  # H100.
    ([(8, 0)], "mixed_bfloat16"),  # A100.
    ([(7, 5)], "mixed_float16"),  # T4.
    ([(7, 0)], "mixed_float16"),  # V100.
    ([(6, 1)], "float32"),  # P40.
    ([(8, 6), (7, 0)], "mixed_float16"),  # The oldest GPU decides.
])
def test_gpu_policy_follows_compute_capability(capabilities, policy):
  chosen, reason = precision.choose_policy(_gpus(*capabilities))
  assert chosen == policy
  assert "compute capability" in reason


def test_gpus_decide_over_the_cpu():
  assert precision.choose_policy(precision.Hardware(cpu_flags=EPYC_AVX2,
                                                    gpus=(("A100", (8, 0)),)))[0] == (
                                                        "mixed_bfloat16")


def test_explicit_value_wins_and_auto_says_why():
  hardware = _cpu(EPYC_AVX2)
  explicit = precision.resolve("mixed_bfloat16", hardware)
  assert explicit.policy == "mixed_bfloat16" and explicit.reason == "set explicitly"
  auto = precision.resolve("auto", hardware)
  assert auto.policy == "float32" and auto.requested == "auto"
  assert auto.describe().startswith("Precision: float32 (--mixed_precision=auto: ")
  assert "Test CPU" in auto.hardware and "avx2" in auto.hardware
  assert auto.to_json() == {"requested": "auto", "policy": "float32", "reason": auto.reason,
                            "hardware": auto.hardware}


def test_this_machine_resolves_to_a_keras_policy():
  resolved = precision.resolve("auto")
  assert resolved.policy in ("float32", "mixed_bfloat16", "mixed_float16")
  assert resolved.hardware


def test_reads_model_and_flags_from_cpuinfo(tmp_path):
  cpuinfo = tmp_path / "cpuinfo"
  cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC 7B12\nflags\t\t: fma avx2\n\n"
                     "processor\t: 1\nmodel name\t: AMD EPYC 7B12\nflags\t\t: fma avx2\n")
  model, flags = precision._read_cpuinfo(str(cpuinfo))  # pylint: disable=protected-access
  assert model == "AMD EPYC 7B12" and flags == {"fma", "avx2"}
  missing = precision._read_cpuinfo(str(tmp_path / "missing"))  # pylint: disable=protected-access
  assert missing == ("", frozenset())


def test_float16_is_compared_only_on_gpus():
  assert "mixed_float16" not in precision.candidate_policies(_cpu(ZEN5))
  assert "mixed_float16" in precision.candidate_policies(_gpus((7, 5)))


# --- A run: the policy it resolved is printed first and recorded; resume on other hardware.

AVX2_MACHINE = precision.Hardware(cpu_model="AVX2 CPU", cpu_flags=EPYC_AVX2)
BFLOAT16_MACHINE = precision.Hardware(cpu_model="BF16 CPU", cpu_flags=ZEN5)
FLOAT16_MACHINE = precision.Hardware(cpu_flags=EPYC_AVX2, gpus=(("Tesla V100", (7, 0)),))


def _train_on(machine, config, monkeypatch):
  # pylint: disable=import-outside-toplevel
  import keras
  from tfgan_app.training import loop as train
  monkeypatch.setattr(precision, "_this_machine", lambda: machine)
  try:
    return train.train_and_export(config)
  finally:
    keras.mixed_precision.set_global_policy("float32")


def _checkpoint_values(workdir):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
  reader = tf.train.load_checkpoint(path)
  return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(path)
          if not name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")}


@pytest.mark.parametrize("first, second, first_policy, second_policy", [
    (AVX2_MACHINE, BFLOAT16_MACHINE, "float32", "mixed_bfloat16"),
    (FLOAT16_MACHINE, AVX2_MACHINE, "mixed_float16", "float32"),
    (AVX2_MACHINE, FLOAT16_MACHINE, "float32", "mixed_float16"),
])
def test_resume_on_hardware_that_resolves_differently(tmp_path, data_dir, capsys, monkeypatch,
                                                      first, second, first_policy,
                                                      second_policy):
  config = tiny_config(tmp_path / "run", data_dir, mixed_precision="auto", train_steps=2,
                       deterministic=False)
  _train_on(first, config, monkeypatch)
  output = capsys.readouterr().out
  assert output.splitlines()[0].startswith(f"Precision: {first_policy} (--mixed_precision=auto")
  spec = json.loads((tmp_path / "run" / "run_spec.json").read_text())
  assert spec["precision"]["policy"] == first_policy and spec["precision"]["requested"] == "auto"
  weights = {name: value for name, value in _checkpoint_values(config.workdir).items()
             if name.startswith(("generator/", "discriminator/"))}
  assert all(value.dtype == np.float32 for value in weights.values() if value.dtype.kind == "f")

  result = _train_on(second, config.with_updates(train_steps=4), monkeypatch)
  output = capsys.readouterr().out
  assert result.step == 4 and all(np.isfinite(value) for value in result.last_logs.values())
  assert f"Precision changed on resume: the run trained in {first_policy}" in output
  assert f"continues in {second_policy}" in output
  # flags.cfg keeps auto (a copied run re-resolves); run_spec.json and the export say what ran.
  assert "--mixed_precision=auto" in (tmp_path / "run" / "flags.cfg").read_text()
  spec = json.loads((tmp_path / "run" / "run_spec.json").read_text())
  assert spec["precision"]["policy"] == second_policy
  metadata = json.loads((tmp_path / "run" / "export" / "tiny" / "4" / "assets.extra" /
                         "tfgan_app_metadata.json").read_text())
  assert metadata["precision"]["policy"] == second_policy
  assert metadata["flags"]["mixed_precision"] == "auto"


def test_precision_is_in_tensorboard_text(tmp_path, data_dir, monkeypatch):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  config = tiny_config(tmp_path / "run", data_dir, mixed_precision="auto", train_steps=2,
                       export=False)
  _train_on(AVX2_MACHINE, config, monkeypatch)
  texts = []
  for path in glob.glob(str(tmp_path / "run" / "train" / "events.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == "precision":
          texts.append(tf.make_ndarray(value.tensor).item().decode())
  assert len(texts) == 1 and texts[0].startswith("Precision: float32 (--mixed_precision=auto")
  assert "AVX2 CPU" in texts[0]
