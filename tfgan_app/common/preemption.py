"""Graceful stop on SIGTERM/SIGINT: finish the step, checkpoint, exit 0 with a resume hint.

Pre-emptible machines and Ctrl-C both end a run with a signal. Instead of dying mid-step, the
callback asks `fit` to stop after the current step; the checkpoint callback then saves at
train end. A second identical signal falls back to the default action (kill / interrupt).
"""

import os
import signal
import threading
from typing import Optional

import keras

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopOnSignal(keras.callbacks.Callback):
  """Stops `fit` cleanly after the step during which SIGTERM or SIGINT arrived."""

  def __init__(self):
    super().__init__()
    self.received: Optional[int] = None
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    if self.received is not None:
      # Asked twice: the user means it.
      signal.signal(signum, signal.SIG_DFL)
      os.kill(os.getpid(), signum)
      return
    self.received = signum
    print(f"Received {signal.Signals(signum).name}: stopping after this step and writing a "
          "checkpoint (send it again to stop at once).", flush=True)

  def on_train_begin(self, logs=None):
    if threading.current_thread() is not threading.main_thread():
      return  # Python delivers signals to the main thread only.
    for signum in _SIGNALS:
      self._previous[signum] = signal.signal(signum, self._handle)

  def on_train_batch_end(self, batch, logs=None):
    if self.received is not None:
      self.model.stop_training = True

  def on_train_end(self, logs=None):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous.clear()
