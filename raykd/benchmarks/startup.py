"""Where a trial's start-up goes (`startup` section): one real `raykd.search` of short trials at the main
command's layout, and per phase of raykd.training.startup the seconds of its first trial (which may pay
imports the later ones do not) and the median and range of the others, from trials.csv."""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd

from raykd.benchmarks.common import cluster_address, teacher_for
from raykd.tasks import get_task
from raykd.training.startup import PHASES

STARTUP_SPACE = """from ray import tune
fixed = {"algorithm": "kd"}
space = {"learning_rate": tune.loguniform(3e-5, 3e-4)}
"""
TRIALS = 5


def phase_rows(table: pd.DataFrame) -> list[str]:
    """Markdown rows, one per start-up phase present in `table` (trials.csv, ordered by start), and the total:
    the first trial's seconds, then the later trials' median [min, max]. Phases no trial reported are left out."""
    names = [phase for _, phase in PHASES if phase] + ["total"]
    first, later = table.iloc[0], table.iloc[1:]
    rows = []
    for name in names:
        column = f"startup_{name}_s"
        if column not in table:
            continue
        rest = later[column].dropna().tolist()
        spread = f"{statistics.median(rest):.1f} [{min(rest):.1f}, {max(rest):.1f}]" if rest else "-"
        rows.append(f"| {name} | {first[column]:.1f} | {spread} |")
    return rows


def startup(args, cache_dir: Path, scratch: Path) -> list[str]:
    """The `startup` section, markdown rows: a search of TRIALS kd trials (one classification epoch on a seeded
    --throughput-fraction of RTE, 2 workers x 1 CPU, one trial at a time: the main command's layout on 2
    cores) on this benchmark's cluster, and where each trial's seconds before its first step went. Raises
    CalledProcessError when the search fails."""
    teacher_dir, described = teacher_for(get_task("rte"), args.teachers, scratch)
    space = scratch / "startup_space.py"
    space.write_text(STARTUP_SPACE)
    subprocess.run([sys.executable, "-m", "raykd.search", "--task", "rte", "--data-dir", args.data_dir,
                    "--teacher", teacher_dir, "--space", str(space), "--num-samples", str(TRIALS), "--max-epochs", "1",
                    "--train-fraction", str(args.throughput_fraction), "--max-seq-length", str(args.max_seq_length),
                    "--confirm-top", "0", "--export-formats", "hf", "--workers-per-trial", "2",
                    "--max-concurrent-trials", "1", "--cache-dir", str(cache_dir), "--out", str(scratch / "startup"),
                    "--name", "startup", "--address", cluster_address()], check=True)
    table = pd.read_csv(scratch / "startup" / "rte" / "startup" / "trials.csv")
    table = table.sort_values("trial_started_at") if "trial_started_at" in table else table
    return ["| phase (raykd.training.startup) | first trial (s) | later trials, median [min, max] (s) |",
            "|---|---|---|", *phase_rows(table), "",
            f"{len(table)} trials of kd, one classification epoch on a seeded {args.throughput_fraction:g} of RTE's "
            f"train set, max {args.max_seq_length} tokens, 2 Ray Train workers x 1 CPU, one trial at a time, teacher "
            f"{described}, the teacher-output cache warm. The phases run from the trial's process start to its "
            "first training step, in order; `total` is their sum."]
