"""Rebuilds a training run from its workdir (`restore_run`): the model of its own flags and
run_spec.json, restored from its newest checkpoint. Export and evaluation use it; they need no
flags of the run."""

import os
from typing import NamedTuple, Optional, Tuple

from tfgan_app.common import config as config_lib
from tfgan_app.hardware import precision
from tfgan_app.runs import checkpoints
from tfgan_app.runs import families
from tfgan_app.runs import workdir as workdir_lib
from tfgan_app.runs.workdir import CHECKPOINT_DIR, FLAGFILE, RUN_SPEC, ConfigError


class RestoredRun(NamedTuple):
  """A run rebuilt from its workdir (a tuple, so `model, config, shape, path = ...` still works)."""
  model: object  # gan.model.GAN or mixture.maximum_likelihood.MixtureRun
  config: config_lib.TrainConfig
  image_shape: Tuple[int, ...]  # One example: [H, W, C], or [D] for toy points.
  checkpoint_path: Optional[str]


def build_model(config, image_shape, policy: Optional[str] = None):
  """The model of `config`'s family (`families.for_architecture`): a `gan.GAN`, or for
  --architecture=gmm a `maximum_likelihood.MixtureRun`."""
  return families.for_architecture(config.architecture).build(config, image_shape, policy)


def restore_run(workdir: str, step: Optional[int] = None) -> RestoredRun:
  """Rebuilds a training run from its workdir and restores its newest checkpoint, or with
  `step` the checkpoint of that training step.

  The model is rebuilt from the run's own flags.cfg and run_spec.json, so callers (export,
  evaluate) need no flags of the run.

  Returns:
    A `RestoredRun` (model, config, image_shape, checkpoint_path).

  Broken newer checkpoints (a truncated file, say) are skipped, one line each on stderr, and
  the newest one that restores is used. A checkpoint asked for by `step` is that one or none.

  Raises:
    ConfigError: not a training workdir, unreadable run files, no checkpoint, no checkpoint
      that restores into the model, or none of `step`.
  """
  flagfile, spec_path = os.path.join(workdir, FLAGFILE), os.path.join(workdir, RUN_SPEC)
  if not (os.path.isfile(flagfile) and os.path.isfile(spec_path)):
    raise ConfigError(f"{workdir} is not a training workdir (no {FLAGFILE} and {RUN_SPEC}); "
                      "pass the --workdir of a tfgan_app.train run")
  try:
    spec = workdir_lib.read_run_spec(spec_path)
    image_shape = tuple(spec["image_shape"])
    # run_spec.json says what the checkpoints hold, so its fields win over flags.cfg.
    config = config_lib.TrainConfig.from_flagfile(flagfile)
    structure = {name: value for name, value in spec.items()
                 if name in config_lib.TrainConfig.__dataclass_fields__}
    config = config.with_updates(workdir=workdir, **structure)
    if "ema" in spec and spec["ema"] != (config.ema_decay > 0):
      config = config.with_updates(ema_decay=0.999 if spec["ema"] else 0.0)
  except (OSError, ValueError, KeyError, TypeError) as error:
    raise ConfigError(f"cannot read the run in {workdir}: {error}") from error
  checkpoint_dir = os.path.join(workdir, CHECKPOINT_DIR)
  chosen = None if step is None else checkpoints.checkpoint_of_step(checkpoint_dir, step)
  if chosen is None and not checkpoints.listed_checkpoints(checkpoint_dir):
    raise ConfigError(f"no checkpoint in {checkpoint_dir}; train first")
  # Export and evaluation compute in float32, whatever the run trained in.
  model = build_model(config, image_shape, precision.FLOAT32)
  if chosen is not None:
    checkpoints.restore_exactly(model, chosen)
    return RestoredRun(model, config, image_shape, chosen)
  # Broken newer checkpoints are skipped with one line each on stderr.
  restored = checkpoints.restore_checkpoints(model, checkpoint_dir, workdir)
  if restored.skipped:
    checkpoints.print_to_stderr(f"Using {restored.path} (step {int(model.step.numpy())}), the "
                                "newest checkpoint that restores")
  return RestoredRun(model, config, image_shape, restored.path)
