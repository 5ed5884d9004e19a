"""The one base of callbacks that act every N steps of a run (samples, toy metrics, checkpoints,
evaluation).

The step is the model's own counter (`model.step`: generator updates, or EM steps), not Keras's
batch index: with --steps_per_execution > 1 Keras calls back once per execution and the step
moves in jumps, so an action is due when the step crosses a multiple of `every_steps` rather than
lands on one. A resumed run does not act again at once at its starting step.
"""

import keras


class PeriodicCallback(keras.callbacks.Callback):
  """Calls `on_period(step)` every `every_steps` steps and, with `at_end`, once more at the end
  of training unless the last step was just handled. Subclasses implement `on_period`."""

  def __init__(self, every_steps: int, at_end: bool = True):
    super().__init__()
    self.every_steps = int(every_steps)
    self._at_end = at_end
    self._last_step = None
    self.batch_logs = {}

  def current_step(self) -> int:
    return int(self.model.step.numpy())

  def on_period(self, step: int) -> None:
    raise NotImplementedError

  def is_due(self, last_step: int, step: int) -> bool:
    """Whether the step moving from `last_step` to `step` crosses a multiple of every_steps."""
    return step // self.every_steps > last_step // self.every_steps

  def run_period(self, step: int) -> None:
    """Acts for `step` and remembers it as handled."""
    self._last_step = step
    self.on_period(step)

  def on_train_begin(self, logs=None):
    self._last_step = self.current_step()  # A resumed run: not again at once.

  def on_train_batch_end(self, batch, logs=None):
    # The values of the batch just trained (losses, ...), for subclasses that log them.
    self.batch_logs = logs if logs is not None else {}
    step = self.current_step()
    if self._last_step is None:  # Called without on_train_begin: due on multiples.
      self._last_step = step - 1
    if self.is_due(self._last_step, step):
      self.run_period(step)

  def on_train_end(self, logs=None):
    step = self.current_step()
    if self._at_end and step != self._last_step:
      self.run_period(step)
