"""The one error type users see: a single line naming the problem and the fix."""

import functools
import sys


class RaykdError(Exception):
    """Bad input or state. The message is one line: what is wrong, then how to fix it."""

    exit_code = 2


class Interrupted(RaykdError):
    """A run stopped by Ctrl-C before its end; the message says how to continue. Its exit code is the shell's
    for SIGINT (128 + 2), so a wrapping script tells a stopped run from bad input (2) and from a finished one."""

    exit_code = 130


class Unfinished(RaykdError):
    """Work a command ran that ended without its result (a paper cell that failed or was stopped); what did
    finish is kept. Exit code 1: neither bad input (2) nor a Ctrl-C of the command itself (130)."""

    exit_code = 1


def exits_cleanly(main):
    """Turn a RaykdError escaping a command-line `main` into `error: ...` on stderr and its exit code (2;
    130 for Interrupted, 1 for Unfinished)."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        """Call `main`; a RaykdError becomes `error: <message>` on stderr and SystemExit(err.exit_code)."""
        try:
            return main(*args, **kwargs)
        except RaykdError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(err.exit_code) from None

    return wrapper
