"""The resolved training configuration: a frozen value object built once from flags.

Library modules take a `TrainConfig` (or plain arguments), never `absl.flags.FLAGS`, so they can
be called from tests and notebooks without parsing a command line.
"""

import dataclasses
import json
import os
from typing import Optional

LOSSES = ("non_saturating", "minimax")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Everything that decides a training run. Field names equal the flag names."""

  # Data.
  dataset: str = "mnist"
  data_dir: Optional[str] = None
  split: str = "train"
  image_size: Optional[int] = None  # None: the dataset's native size.
  shuffle_buffer: int = 60_000
  cache: bool = True
  download: bool = True
  # Run.
  workdir: str = "runs/dcgan"
  train_steps: int = 2000
  batch_size: int = 128
  seed: int = 0
  deterministic: bool = False
  steps_per_execution: int = 1
  mixed_precision: str = "float32"
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
  sync_batchnorm: bool = False
  # Objective and optimisation.
  d_steps: int = 1
  label_smoothing: float = 0.0
  loss: str = "non_saturating"
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

  @property
  def resolved_export_dir(self) -> str:
    return self.export_dir or os.path.join(self.workdir, "export")

  def with_updates(self, **changes) -> "TrainConfig":
    return dataclasses.replace(self, **changes)

  def to_flagfile(self) -> str:
    """Renders the config as an absl flagfile that reproduces the run."""
    lines = ["# Resolved flags of this run; reproduce it with",
             "#   python -m tfgan_app.train --flagfile=<this file>"]
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if value is None:
        continue  # The flag's default (None) already means "resolve automatically".
      if isinstance(value, bool):
        lines.append(f"--{field.name}" if value else f"--no{field.name}")
      else:
        lines.append(f"--{field.name}={value}")
    return "\n".join(lines) + "\n"

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), sort_keys=True)
