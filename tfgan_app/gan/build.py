"""Builds the GAN family's model: generator, discriminator, optional EMA generator and both
optimizers, compiled (`build_gan`)."""

from typing import Optional

import keras

from tfgan_app.common import config as config_lib
from tfgan_app.gan import conditioning
from tfgan_app.gan import diffaugment
from tfgan_app.gan import model as gan_lib
from tfgan_app.gan import penalties
from tfgan_app.gan import schedules
from tfgan_app.hardware import precision
from tfgan_app.models import registry as models


def build_gan(config, image_shape, policy: Optional[str] = None) -> gan_lib.GAN:
  """Builds and compiles the GAN in the current strategy scope.

  `image_shape` is the shape of one example: [H, W, C], or [D] for toy points. `policy` is the
  resolved dtype policy (None: `config.mixed_precision` resolved for this machine); the layers
  take Keras's global policy, which the caller sets.
  """
  policy = policy or precision.resolve(config.mixed_precision).policy
  g_units = config_lib.parse_units(config.g_units)
  conditional = config.conditioning != conditioning.NONE
  if conditional and config.num_classes <= 0:
    raise ValueError(f"--conditioning={config.conditioning} needs the dataset's number of "
                     f"classes (num_classes), got {config.num_classes}")
  generator, discriminator = models.build_models(
      config.architecture, config.latent_dim, image_shape, config.g_filters, config.d_filters,
      sync_batchnorm=config.sync_batchnorm, kernel_size=config.kernel_size,
      g_refine_blocks=config.g_refine_blocks,
      minibatch_kernels=config.minibatch_kernels if config.minibatch_discrimination else 0,
      minibatch_kernel_dim=config.minibatch_kernel_dim, g_units=g_units,
      d_units=config_lib.parse_units(config.d_units), d_dropout=config.d_dropout,
      spectral_norm=config.spectral_norm, conditioning=config.conditioning,
      num_classes=config.num_classes, g_refine_kernel_size=config.g_refine_kernel_size)
  ema_generator = None
  if config.ema_decay > 0:
    ema_generator = models.build_generator(
        config.architecture, config.latent_dim, image_shape, config.g_filters,
        config.sync_batchnorm, name="ema_generator", kernel_size=config.kernel_size,
        refine_blocks=config.g_refine_blocks, hidden_units=g_units,
        num_classes=config.num_classes if conditional else 0,
        refine_kernel_size=config.g_refine_kernel_size)
  model = gan_lib.GAN(generator, discriminator, latent_dim=config.latent_dim,
                      d_steps=config.d_steps, loss=config.loss, seed=config.seed,
                      label_smoothing=config.label_smoothing, g_objective=config.g_objective,
                      update=config.update,
                      penalties=penalties.DiscriminatorPenalties(
                          config.gradient_penalty, config.r1_gamma, config.r1_every),
                      augment=diffaugment.DiffAugment(
                          diffaugment.parse_policy(config.diffaugment)),
                      ema_generator=ema_generator, ema_decay=config.ema_decay,
                      conditioning=config.conditioning, num_classes=config.num_classes,
                      acgan_weight=config.acgan_weight)
  if ema_generator is not None:
    model.reset_ema()
  def learning_rate(initial, updates_per_step):
    if config.lr_decay_start >= 1.0:
      return initial
    return schedules.LinearDecayToZero(initial, config.train_steps * updates_per_step,
                                       config.lr_decay_start)

  def optimizer(initial, updates_per_step):
    adam = keras.optimizers.Adam(learning_rate(initial, updates_per_step), beta_1=config.beta1,
                                 beta_2=config.beta2)
    if policy == precision.MIXED_FLOAT16:
      # float16 gradients underflow without loss scaling; both players need their own scale
      # (gan.GAN scales each loss with its optimizer's current scale).
      return keras.optimizers.LossScaleOptimizer(adam)
    return adam

  model.compile(
      d_optimizer=optimizer(config.d_lr, config.d_steps),
      g_optimizer=optimizer(config.g_lr, 1),
      steps_per_execution=config.steps_per_execution,
      jit_compile=config.jit_compile)
  return model


# run_spec.json fields that runs from before they existed leave out, at their values then.
SPEC_DEFAULTS = {"minibatch_discrimination": False, "g_refine_blocks": 0, "spectral_norm": False,
                 "conditioning": conditioning.NONE, "g_refine_kernel_size": 0}


def run_spec(config, image_shape) -> dict:
  """The GAN's fields that decide its checkpoint's structure (run_spec.json)."""
  spec = {"architecture": config.architecture, "dataset": config.dataset,
          "image_shape": list(image_shape), "latent_dim": config.latent_dim,
          "g_filters": config.g_filters, "d_filters": config.d_filters,
          "kernel_size": config.kernel_size, "g_refine_blocks": config.g_refine_blocks,
          "g_refine_kernel_size": config.g_refine_kernel_size,
          "ema": config.ema_decay > 0,
          "minibatch_discrimination": config.minibatch_discrimination,
          # D's layers hold u; dcgan's D has no BatchNorm then.
          "spectral_norm": config.spectral_norm,
          "conditioning": config.conditioning}
  if config.conditioning != conditioning.NONE:  # Only then: the classes decide the tables.
    spec["num_classes"] = config.num_classes
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
