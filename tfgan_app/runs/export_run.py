"""Exports a checkpoint of a training workdir, the newest by default (`python -m
tfgan_app.export`)."""

import typing

from tfgan_app.exporting import contract
from tfgan_app.exporting import saved_model
from tfgan_app.runs import restore
from tfgan_app.runs import workdir as workdir_lib


def export_from_workdir(workdir: str, export_dir: typing.Optional[str] = None,
                        model_name: typing.Optional[str] = None,
                        max_samples_per_request: int = contract.DEFAULT_MAX_SAMPLES_PER_REQUEST,
                        warmup_signatures: typing.Optional[typing.Sequence[str]] = None,
                        step: typing.Optional[int] = None) -> str:
  """Exports the newest checkpoint of a training workdir, or with `step` the checkpoint of that
  training step, and returns the version path.

  The model is rebuilt from the run's own `flags.cfg` and `run_spec.json`; the EMA generator is
  exported when the run has one; the version is the checkpoint's step.

  Raises:
    saved_model.ExportError: no run, no checkpoint (of `step`), an unreadable checkpoint, or a
      non-finite generator.
  """
  try:
    run = restore.restore_run(workdir, step)
  except workdir_lib.ConfigError as error:
    raise saved_model.ExportError(str(error)) from error
  model, config = run.model, run.config
  if model_name:
    config = config.with_updates(model_name=model_name)
  if export_dir:
    config = config.with_updates(export_dir=export_dir)
  step = int(model.step.numpy())
  return saved_model.export_generator(
      model.sampling_generator, config.latent_dim, config.resolved_export_dir,
      config.model_name, step,
      workdir_lib.export_metadata(config, run.image_shape, step,
                                  workdir_lib.recorded_precision(workdir),
                                  workdir_lib.recorded_class_names(workdir)),
      max_samples_per_request=max_samples_per_request, warmup_signatures=warmup_signatures)
