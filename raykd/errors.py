"""The one error type users see: a single line naming the problem and the fix; and what an interrupt says.

A command says which phase it is in and how to continue after an interrupt (`at`); Ctrl-C or SIGTERM
anywhere then ends in one line, `error: interrupted (...) during <phase>; <how to continue>`, exit 130.
"""

import contextlib
import errno
import functools
import os
import signal
import sys
import threading


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


# Where the running command is, and what to type after an interrupt there; set by `at`.
_NOW = {"phase": "set-up", "continue": "nothing was kept; run the same command again"}
# A fault-injection hook for tests: RAYKD_SIGNAL_AT=<phase>[:<seconds>[:TERM]] sends this process a real SIGINT
# (SIGTERM with TERM) as it enters <phase>, or that many seconds later, so a test stops each phase where it runs.
SIGNAL_AT = "RAYKD_SIGNAL_AT"


def at(phase: str, how_to_continue: str | None = None):
    """Record that the command enters `phase` (a few words: "teacher outputs", "trials") and, when given, what
    the user types to continue after an interrupt from now on. Used by `exits_cleanly` and Interrupted messages."""
    _NOW["phase"] = phase
    if how_to_continue:
        _NOW["continue"] = how_to_continue
    wanted, delay, name = (os.environ.get(SIGNAL_AT, "").split(":") + ["", ""])[:3]
    if wanted == phase:
        signum = signal.SIGTERM if name == "TERM" else signal.SIGINT
        if float(delay or 0):
            timer = threading.Timer(float(delay), os.kill, (os.getpid(), signum))
            timer.daemon = True  # a command that ends first is not kept alive, nor stopped at its exit
            timer.start()
        else:
            signal.raise_signal(signum)


def interrupted_message(detail: str = "") -> str:
    """`interrupted (Ctrl-C or SIGTERM) during <phase>[, detail]; <how to continue>`: the line every interrupt ends with."""
    return f"interrupted (Ctrl-C or SIGTERM) during {_NOW['phase']}{', ' + detail if detail else ''}; {_NOW['continue']}"


def _sigterm_as_ctrl_c(signum, frame):
    if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.SIG_DFL):
        # Started in the background by a shell (`cmd &`, a script's nohup), a process ignores SIGINT, so that a
        # Ctrl-C in the terminal spares it; a SIGTERM must still stop it, as Python's Ctrl-C does.
        raise KeyboardInterrupt
    signal.raise_signal(signal.SIGINT)


def sigterm_as_ctrl_c():
    """Make SIGTERM (a scheduler's stop, `kill`) take the path of Ctrl-C: Tune's and Ray Train's SIGINT handlers
    stop the run and keep what finished, and Python's default raises KeyboardInterrupt. Called by `exits_cleanly`
    and again once Ray is connected: ray.init replaces the driver's SIGTERM handler with sys.exit(15), which
    ends the command with exit 15 and a native stack. Only the main thread may set handlers; elsewhere a no-op."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm_as_ctrl_c)


@contextlib.contextmanager
def sigint_restored():
    """`with sigint_restored(): tuner.fit()`: the SIGINT handler in place before the block is put back after it.
    Tune's and Ray Train's fit() install their own for the run and leave it installed when the run ends, so a
    later Ctrl-C (in the export, the teacher outputs after a teacher's fine-tuning) reached a finished run and
    was swallowed: the command went on."""
    before = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        if before is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, before)


def exits_cleanly(main):
    """Turn what ends a command-line `main` early into one line on stderr and an exit code: a RaykdError into
    `error: ...` and its exit code (2; 130 for Interrupted, 1 for Unfinished); Ctrl-C or SIGTERM
    (KeyboardInterrupt) into `error: interrupted ... during <phase>; <how to continue>` and 130; a disk that is
    full (ENOSPC, EDQUOT) into `error: no space left ...` and 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        """Call `main` with SIGTERM taken as Ctrl-C; print what ended it early as one line and exit."""
        sigterm_as_ctrl_c()
        try:
            at("set-up", "nothing was kept; run the same command again")
            return main(*args, **kwargs)
        except RaykdError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(err.exit_code) from None
        except KeyboardInterrupt:
            print(f"error: {interrupted_message()}", file=sys.stderr)
            raise SystemExit(Interrupted.exit_code) from None
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            print(f"error: no space left on the device writing {err.filename or 'a file'} during {_NOW['phase']}; free "
                  f"space there (or point --cache-dir, --out or RAY_TMPDIR to a larger disk), then: {_NOW['continue']}",
                  file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper
