"""The update schemes of `gan.model.GAN` (`update`) and the settings each needs. No I/O."""

UPDATES = ("alternating", "simultaneous")


def check_update(update: str, d_steps: int, g_objective: str = "standard") -> None:
  """Raises ValueError, naming what is accepted, for an unknown or unusable update scheme."""
  if update not in UPDATES:
    raise ValueError(f"unknown update {update!r}; accepted: {', '.join(UPDATES)}")
  if update == "simultaneous" and d_steps != 1:
    raise ValueError(f"--update=simultaneous updates both players from one generator pass and "
                     f"needs --d_steps=1, got --d_steps={d_steps}; use --update=alternating "
                     "for several discriminator steps")
  if update == "simultaneous" and g_objective != "standard":
    raise ValueError(f"--update=simultaneous takes the generator's gradient from D's logits and "
                     f"needs --g_objective=standard, got --g_objective={g_objective}; use "
                     "--update=alternating")
