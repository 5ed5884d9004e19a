"""Command-line parsing shared by every entry point: one clear error line, exit status 2.

Two shapes of entry point exist. Those run by `absl.app.run` on the global `FLAGS` (train,
classifier, evaluate, sample_quality) pass `flags_parser(program)`. Those whose flags would
clash with the training flags on the global `FLAGS` (export, serving.server, serving.client)
define them on a private `FlagValues` and call `parse_private_flags`.
"""

import sys
from typing import Callable, Optional, Sequence, Tuple

from absl import flags
from absl import logging

USAGE_ERROR = 2
_HELP = ("--help", "-h", "--helpfull")


def _error(program: str, message: str) -> None:
  print(f"{program}: error: {message}", file=sys.stderr)


def flags_parser(program: str,
                 argv_transform: Optional[Callable[[Sequence[str]], list]] = None) -> Callable:
  """An `absl.app.run` flags_parser: bad flags or stray arguments give one line and exit 2.

  `argv_transform`, if given, rewrites the command line before absl parses it.
  """

  def parse(argv):
    if argv_transform is not None:
      argv = argv_transform(argv)
    try:
      remaining = flags.FLAGS(argv)
    except flags.Error as error:
      _error(program, f"{error} (see --helpfull for accepted flags)")
      sys.exit(USAGE_ERROR)
    if len(remaining) > 1:
      _error(program, f"unexpected arguments {remaining[1:]}; all options are --flags "
             "(see --helpfull)")
      sys.exit(USAGE_ERROR)
    if not flags.FLAGS["verbosity"].present:
      # absl logs INFO by default, which buries our progress lines under library chatter
      # (TFDS file listings). --verbosity=0 brings it back.
      logging.set_verbosity(logging.WARNING)
    return remaining

  return parse


def parse_private_flags(program: str, define_flags: Callable, argv: Sequence[str], usage: str,
                        required: Sequence[str] = ()
                        ) -> Tuple[Optional[flags.FlagValues], int]:
  """Parses `argv` into a new `FlagValues` that `define_flags(values)` fills with definitions.

  Returns:
    (values, 0) to go on; (None, 0) after printing help; (None, 2) after one error line.
  """
  values = flags.FlagValues()
  define_flags(values)
  if any(arg in _HELP for arg in argv[1:]):
    print(f"{program} {usage}\n{values.get_help()}")
    return None, 0
  try:
    remaining = values(list(argv))
  except flags.Error as error:
    _error(program, f"{error} (see --help)")
    return None, USAGE_ERROR
  if len(remaining) > 1:
    _error(program, f"unexpected arguments {remaining[1:]}; all options are --flags")
    return None, USAGE_ERROR
  missing = [name for name in required if not values[name].value]
  if missing:
    _error(program, f"pass --{missing[0]} (see --help)")
    return None, USAGE_ERROR
  return values, 0
