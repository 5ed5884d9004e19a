"""Runs one pytest file as a Bazel test: `pytest_runner.py tests/train_test.py`.

Bazel runs it with the runfiles tree as working directory, which holds the sources, configs/ and
tests/conftest.py. Results go to Bazel's test.xml; temporary files to the test's TEST_TMPDIR.
"""

import os
import sys

import pytest


def _tfds_data_dir(test_file: str) -> str:
  """$TFDS_DATA_DIR made absolute, else ../shared/tfds beside the checkout (the CI layout).

  The runfiles tree only links to the checkout, so relative paths are taken from the checkout
  the test file really lives in, as in a plain pytest run from the repository root.
  """
  checkout = os.path.dirname(os.path.dirname(os.path.realpath(test_file)))
  path = os.environ.get("TFDS_DATA_DIR") or os.path.join("..", "shared", "tfds")
  return os.path.normpath(os.path.join(checkout, path))


def main(argv) -> int:
  if len(argv) != 2 or not argv[1].endswith("_test.py"):
    print(f"usage: {argv[0]} tests/<name>_test.py", file=sys.stderr)
    return 2
  test_file = argv[1]
  os.environ["TFDS_DATA_DIR"] = _tfds_data_dir(test_file)
  if os.environ.get("TEST_TMPDIR") and not os.environ.get("HOME"):
    # Bazel means HOME to be TEST_TMPDIR, but Bazel 4 leaves it unset, and Python then writes
    # ~/.cache into the real home directory, which the sandbox mounts read-only.
    os.environ["HOME"] = os.environ["TEST_TMPDIR"]
  # No .pytest_cache: the runfiles tree is Bazel's, not a place to write to.
  args = ["-q", "-p", "no:cacheprovider", f"--rootdir={os.getcwd()}", test_file]
  if os.environ.get("XML_OUTPUT_FILE"):
    args.append(f"--junitxml={os.environ['XML_OUTPUT_FILE']}")
  if os.environ.get("TEST_TMPDIR"):
    args.append(f"--basetemp={os.path.join(os.environ['TEST_TMPDIR'], 'pytest')}")
  return pytest.main(args)


if __name__ == "__main__":
  sys.exit(main(sys.argv))
