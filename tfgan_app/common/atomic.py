"""Atomic publishing: a reader (TF Serving polling a directory, a resumed run reading its files)
sees the old version or the complete new one, never half of it.

Everything is written under a temporary name in the destination's own directory and renamed
into place; a rename within one filesystem is atomic.
"""

import contextlib
import os
import shutil
import tempfile
from typing import Iterator


@contextlib.contextmanager
def replacing(path: str, suffix: str = ".tmp") -> Iterator[str]:
  """Yields a staging file name, `path + suffix`, to write; then renames it over `path`. On an
  error the staging file is removed and `path` keeps its old content."""
  staging = path + suffix
  try:
    yield staging
    os.replace(staging, path)
  except BaseException:
    if os.path.exists(staging):
      os.remove(staging)
    raise


def write_text(path: str, text: str) -> None:
  """Writes `text` to `path` through `<path>.tmp` and a rename."""
  with replacing(path) as staging, open(staging, "w") as f:
    f.write(text)


def write_bytes(path: str, data: bytes) -> None:
  """Writes `data` to `path` through `<path>.tmp` and a rename."""
  with replacing(path) as staging, open(staging, "wb") as f:
    f.write(data)


def make_staging_dir(final: str, prefix: str) -> str:
  """A new empty directory beside `final` named `<prefix>...` (a dot-name: TF Serving and
  the other readers ignore it), its parent created if needed.

  Raises:
    OSError: the parent cannot be created or written.
  """
  parent = os.path.dirname(os.path.abspath(final))
  os.makedirs(parent, exist_ok=True)
  return tempfile.mkdtemp(prefix=prefix, dir=parent)


@contextlib.contextmanager
def publish_dir(final: str, staging: str, replace: bool = False) -> Iterator[str]:
  """Yields `staging` to fill; on success renames it to `final`, on any error removes it.

  Args:
    final: the directory readers see.
    staging: a directory from `make_staging_dir(final, ...)`.
    replace: move an existing `final` aside first (it is deleted after the rename); otherwise
      `final` must not exist.
  """
  try:
    yield staging
    if replace and os.path.exists(final):
      old = staging + ".old"
      os.rename(final, old)
      os.rename(staging, final)
      shutil.rmtree(old, ignore_errors=True)
    else:
      os.rename(staging, final)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
