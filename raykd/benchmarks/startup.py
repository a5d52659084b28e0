"""Where a trial's start-up goes (`startup` section): the same real `raykd.search` of short trials at the main
command's layout (2 Ray Train workers) and with one worker run inside its trial's process, each with a process per
trial and with trial processes reused (raykd.tuning.tuner.reuse_processes), and per
phase of raykd.training.startup the seconds of each search's first trial (which may pay imports the later
ones do not) and the median and range of the others, from trials.csv, with the ratio of the two."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
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


def phase_rows(tables: dict[str, pd.DataFrame]) -> list[str]:
    """Markdown rows, one per start-up phase any table has (trials.csv, ordered by start), and the total: per
    table, its first trial's seconds and its later trials' median [min, max]."""
    names = [phase for _, phase in PHASES if phase] + ["total"]
    rows = []
    for name in names:
        column = f"startup_{name}_s"
        if not any(column in t for t in tables.values()):
            continue
        cells = []
        for table in tables.values():
            rest = table[column].iloc[1:].dropna().tolist() if column in table else []
            cells += [f"{table[column].iloc[0]:.1f}" if column in table else "-",
                      f"{statistics.median(rest):.1f} [{min(rest):.1f}, {max(rest):.1f}]" if rest else "-"]
        rows.append(f"| {name} | {' | '.join(cells)} |")
    return rows


# name -> (RAYKD_REUSE_TRIAL_PROCESSES, worker flags) of the search: 2 Ray Train workers a trial with a process per
# trial (raykd's default for them) and with trial processes reused (opt-in), and one worker run inside its trial's
# process, with a process per trial and with processes reused (raykd's default for them; raykd.tuning.tuner)
TWO_WORKERS = ["--workers-per-trial", "2", "--cpus-per-worker", "1"]
ONE_WORKER = ["--workers-per-trial", "1", "--cpus-per-worker", "2"]
RUNS = {"2 workers, a process per trial": ("", TWO_WORKERS),
        "2 workers, processes reused": ("1", TWO_WORKERS),
        "1 worker in its trial, a process per trial": ("0", ONE_WORKER),
        "1 worker in its trial, processes reused": ("", ONE_WORKER)}


def startup(args, cache_dir: Path, scratch: Path) -> list[str]:
    """The `startup` section, markdown rows: the same search of TRIALS kd trials (one classification epoch on a
    seeded --throughput-fraction of RTE, one trial at a time on 2 cores) once per entry of RUNS, one after the
    other on this benchmark's cluster, and where each trial's seconds before its first step went, with the whole
    search's wall time, each against the first entry's (the main command's layout). Raises CalledProcessError
    when a search fails."""
    teacher_dir, described = teacher_for(get_task("rte"), args.teachers, scratch)
    space = scratch / "startup_space.py"
    space.write_text(STARTUP_SPACE)
    tables, walls = {}, {}
    for i, (label, (reuse, workers)) in enumerate(RUNS.items()):
        env = {k: v for k, v in os.environ.items() if k != "RAYKD_REUSE_TRIAL_PROCESSES"}
        if reuse:
            env["RAYKD_REUSE_TRIAL_PROCESSES"] = reuse
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "raykd.search", "--task", "rte", "--data-dir", args.data_dir,
                        "--teacher", teacher_dir, "--space", str(space), "--num-samples", str(TRIALS), "--max-epochs", "1",
                        "--train-fraction", str(args.throughput_fraction), "--max-seq-length", str(args.max_seq_length),
                        "--confirm-top", "0", "--export-formats", "hf", *workers,
                        "--max-concurrent-trials", "1", "--cache-dir", str(cache_dir), "--out", str(scratch / "startup"),
                        "--name", f"startup-{i}", "--address", cluster_address()], check=True, env=env)
        walls[label] = time.perf_counter() - started
        table = pd.read_csv(scratch / "startup" / "rte" / f"startup-{i}" / "trials.csv")
        tables[label] = table.sort_values("startup_at", ignore_index=True)
    later = {label: table["startup_total_s"].iloc[1:].median() for label, table in tables.items()}
    (base_label, base), *others = later.items()
    compared = "; ".join(f"{label}: {value:.1f} s ({value / base:.2f}x), its search {walls[label]:.0f} s "
                         f"({walls[label] / walls[base_label]:.2f}x)" for label, value in others)
    header = " | ".join(f"{label}: first trial (s) | {label}: later, median [min, max] (s)" for label in RUNS)
    return [f"| phase (raykd.training.startup) | {header} |", "|---|" + "---|" * (2 * len(RUNS)), *phase_rows(tables), "",
            f"Later trials' start-up, median, against {base_label} ({base:.1f} s, its search {walls[base_label]:.0f} s): "
            f"{compared}.", "",
            f"Each search: {TRIALS} trials of kd, one classification epoch on a seeded {args.throughput_fraction:g} of "
            f"RTE's train set, max {args.max_seq_length} tokens, one trial at a time holding both cores, "
            f"teacher {described}, the teacher-output cache warm, the searches one after the other. The phases run "
            "from the trial's process start (a reused process: the trial function's start) to its first training "
            "step, in order; `total` is their sum. A one-worker trial runs its worker in its own process "
            "(raykd.training.session.TrialSession): no Ray Train controller or worker process, so `train_start` and "
            "`worker_imports` take no time there."]
