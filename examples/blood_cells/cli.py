"""What the example scripts share: their error type, ``main()``, and the progress default.

A problem with the user's input (a missing file, a bad flag value, a model
that does not take these images) ends a script with one ``error:`` line on
stderr and exit status 2, never a traceback; anything else is a bug and
shows its traceback.
"""

from __future__ import annotations

import sys

__all__ = ["UserError", "default_verbose", "main"]

#: Exceptions of the user's input, besides :class:`UserError`, that the
#: library raises with a clear first line (a missing file, a bad value).
INPUT_ERRORS = (FileNotFoundError, ValueError, ConnectionError)


class UserError(Exception):
    """A problem with the user's input: printed as one line, exit status 2."""


def default_verbose(verbose):
    """Keras' progress: ``verbose`` if given, else 1 (bars) on a terminal,
    2 (one line per epoch) in a log."""
    if verbose is not None:
        return verbose
    return 1 if sys.stdout.isatty() else 2


def main(run, parse_args, argv=None):
    """``run(parse_args(argv))``: its exit status, or 2 with one ``error:``
    line for a :class:`UserError` or one of :data:`INPUT_ERRORS`."""
    try:
        return run(parse_args(argv))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except INPUT_ERRORS as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
