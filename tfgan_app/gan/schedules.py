"""Learning-rate schedules for the two players."""

import keras


@keras.saving.register_keras_serializable(package="tfgan_app")
class LinearDecayToZero(keras.optimizers.schedules.LearningRateSchedule):
  """Constant, then linear decay to 0 at `total_steps` optimizer updates.

  Annealing both players' step sizes at the end damps the oscillation of the two-player game,
  so the final generator (the one exported) is a settled one rather than a snapshot of a swing.
  """

  def __init__(self, initial_learning_rate: float, total_steps: int, decay_start: float = 0.5):
    """Args: initial_learning_rate; total_steps (optimizer updates); decay_start (fraction of
    total_steps after which the decay begins, in [0, 1))."""
    self.initial_learning_rate = float(initial_learning_rate)
    self.total_steps = int(total_steps)
    self.decay_start = float(decay_start)

  def __call__(self, step):
    step = keras.ops.cast(step, "float32")
    start = self.decay_start * self.total_steps
    remaining = (self.total_steps - step) / max(self.total_steps - start, 1.0)
    return self.initial_learning_rate * keras.ops.clip(remaining, 0.0, 1.0)

  def get_config(self):
    return {"initial_learning_rate": self.initial_learning_rate,
            "total_steps": self.total_steps, "decay_start": self.decay_start}
