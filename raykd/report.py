"""Result tables from the run records under results/ (teacher.json, result.json).

    python -m raykd.report            # writes results/teachers.md and results/students.md
    python -m raykd.report parity     # writes results/parity.md

The paper table is an experiment driver outside the library: `python -m experiments.paper` from the
repository root (experiments/paper).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from raykd.artifacts.tables import parity_table, students_table, teachers_table
from raykd.errors import RaykdError, exits_cleanly
from raykd.files import atomic_write


def parser() -> argparse.ArgumentParser:
    """The report command's argument parser: every option with its default (`--help`)."""
    p = argparse.ArgumentParser(prog="python -m raykd.report", description=__doc__.split("\n")[0])
    p.add_argument("table", nargs="?", choices=("records", "parity"), default="records",
                   help="records: teachers.md and students.md (default); parity: parity.md from results/parity/ "
                        "(the paper table: python -m experiments.paper)")
    p.add_argument("--results", type=Path, default=Path("results"), help="results root (default: results)")
    return p


def parse_args(argv=None):
    """The report's flags (argparse exits 2 on an unknown one)."""
    return parser().parse_args(argv)


@exits_cleanly
def main(argv=None):
    """`python -m raykd.report [records|parity]`: write the chosen tables under --results. Raises RaykdError
    (exit 2) for `paper`, which is no longer a table of this command, naming the command that runs it."""
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    if argv[:1] == ["paper"]:  # the runner moved out of the library: say where, with the same options
        raise RaykdError("paper is no longer a raykd.report table (its runner is an experiment driver outside the "
                         f"library); use python -m experiments.paper {shlex.join(argv[1:]) + ' ' if argv[1:] else ''}"
                         "from the repository root")
    args = parse_args(argv)
    if args.table == "parity":
        atomic_write(args.results / "parity.md", parity_table(args.results))
        print(f"wrote {args.results / 'parity.md'}")
        return
    atomic_write(args.results / "teachers.md", teachers_table(args.results))
    atomic_write(args.results / "students.md", students_table(args.results))
    print(f"wrote {args.results / 'teachers.md'} and {args.results / 'students.md'}")


if __name__ == "__main__":
    main()
