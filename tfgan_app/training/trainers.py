"""One small trainer per model family (`runs.families`), behind one interface, chosen once per
run (`for_architecture`): the GAN fits with Keras (`model.fit` and its `train_step`), the
Gaussian mixture (--architecture=gmm) with EM. Both use the same callbacks, so logging, samples,
checkpoints and the divergence guard behave alike.
"""

from typing import Callable, Protocol

import numpy as np

from tfgan_app.data import datasets as data
from tfgan_app.gan import conditioning
from tfgan_app.gan import model as gan_lib
from tfgan_app.gan import objectives
from tfgan_app.mixture import maximum_likelihood
from tfgan_app.models import gmm as gmm_lib
from tfgan_app.models import registry as models
from tfgan_app.runs import families
from tfgan_app.runs.workdir import ConfigError

# make_callbacks(images_per_step, print_lines) -> the run's callbacks, in order.
MakeCallbacks = Callable[[int, bool], list]


class Trainer(Protocol):
  """What the run loop needs of a model family."""

  family: families.ModelFamily  # Builds the model and names its checkpoint's structure.

  def check(self, config) -> None:
    """Refuses flags the family cannot train with (ConfigError or ValueError)."""

  def adapt_to_data(self, config, info):
    """The config with what the data decides (e.g. the mixture's latent size); ConfigError."""

  def fit(self, model, config, info, start_step: int, make_callbacks: MakeCallbacks,
          show_bar: bool) -> dict:
    """Trains from `start_step` to `config.train_steps`; returns the last logged values."""


class GanTrainer:
  """Alternating (or simultaneous) adversarial updates through `keras.Model.fit`."""

  family = families.GAN

  def check(self, config) -> None:
    gan_lib.check_update(config.update, config.d_steps, config.g_objective)
    objectives.get(config.loss, config.label_smoothing)
    conditioning.check(config.conditioning, update=config.update,
                       g_objective=config.g_objective, gradient_penalty=config.gradient_penalty,
                       acgan_weight=config.acgan_weight)
    models.check_conditional(config.architecture, config.conditioning)

  def adapt_to_data(self, config, info):
    if config.diffaugment and data.is_point_dataset(info):
      raise ConfigError(f"--diffaugment={config.diffaugment} transforms images; "
                        f"{config.dataset!r} is a toy distribution of points: drop --diffaugment")
    if config.conditioning == conditioning.NONE:
      return config
    # A conditional run was prepared with labels (data.prepare), so the classes are known.
    classes = len(info.class_names)
    if config.num_classes and config.num_classes != classes:
      raise ConfigError(f"--num_classes={config.num_classes} but {config.dataset!r} has "
                        f"{classes} classes; drop --num_classes (it is taken from the data)")
    return config.with_updates(num_classes=classes)

  def fit(self, model, config, info, start_step, make_callbacks, show_bar) -> dict:
    dataset = data.training_stream(
        info, config.batch_size, d_steps=config.d_steps, seed=config.seed,
        start_step=start_step, data_dir=config.data_dir, cache=config.cache,
        shuffle_buffer=config.shuffle_buffer, random_flip=config.random_flip,
        cache_dir=data.cache_dir(config.workdir),
        labels=config.conditioning != conditioning.NONE)
    history = model.fit(
        dataset,
        epochs=1,
        steps_per_epoch=config.train_steps - start_step,
        verbose=1 if show_bar else 0,
        shuffle=False,  # The stream is already shuffled, reproducibly (data/datasets.py).
        callbacks=make_callbacks(config.batch_size * config.d_steps, not show_bar))
    return {name: float(np.mean(values[-1])) for name, values in history.history.items()}


class MixtureTrainer:
  """EM of the Gaussian mixture over the whole split (one EM step = one training step)."""

  family = families.MIXTURE

  def check(self, config) -> None:
    if config.conditioning != conditioning.NONE:
      raise ConfigError(f"--conditioning={config.conditioning} applies to GANs; --architecture="
                        "gmm fits one unconditional mixture: drop --conditioning")
    if config.strategy not in ("auto", "default"):
      raise ConfigError(f"--architecture=gmm fits on one device (EM over the whole split); "
                        f"--strategy={config.strategy} is not supported, use auto or default")
    if config.spectral_norm:
      raise ConfigError("--spectral_norm normalises a GAN's discriminator; --architecture=gmm "
                        "has none: drop --spectral_norm")

  def adapt_to_data(self, config, info):
    if config.gmm_components > info.num_examples:
      raise ConfigError(f"--gmm_components={config.gmm_components} exceeds the "
                        f"{info.num_examples} images of --split={config.split}")
    # The mixture's latent is fixed by the image size (models/gmm.py); recording it in the
    # config puts it in flags.cfg, run_spec.json, the sample latents and the export.
    return config.with_updates(latent_dim=gmm_lib.latent_dim_for(info.image_shape))

  def fit(self, model, config, info, start_step, make_callbacks, show_bar) -> dict:
    del start_step, show_bar  # EM restarts from the restored mixture; it logs lines.
    train_pixels = maximum_likelihood.load_pixels(info, config.data_dir, config.seed,
                                                  maximum_likelihood.TRAIN_NOISE)
    test_pixels = None
    if config.split != maximum_likelihood.TEST_SPLIT:
      try:
        test_info = data.describe(config.dataset, maximum_likelihood.TEST_SPLIT,
                                  config.data_dir, info.image_shape[0], resize=config.resize,
                                  channels=info.image_shape[2])
        test_pixels = maximum_likelihood.load_pixels(
            test_info, config.data_dir, config.seed, maximum_likelihood.TEST_NOISE,
            limit=maximum_likelihood.MAX_TEST_IMAGES)
      except data.DatasetError:
        print(f"{config.dataset} has no {maximum_likelihood.TEST_SPLIT!r} split: no held-out "
              "NLL", flush=True)
    callbacks = make_callbacks(int(train_pixels.shape[0]), True)
    return maximum_likelihood.fit(model, train_pixels, config.train_steps, config.log_every,
                                  callbacks, test_pixels)


_TRAINERS = {trainer.family.name: trainer for trainer in (GanTrainer, MixtureTrainer)}


def for_architecture(architecture: str) -> Trainer:
  """The trainer of `architecture`'s family (`families.for_architecture`)."""
  return _TRAINERS[families.for_architecture(architecture).name]()
