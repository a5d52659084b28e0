"""`python -m experiments.paper`: run the paper table's missing cells (unless --plan), then write
<results>/paper/README.md and its plots from the cells' records (experiments.paper explains the cells).

    python -m experiments.paper --data-dir ../shared/data/glue --tasks rte mrpc cola sst2 stsb --seeds 3
"""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.paper import cells, readme, runner
from raykd.data import DEFAULT_CACHE
from raykd.errors import RaykdError, Unfinished, exits_cleanly
from raykd.tasks import get_task


def parser() -> argparse.ArgumentParser:
    """The command's argument parser: every option with its default (`--help`)."""
    p = argparse.ArgumentParser(prog="python -m experiments.paper", description="run the paper table's missing "
                                "cells, then write <results>/paper/README.md and its plots from their records")
    p.add_argument("--results", type=Path, default=Path("results"), help="results root; the table goes to <results>/paper "
                                                                         "(default: results)")
    p.add_argument("--data-dir", default="../shared/data/glue", help="GLUE TSV folders (default: ../shared/data/glue)")
    p.add_argument("--tasks", nargs="+", default=["rte", "mrpc", "cola", "sst2", "stsb"], help="tasks (default: all five)")
    p.add_argument("--methods", nargs="+", default=[*cells.METHODS, "search"], choices=[*cells.METHODS, "search"],
                   help="which student cells to run (default: all six; the teacher cells always)")
    p.add_argument("--seeds", type=int, default=3, help="confirmation seeds per cell, and seeds of each teacher's recipe (default: 3)")
    p.add_argument("--fractions", nargs="*", type=float, default=[],
                   help="shares of the training set for the low-data study, e.g. 0.1 0.3 (default: none)")
    p.add_argument("--trials", type=int, default=4, help="learning rates tried per fixed method (default: 4)")
    p.add_argument("--search-trials", type=int, default=12, help="trials of the search cell (default: 12)")
    p.add_argument("--max-epochs", type=int, default=3, help="classification epochs per run (default: 3)")
    p.add_argument("--teacher-trials", type=int, default=8, help="recipes tried by each teacher search (default: 8)")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help=f"teachers' weights go to <cache-dir>/teachers (default: {DEFAULT_CACHE})")
    p.add_argument("--address", help="address of a running Ray cluster for every cell's command (default: each command "
                                      "starts a local cluster of its own)")
    p.add_argument("--teacher", action="append", default=[], metavar="TASK=FOLDER",
                   help="use this teacher (a folder written by raykd.teacher) for TASK instead of searching one; repeatable "
                        "(default: each task's teacher cell searches its recipe)")
    p.add_argument("--plan", action="store_true", help="print what is done and what remains, rebuild the table, run nothing")
    return p


def parse_args(argv=None):
    """The command's flags (argparse exits 2 on an unknown one)."""
    return parser().parse_args(argv)


@exits_cleanly
def main(argv=None):
    """Run the missing cells of --tasks and --methods (none with --plan), then write the README and plots.
    Raises RaykdError (exit 2) before any cell runs when --seeds is below 2, a --fractions value is outside
    (0, 1], a task is unknown or a --teacher value is not a teacher of its task (cells.given_teachers);
    Unfinished (exit 1), after writing the README, when a cell it ran or skipped is still not done."""
    args = parse_args(argv)
    if args.seeds < 2:
        raise RaykdError(f"--seeds {args.seeds}: a mean +- std needs at least 2 seeds")
    if any(not 0 < f <= 1 for f in args.fractions):
        raise RaykdError(f"--fractions {' '.join(map(str, args.fractions))}: each must be in (0, 1]")
    for name in args.tasks:
        get_task(name)
    root = args.results / "paper"
    s = cells.Settings(args.data_dir, root, args.cache_dir / "teachers", args.seeds, args.trials, args.search_trials,
                       args.max_epochs, args.teacher_trials, address=args.address,
                       teachers=tuple(cells.given_teachers(args.teacher, args.tasks, root).items()))
    fractions = sorted({*args.fractions, 1.0})
    every = cells.planned(args.tasks, fractions, s, tuple(args.methods))
    remaining = [c for c in every if not c.done(s)]
    print(f"paper table: {len(every) - len(remaining)} of {len(every)} cells done; remaining: "
          f"{', '.join(f'{c.task}/{c.name}' for c in remaining) or 'none'}", flush=True)
    unfinished = runner.run(remaining, s, lambda line: print(line, flush=True)) if not args.plan else []
    # The README shows every task and fraction run so far, not only this run's (readme.widen_scope).
    print(readme.write(s, args.tasks, fractions, args.results))
    print(f"wrote {root / 'README.md'}")
    if unfinished:  # after the README, which shows what did finish
        raise Unfinished(f"{len(unfinished)} cell(s) of this run did not finish: {', '.join(unfinished)}; read the cell's "
                         "output above, then run the same command again (done cells are kept, a stopped search resumes)")


if __name__ == "__main__":
    main()
