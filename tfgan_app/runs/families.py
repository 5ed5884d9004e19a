"""The model families a run can train, each behind one interface (`ModelFamily`), chosen once
per run from --architecture (`for_architecture`): the GANs (`gan.build`) and the maximum-likelihood
Gaussian mixture (`mixture.maximum_likelihood`, --architecture=gmm).

A family builds its model, whose `checkpoint_objects()` say what the run's checkpoint holds,
and says which fields of a config decide that structure (run_spec.json). How each family trains
lives above, in `training.trainers`.
"""

import dataclasses
from typing import Callable

from tfgan_app.gan import build as gan_build
from tfgan_app.mixture import maximum_likelihood
from tfgan_app.models import registry as models


@dataclasses.dataclass(frozen=True)
class ModelFamily:
  """What the run's workdir, checkpoints, export and evaluation need of a model family."""
  name: str
  # (config, image_shape, policy) -> the model, built in the current strategy scope.
  build: Callable
  # (config, image_shape) -> the fields that decide the checkpoint's structure.
  run_spec: Callable[..., dict]
  # Fields of run_spec.json that older runs left out, at their values then.
  spec_defaults: dict


GAN = ModelFamily("gan", gan_build.build_gan, gan_build.run_spec, gan_build.SPEC_DEFAULTS)
MIXTURE = ModelFamily("mixture", maximum_likelihood.build_run, maximum_likelihood.run_spec, {})


def for_architecture(architecture: str) -> ModelFamily:
  """The family of `architecture`: the mixture for gmm, the GAN for every other."""
  return MIXTURE if architecture == models.GMM else GAN
