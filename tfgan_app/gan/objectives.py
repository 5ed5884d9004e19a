"""The adversarial objectives of --loss: each pairs a discriminator loss with a generator loss
(`gan.losses`, from TF-GAN) and names the divergence that D's loss estimates, which training
logs beside the losses.

  --loss          D minimises (per example)                G minimises      D's loss estimates
  minimax         -log s(D(x)) - log(1 - s(D(G(z))))      log(1 - s(D(G(z))))    jsd
  non_saturating  the same                                 -log s(D(G(z)))        jsd
  wasserstein     D(G(z)) - D(x)                           -D(G(z))               wasserstein
  hinge           max(0, 1 - D(x)) + max(0, 1 + D(G(z)))  -D(G(z))               total_variation
  least_squares   (D(x) - 1)^2 / 2 + D(G(z))^2 / 2         (D(G(z)) - 1)^2 / 2    triangular_discrimination

(s: the sigmoid; D returns an unbounded score, a logit for the first two.) Each estimate is
exact at the optimal discriminator and a lower bound for any other, so it rises as D learns
to tell the distributions apart and falls as G closes the gap:

- jsd (Goodfellow et al. 2014, Theorem 1): V(D*, G) = -log 4 + 2 JSD(p_data || p_g), so
  JSD >= (V + log 4) / 2 with V = E log s(D(x)) + E log(1 - s(D(G(z)))). It means the JSD
  only under these two losses; the other losses train D towards other optima, so no `jsd` is
  logged for them.
- wasserstein (Arjovsky et al. 2017): E D(x) - E D(G(z)) <= W1(p_data, p_g) for a 1-Lipschitz
  critic (Kantorovich-Rubinstein); a K-Lipschitz critic gives K W1. Without a gradient penalty
  or spectral normalisation nothing bounds K, and the value only tracks the critic's scale.
- total_variation (hinge; Lim & Ye 2017): pointwise the hinge loss is minimised by
  D = sign(p_data - p_g) with value 2 - 2 TV(p_data, p_g), TV = 1/2 integral |p_data - p_g|,
  so TV >= 1 - L_D / 2.
- triangular_discrimination (least squares with labels 0 and 1; Mao et al. 2017 §3.2 derive
  the optimum D* = p_data / (p_data + p_g)): L_D(D*) = 1/4 - Delta / 8 with Delta(p, q) =
  integral (p - q)^2 / (p + q) in [0, 2] (Le Cam's triangular discrimination), so
  Delta >= 2 - 8 L_D. (Mao et al.'s Pearson chi^2 result needs labels -1, 1, 0.)

`d_real` and `d_fake` are D's mean outputs on real and generated batches: probabilities
s(D(.)) under minimax and non_saturating, raw scores under the others.
"""

import dataclasses
import math
from typing import Callable

import tensorflow as tf

from tfgan_app.gan import losses


@dataclasses.dataclass(frozen=True)
class Objective:
  """One value of --loss."""
  name: str
  # (real_logits, fake_logits) -> D's loss per example.
  discriminator_loss: Callable[..., tf.Tensor]
  # fake_logits -> G's loss per example.
  generator_loss: Callable[[tf.Tensor], tf.Tensor]
  # The logged name of the divergence D's loss estimates (module docstring).
  estimate_name: str
  # (real_logits, fake_logits, d_loss_per_example) -> the per-example terms whose global mean
  # m gives the estimate as `estimate_from_mean(m)`.
  estimate_terms: Callable[..., tf.Tensor]
  estimate_from_mean: Callable[[tf.Tensor], tf.Tensor]
  # D's outputs are logits of "real": d_real and d_fake are then probabilities, and one-sided
  # label smoothing applies.
  probabilities: bool


def _value_terms(real_logits, fake_logits, d_per_example):
  del d_per_example
  return (tf.reshape(tf.math.log_sigmoid(real_logits), [-1])
          + tf.reshape(tf.math.log_sigmoid(-fake_logits), [-1]))


def _critic_gap_terms(real_logits, fake_logits, d_per_example):
  del real_logits, fake_logits
  return -d_per_example  # D(x) - D(G(z)).


def _loss_terms(real_logits, fake_logits, d_per_example):
  del real_logits, fake_logits
  return d_per_example


_LOG_4 = math.log(4.0)

OBJECTIVES = {objective.name: objective for objective in (
    Objective("non_saturating", losses.minimax_discriminator_loss_per_example,
              losses.non_saturating_generator_loss_per_example, "jsd", _value_terms,
              lambda value: (value + _LOG_4) / 2.0, probabilities=True),
    Objective("minimax", losses.minimax_discriminator_loss_per_example,
              losses.minimax_generator_loss_per_example, "jsd", _value_terms,
              lambda value: (value + _LOG_4) / 2.0, probabilities=True),
    Objective("wasserstein", losses.wasserstein_discriminator_loss_per_example,
              losses.wasserstein_generator_loss_per_example, "wasserstein", _critic_gap_terms,
              lambda gap: gap, probabilities=False),
    Objective("hinge", losses.hinge_discriminator_loss_per_example,
              losses.wasserstein_generator_loss_per_example, "total_variation", _loss_terms,
              lambda loss: 1.0 - loss / 2.0, probabilities=False),
    Objective("least_squares", losses.least_squares_discriminator_loss_per_example,
              losses.least_squares_generator_loss_per_example, "triangular_discrimination",
              _loss_terms, lambda loss: 2.0 - 8.0 * loss, probabilities=False),
)}


def get(name: str, label_smoothing: float = 0.0) -> Objective:
  """The objective of `--loss=name`.

  Raises:
    ValueError: an unknown name, or label smoothing with a loss whose D has no probabilities.
  """
  try:
    objective = OBJECTIVES[name]
  except KeyError:
    raise ValueError(f"unknown loss {name!r}; accepted: {', '.join(OBJECTIVES)}") from None
  if label_smoothing and not objective.probabilities:
    raise ValueError(f"--label_smoothing={label_smoothing} smooths D's probability targets; "
                     f"--loss={name} has none: use --loss=non_saturating or minimax, or drop "
                     "--label_smoothing")
  return objective
