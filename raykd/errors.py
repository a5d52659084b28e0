"""The one error type users see: a single line naming the problem and the fix."""

import functools
import sys


class RaykdError(Exception):
    """Bad input or state. The message is one line: what is wrong, then how to fix it."""


def exits_cleanly(main):
    """Turn a RaykdError escaping a command-line `main` into `error: ...` on stderr and exit code 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        """Call `main`; a RaykdError becomes `error: <message>` on stderr and SystemExit(2)."""
        try:
            return main(*args, **kwargs)
        except RaykdError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper
