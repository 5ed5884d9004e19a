"""The resolved training configuration: a frozen value object built once from flags.

Library modules take a `TrainConfig` (or plain arguments), never `absl.flags.FLAGS`, so they can
be called from tests and notebooks without parsing a command line.
"""

import dataclasses
import json
import os
import typing
from typing import Optional

# The adversarial objectives (gan/objectives.py).
LOSSES = ("non_saturating", "minimax", "wasserstein", "hinge", "least_squares")
# standard: the --loss generator loss; feature_matching: Salimans et al. 2016 §3.1.
G_OBJECTIVES = ("standard", "feature_matching")
MIXED_PRECISION_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
# auto: chosen for the hardware that runs the job (tfgan_app/precision.py).
MIXED_PRECISION_CHOICES = ("auto",) + MIXED_PRECISION_POLICIES


def parse_units(text: str) -> typing.Tuple[int, ...]:
  """Parses the hidden-layer widths of an MLP (--g_units, --d_units): "512,256" -> (512, 256).

  Raises:
    ValueError: not a comma-separated list of positive integers.
  """
  try:
    units = tuple(int(part) for part in str(text).split(","))
  except ValueError:
    units = ()
  if not units or min(units) <= 0:
    raise ValueError(f"{text!r} is not a comma-separated list of positive layer widths "
                     "(e.g. 512,512)")
  return units


def _parse_value(kind, text: str):
  if typing.get_origin(kind) is typing.Union:  # Optional[X]
    kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
  if kind is bool:
    return text.lower() in ("1", "true", "yes")
  return kind(text)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Everything that decides a training run. Field names equal the flag names."""

  # Data.
  dataset: str = "mnist"
  data_dir: Optional[str] = None
  split: str = "train"
  image_size: Optional[int] = None  # None: the dataset's native size.
  resize: str = "crop"  # crop, pad or stretch (tfgan_app/data/preprocess.py).
  channels: Optional[int] = None  # 1 or 3; None: the dataset's (folders: 3 if any colour).
  random_flip: bool = False
  shuffle_buffer: int = 60_000
  cache: str = "memory"  # memory, disk (under <workdir>/data_cache) or none.
  download: bool = True
  # Run.
  workdir: str = "runs/dcgan"
  train_steps: int = 2000
  batch_size: int = 128
  seed: int = 0
  deterministic: bool = False
  steps_per_execution: int = 1
  mixed_precision: str = "auto"  # Resolved by tfgan_app/precision.py.
  jit_compile: bool = False
  intra_op_threads: int = 0  # 0: TensorFlow's default (one per core).
  inter_op_threads: int = 0  # 0: TensorFlow's default.
  # Distribution.
  strategy: str = "auto"
  num_cpu_replicas: int = 1
  tpu: Optional[str] = None
  # Model.
  architecture: str = "dcgan"
  latent_dim: int = 100
  g_filters: int = 64
  d_filters: int = 64
  kernel_size: int = 4
  g_refine_blocks: int = 0
  g_refine_kernel_size: int = 0  # Kernel side of the refine blocks; 0: kernel_size.
  sync_batchnorm: bool = False
  minibatch_discrimination: bool = False
  minibatch_kernels: int = 100
  minibatch_kernel_dim: int = 5
  spectral_norm: bool = False  # Spectral normalisation of D's layers (models/spectral_norm.py).
  gmm_components: int = 50
  g_units: str = "1200,1200"  # --architecture=mlp: hidden widths, see parse_units.
  d_units: str = "240,240"
  d_dropout: float = 0.5
  conditioning: str = "none"  # none, projection or acgan (tfgan_app/gan/conditioning.py).
  num_classes: int = 0  # Classes of a conditional run; 0: taken from the dataset.
  acgan_weight: float = 1.0  # --conditioning=acgan: weight of the classification loss.
  # Objective and optimisation.
  d_steps: int = 1
  update: str = "alternating"
  label_smoothing: float = 0.0
  loss: str = "non_saturating"
  g_objective: str = "standard"
  gradient_penalty: float = 0.0  # WGAN-GP's lambda; 0: off.
  r1_gamma: float = 0.0  # R1's gamma; 0: off.
  r1_every: int = 1  # Lazy R1: every N-th discriminator update.
  diffaugment: str = ""  # DiffAugment policies, e.g. "color,translation,cutout"; "": off.
  g_lr: float = 2e-4
  d_lr: float = 2e-4
  beta1: float = 0.5
  beta2: float = 0.999
  lr_decay_start: float = 1.0  # 1: constant learning rates.
  ema_decay: float = 0.0  # 0: no EMA generator.
  # Outputs.
  log_every: int = 50
  sample_every: int = 500
  num_sample_images: int = 64
  checkpoint_every: int = 500
  keep_checkpoints: int = 3
  model_name: str = "dcgan"
  export: bool = True
  # Evaluation during training (tfgan_app/evaluate.py).
  eval_every: int = 0  # 0: off.
  eval_metrics: str = "fid,is,kid"
  eval_num_samples: int = 10_000
  eval_classifier: Optional[str] = None  # None: the dataset's default classifier.
  export_dir: Optional[str] = None  # None: <workdir>/export.

  def __post_init__(self):
    # flags.cfg files of older runs say --cache or --nocache (a boolean then).
    if isinstance(self.cache, bool):
      object.__setattr__(self, "cache", "memory" if self.cache else "none")

  @property
  def resolved_export_dir(self) -> str:
    return self.export_dir or os.path.join(self.workdir, "export")

  def with_updates(self, **changes) -> "TrainConfig":
    return dataclasses.replace(self, **changes)

  def to_flagfile(self) -> str:
    """Renders the config as an absl flagfile that reproduces the run."""
    lines = ["# Resolved flags of this run; reproduce it with",
             "#   python -m tfgan_app.train --flagfile=<this file>",
             "# Read from a run's workdir, beside its run_spec.json, it resumes that directory",
             "# whatever --workdir says below (a --workdir after it on the command line wins)."]
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if value is None:
        continue  # The flag's default (None) already means "resolve automatically".
      if isinstance(value, bool):
        lines.append(f"--{field.name}" if value else f"--no{field.name}")
      else:
        lines.append(f"--{field.name}={value}")
    return "\n".join(lines) + "\n"

  @classmethod
  def from_flagfile(cls, path: str) -> "TrainConfig":
    """Reads a flagfile written by `to_flagfile` (a run's flags.cfg).

    Parsed here rather than through absl: `tfgan_app.training.flags` defines its flags on the global
    `FLAGS`, and parsing a run's flags there would overwrite the caller's.
    """
    fields = {field.name: field for field in dataclasses.fields(cls)}
    values = {}
    with open(path) as f:
      for line in f:
        line = line.strip()
        if not line.startswith("--"):
          continue
        name, has_value, text = line[2:].partition("=")
        if has_value:
          if name in fields:
            values[name] = _parse_value(fields[name].type, text)
        elif name in fields:
          values[name] = True
        elif name.startswith("no") and name[2:] in fields:
          values[name[2:]] = False
    return cls(**values)

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), sort_keys=True)
