"""One training run per workdir: an advisory `flock` on `<workdir>/.lock`.

The kernel drops a `flock` when its process dies, however it dies, so a crashed or SIGKILLed
run never leaves the workdir locked; the file itself may stay and means nothing on its own.
"""

import fcntl
import os


class WorkdirLockedError(RuntimeError):
  """Another live process is training in this workdir."""


class WorkdirLock:
  """Context manager holding the workdir's lock for the life of a run."""

  FILENAME = ".lock"

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, self.FILENAME)
    self._fd = None

  def __enter__(self):
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
      os.close(fd)
      raise WorkdirLockedError(
          f"another training run (pid {holder}) is using workdir "
          f"{os.path.dirname(self.path)}; wait for it to finish or use another --workdir"
      ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    self._fd = fd
    return self

  def __exit__(self, *exc_info):
    if self._fd is not None:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None
