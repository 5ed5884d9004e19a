"""The Keras dtype policy a run computes in, chosen for the hardware that runs it.

`--mixed_precision=auto` (the default) resolves here, once per process, to one of
`config.MIXED_PRECISION_POLICIES`:

- CPU: `mixed_bfloat16` where the CPU does bfloat16 arithmetic natively (x86 AVX512_BF16 or
  AMX_BF16), `float32` elsewhere. Without those instructions TensorFlow emulates bfloat16, and a
  DCGAN step measured 11x slower than in float32 on an AVX2-only AMD EPYC.
- GPU: `mixed_bfloat16` from compute capability 8.0 (Ampere: bfloat16 tensor cores),
  `mixed_float16` on 7.x (Volta, Turing: float16 tensor cores, with dynamic loss scaling, see
  `train.build_gan`), `float32` below 7.0. With several GPUs the oldest one decides.

Any other value of `--mixed_precision` is used as given. Weights stay float32 under every policy,
so a checkpoint written under one resumes under another.

oneDNN's `ONEDNN_MAX_CPU_ISA` environment variable caps the instructions its kernels use; below
AVX512_CORE_BF16 it also rules bfloat16 out here, so a newer CPU can stand in for an older one.
"""

import dataclasses
import functools
import os
import platform
from typing import Iterable, Optional, Tuple

AUTO = "auto"
FLOAT32 = "float32"
MIXED_BFLOAT16 = "mixed_bfloat16"
MIXED_FLOAT16 = "mixed_float16"

# /proc/cpuinfo flags of x86 CPUs that compute bfloat16 dot products in hardware.
NATIVE_BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) under which its kernels have no bfloat16 arithmetic.
_ONEDNN_ISAS_WITHOUT_BFLOAT16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2",
                                 "AVX512_CORE", "AVX512_CORE_VNNI")


@dataclasses.dataclass(frozen=True)
class Hardware:
  """What the policy depends on: the GPUs' compute capabilities, else the CPU's flags.

  Attributes:
    cpu_model: the CPU's model name ("" when unknown).
    cpu_flags: the CPU's feature flags as /proc/cpuinfo lists them (empty when unknown).
    gpus: (name, (major, minor) compute capability) of each visible GPU.
    onednn_max_cpu_isa: the value of $ONEDNN_MAX_CPU_ISA, "" when unset.
  """
  cpu_model: str = ""
  cpu_flags: frozenset = frozenset()
  gpus: Tuple[Tuple[str, Tuple[int, int]], ...] = ()
  onednn_max_cpu_isa: str = ""

  def describe(self) -> str:
    """One line naming the device that computes, e.g. "CPU AMD EPYC (avx512_bf16)"."""
    if self.gpus:
      names = ", ".join(f"{name} (compute capability {major}.{minor})"
                        for name, (major, minor) in self.gpus)
      return f"{len(self.gpus)} GPU(s): {names}"
    relevant = [flag for flag in ("avx2", "avx512f") + NATIVE_BFLOAT16_CPU_FLAGS
                if flag in self.cpu_flags]
    isa = f", ONEDNN_MAX_CPU_ISA={self.onednn_max_cpu_isa}" if self.onednn_max_cpu_isa else ""
    return (f"CPU {self.cpu_model or platform.machine() or 'of unknown model'} "
            f"({' '.join(relevant) or 'no AVX2/AVX-512 flags found'}{isa})")


@dataclasses.dataclass(frozen=True)
class Resolution:
  """The policy a run computes in, and why.

  Attributes:
    requested: the --mixed_precision value (e.g. "auto").
    policy: the Keras dtype policy used.
    reason: why, in one sentence.
    hardware: `Hardware.describe()` of the machine that resolved it.
  """
  requested: str
  policy: str
  reason: str
  hardware: str

  def describe(self) -> str:
    """The line a run prints first, e.g. "Precision: float32 (auto: ...)"."""
    return f"Precision: {self.policy} (--mixed_precision={self.requested}: {self.reason})"

  def to_json(self) -> dict:
    return dataclasses.asdict(self)


def _read_cpuinfo(path: str = "/proc/cpuinfo") -> Tuple[str, frozenset]:
  """(model name, flags) of the first CPU in /proc/cpuinfo; ("", {}) where it is unreadable."""
  try:
    with open(path) as f:
      text = f.read()
  except OSError:
    return "", frozenset()
  model, flags = "", frozenset()
  for line in text.splitlines():
    key, _, value = line.partition(":")
    key = key.strip().lower()
    if key == "model name" and not model:
      model = value.strip()
    elif key in ("flags", "features") and not flags:
      flags = frozenset(value.split())
  return model, flags


def _gpu_capabilities() -> Tuple[Tuple[str, Tuple[int, int]], ...]:
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  gpus = []
  for device in tf.config.list_physical_devices("GPU"):
    details = tf.config.experimental.get_device_details(device)
    capability = tuple(details.get("compute_capability") or (0, 0))
    gpus.append((details.get("device_name", device.name), capability))
  return tuple(gpus)


def detect_hardware() -> Hardware:
  """The GPUs TensorFlow sees and the CPU's model and flags."""
  model, flags = _read_cpuinfo()
  return Hardware(cpu_model=model, cpu_flags=flags, gpus=_gpu_capabilities(),
                  onednn_max_cpu_isa=os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper())


def choose_policy(hardware: Hardware) -> Tuple[str, str]:
  """(policy, reason) for `--mixed_precision=auto` on `hardware` (see the module docstring)."""
  if hardware.gpus:
    name, capability = min(hardware.gpus, key=lambda gpu: gpu[1])
    version = f"{capability[0]}.{capability[1]}"
    if capability >= (8, 0):
      return MIXED_BFLOAT16, f"GPU {name} has compute capability {version} >= 8.0 (bfloat16)"
    if capability >= (7, 0):
      return MIXED_FLOAT16, (f"GPU {name} has compute capability {version}: float16 tensor "
                             "cores, no bfloat16; losses are loss-scaled")
    return FLOAT32, f"GPU {name} has compute capability {version} < 7.0 (no tensor cores)"
  native = [flag for flag in NATIVE_BFLOAT16_CPU_FLAGS if flag in hardware.cpu_flags]
  if native and hardware.onednn_max_cpu_isa in _ONEDNN_ISAS_WITHOUT_BFLOAT16:
    return FLOAT32, (f"ONEDNN_MAX_CPU_ISA={hardware.onednn_max_cpu_isa} rules out the CPU's "
                     "bfloat16 instructions")
  if native:
    return MIXED_BFLOAT16, f"the CPU computes bfloat16 natively ({', '.join(native)})"
  if not hardware.cpu_flags:
    return FLOAT32, "the CPU's features are unknown (no /proc/cpuinfo)"
  return FLOAT32, ("the CPU has no native bfloat16 arithmetic (no "
                   f"{' or '.join(NATIVE_BFLOAT16_CPU_FLAGS)}), where bfloat16 is emulated")


@functools.lru_cache(maxsize=None)
def _this_machine() -> Hardware:
  return detect_hardware()


def resolve(requested: str, hardware: Optional[Hardware] = None) -> Resolution:
  """The policy for `--mixed_precision=requested`; `auto` is decided by `choose_policy`.

  Args:
    requested: "auto" or a Keras dtype policy name.
    hardware: the machine to decide for; None: this one (detected once per process).
  """
  hardware = hardware or _this_machine()
  if requested == AUTO:
    policy, reason = choose_policy(hardware)
    return Resolution(requested, policy, reason, hardware.describe())
  return Resolution(requested, requested, "set explicitly", hardware.describe())


def candidate_policies(hardware: Hardware) -> Iterable[str]:
  """The policies worth timing on `hardware`: float16 only on GPUs."""
  if hardware.gpus:
    return (FLOAT32, MIXED_BFLOAT16, MIXED_FLOAT16)
  return (FLOAT32, MIXED_BFLOAT16)
