"""Export staging directories: readable by other users, locked while written, cleaned when stale.

Files: version directories 0755, files 0644, whatever the umask, so that a TF Serving running as
another user reads them. Staging directories are named `.tmp-tfgan_app-<version>-*` and locked
(`flock`) while their export runs; an export removes those of its model directory that no
exporter holds and that have not changed for `STALE_STAGING_SECONDS` (left by a killed export).
"""

import fcntl
import os
import re
import shutil
import stat
import time
import typing


# Staging directories: `<STAGING_PREFIX><version>-<random>`, dot-names that TF Serving ignores.
STAGING_PREFIX = ".tmp-tfgan_app-"
# What the exporter named them before STAGING_PREFIX: `.tmp-<version>-` + mkdtemp's 8 characters.
_LEGACY_STAGING = re.compile(r"\.tmp-[0-9]+-[a-z0-9_]{8}")
# Unlocked staging directories younger than this are left alone: the grace covers the moment
# between an exporter creating its directory and locking it.
STALE_STAGING_SECONDS = 60.0
_DIR_MODE = 0o755  # TF Serving may run as another user: everyone may read and traverse.
_FILE_MODE = 0o644


def lock(path: str) -> typing.Optional[int]:
  """An exclusive `flock` on directory `path`: its file descriptor, or None when another
  process holds it (or the filesystem cannot lock). The kernel drops it when its holder dies."""
  try:
    fd = os.open(path, os.O_RDONLY)
  except OSError:
    return None
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError:
    os.close(fd)
    return None
  return fd


def remove_stale_staging(model_dir: str, min_age_seconds: float = STALE_STAGING_SECONDS) -> list:
  """Removes the staging directories of exports that died, in `model_dir`; returns their paths.

  Only this exporter's staging names are considered (`STAGING_PREFIX`, and the names earlier
  versions used), and only those that no exporter holds locked and that have not changed for
  `min_age_seconds`: a concurrent export keeps its own.
  """
  try:
    names = os.listdir(model_dir)
  except OSError:
    return []
  removed = []
  now = time.time()
  for name in names:
    if not (name.startswith(STAGING_PREFIX) or _LEGACY_STAGING.fullmatch(name)):
      continue
    path = os.path.join(model_dir, name)
    try:
      info = os.lstat(path)
    except OSError:
      continue
    if not stat.S_ISDIR(info.st_mode) or now - info.st_mtime < min_age_seconds:
      continue
    fd = lock(path)
    if fd is None:
      continue  # An export is writing it.
    try:
      shutil.rmtree(path)
      removed.append(path)
    except OSError:
      pass  # Another exporter removed it first, or it cannot be removed; not this export's job.
    finally:
      os.close(fd)
  return removed


def make_readable(directory: str) -> None:
  """Directories 0755 and files 0644 under `directory` (mkdtemp makes it 0700)."""
  os.chmod(directory, _DIR_MODE)
  for root, dirs, files in os.walk(directory):
    for name in dirs:
      os.chmod(os.path.join(root, name), _DIR_MODE)
    for name in files:
      os.chmod(os.path.join(root, name), _FILE_MODE)


def makedirs_readable(path: str) -> None:
  """`os.makedirs(path)`, with the directories it creates 0755 whatever the umask."""
  missing = []
  while path and not os.path.isdir(path):
    missing.append(path)
    parent = os.path.dirname(path)
    if parent == path:
      break
    path = parent
  for directory in reversed(missing):
    os.makedirs(directory, exist_ok=True)
    os.chmod(directory, _DIR_MODE)
