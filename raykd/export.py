"""Export the best student of a finished or interrupted search again.

    python -m raykd.export results/rte/internal-20261128-010000 [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from raykd import cli
from raykd.errors import RaykdError, exits_cleanly
from raykd.results import experiment_info, export_best


@exits_cleanly
def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m raykd.export", description=__doc__.split("\n")[1])
    p.add_argument("experiment", type=Path, help="experiment folder: <out>/<task>/<name>")
    p.add_argument("--out", type=Path, help="where to write the model folder (default: <experiment>/best)")
    args = p.parse_args(argv)
    if not args.experiment.is_dir():
        raise RaykdError(f"experiment folder {args.experiment} does not exist; pass <out>/<task>/<name> of a search")
    info = experiment_info(args.experiment)
    if args.out:  # <experiment>/best is replaced as a whole; a folder of the user's never is
        cli.check_output_dir(args.out)
    out = (args.out or args.experiment / "best").resolve()
    try:
        best = export_best(args.experiment.resolve(), out, info["task"], info["metric"], info["teacher_dir"],
                           info["sizes"], info["mode"])
    except RuntimeError as err:
        raise RaykdError(f"{err}; let the search run at least one classification epoch") from None
    print(f"exported trial {best['trial']} ({info['metric']} {best[info['metric']]:.4f}) to {out}")
    return best


if __name__ == "__main__":
    main()
