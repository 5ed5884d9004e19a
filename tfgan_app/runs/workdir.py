"""A training run's workdir: what its files are called, what `run_spec.json` records, and the
checks that keep a run from resuming into a workdir of another model.

  <workdir>/flags.cfg        the resolved flags (`--flagfile=` it to reproduce the run)
  <workdir>/run_spec.json    the fields that decide the checkpoint's structure, and the precision
  <workdir>/checkpoints/     tf.train.CheckpointManager
  <workdir>/train/           TensorBoard events
  <workdir>/samples/         sample grids
"""

import dataclasses
import json
import os
import typing
from typing import Optional

import tensorflow as tf

from tfgan_app.common import config as config_lib
from tfgan_app.models import registry as models
from tfgan_app.toy import distributions as toy_data

FLAGFILE = "flags.cfg"
RUN_SPEC = "run_spec.json"
CHECKPOINT_DIR = "checkpoints"
SAMPLE_DIR = "samples"
SUMMARY_DIR = "train"


class ConfigError(ValueError):
  """The run cannot start as configured; the message says what is wrong and what is accepted."""


_SPEC_DEFAULTS = {"minibatch_discrimination": False, "g_refine_blocks": 0}
# run_spec.json's record of the precision policy the run last trained in (precision.Resolution).
# Not part of the checkpoint's structure: weights are float32 under every policy, so a run
# resumes on hardware that resolves --mixed_precision=auto differently.
PRECISION_KEY = "precision"
# run_spec.json's and the export metadata's class names of a dataset with classes (a folder's
# class subdirectories). Not structural either: the unconditional generator does not use them.
CLASS_NAMES_KEY = "class_names"


def run_spec(config: config_lib.TrainConfig, image_shape) -> dict:
  """The fields that decide the checkpoint's structure; resuming with others cannot work.

  `image_shape` is the shape of one example: [H, W, C], or [D] for toy points.
  """
  if config.architecture == models.GMM:
    return {"architecture": config.architecture, "dataset": config.dataset,
            "image_shape": list(image_shape), "latent_dim": config.latent_dim,
            "gmm_components": config.gmm_components}
  spec = {"architecture": config.architecture, "dataset": config.dataset,
          "image_shape": list(image_shape), "latent_dim": config.latent_dim,
          "g_filters": config.g_filters, "d_filters": config.d_filters,
          "kernel_size": config.kernel_size, "g_refine_blocks": config.g_refine_blocks,
          "ema": config.ema_decay > 0,
          "minibatch_discrimination": config.minibatch_discrimination}
  if config.minibatch_discrimination:
    # Only then: the sizes of a layer that is not there do not decide anything.
    spec.update(minibatch_kernels=config.minibatch_kernels,
                minibatch_kernel_dim=config.minibatch_kernel_dim)
  if config.architecture == "mlp":  # Only then: other workdirs from before keep resuming.
    # Dropout on or off decides whether the checkpoint holds D's dropout RNG states.
    spec.update(g_units=",".join(map(str, config_lib.parse_units(config.g_units))),
                d_units=",".join(map(str, config_lib.parse_units(config.d_units))),
                d_dropout=config.d_dropout)
  return spec


def read_run_spec(path: str) -> dict:
  """run_spec.json's structural fields (without the precision record)."""
  with open(path) as f:
    spec = json.load(f)
  spec.pop(PRECISION_KEY, None)
  spec.pop(CLASS_NAMES_KEY, None)
  if spec.get("architecture") == models.GMM:
    return spec  # Its spec has none of the GAN's fields.
  return {**_SPEC_DEFAULTS, **spec}


def recorded_precision(workdir: str) -> Optional[dict]:
  """The precision record (`precision.Resolution.to_json()`) of the run in `workdir`, if any."""
  try:
    with open(os.path.join(workdir, RUN_SPEC)) as f:
      return json.load(f).get(PRECISION_KEY)
  except (OSError, ValueError, AttributeError):
    return None


def recorded_class_names(workdir: str) -> Optional[list]:
  """The class names recorded in `workdir`'s run_spec.json, if any."""
  try:
    with open(os.path.join(workdir, RUN_SPEC)) as f:
      return json.load(f).get(CLASS_NAMES_KEY)
  except (OSError, ValueError, AttributeError):
    return None


def check_workdir(config, spec) -> None:
  """Refuses a workdir that holds a run of another architecture, before touching it."""
  path = os.path.join(config.workdir, RUN_SPEC)
  if not os.path.exists(path):
    if tf.train.latest_checkpoint(os.path.join(config.workdir, CHECKPOINT_DIR)):
      raise ConfigError(f"workdir {config.workdir} holds checkpoints but no {RUN_SPEC}; "
                        "use a new --workdir")
    return
  existing = read_run_spec(path)
  differences = [f"{key}: checkpoint {existing[key]!r}, flags {value!r}"
                 for key, value in spec.items() if key in existing and existing[key] != value]
  if not differences:
    # Keys that only one side has (sizes of a layer only one model has, another architecture's
    # fields) are named only when nothing that both have differs.
    differences = [f"{key}: checkpoint {existing.get(key)!r}, flags {spec.get(key)!r}"
                   for key in sorted(set(spec) ^ set(existing))]
  if differences:
    raise ConfigError(
        f"workdir {config.workdir} holds a checkpoint of a different model "
        f"({'; '.join(differences)}); use a new --workdir or the run's own flags "
        f"(--flagfile={os.path.join(config.workdir, FLAGFILE)})")


def export_metadata(config, image_shape, step: int,
                    precision_record: Optional[dict] = None,
                    class_names: Optional[typing.Sequence[str]] = None) -> dict:
  """The export's metadata: `image_shape` [H, W, C] for images, `sample_shape` [D] for points.

  `precision_record`: the precision policy the run trained in (requested, policy, reason,
  hardware: `precision.Resolution.to_json()`), when known. `class_names`: the training data's
  classes (`class_names` key), when it has them.
  """
  shape_key = "sample_shape" if toy_data.is_toy(config.dataset) else "image_shape"
  metadata = {"model_name": config.model_name, "step": step, "latent_dim": config.latent_dim,
              shape_key: list(image_shape), "dataset": config.dataset,
              "architecture": config.architecture, "ema": config.ema_decay > 0,
              "flags": dataclasses.asdict(config)}
  if precision_record is not None:
    metadata[PRECISION_KEY] = precision_record
  if class_names:
    metadata[CLASS_NAMES_KEY] = list(class_names)
  return metadata
