"""Search throughput: trials per hour of one 6-trial search in three layouts of the cores (one trial with 2
workers x 1 thread, one trial with 1 worker x 2 threads, two trials at once), real `raykd.search` runs, and
the per-trial overhead: submission to first step, and the gap between consecutive trials (`throughput`
section)."""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

from raykd.benchmarks.common import cluster_address, teacher_for
from raykd.tasks import get_task
from raykd.tuning.trials import trial_rows

THROUGHPUT = {"(a) 1 trial at a time x 2 workers x 1 thread": ["--workers-per-trial", "2", "--cpus-per-worker", "1",
                                                                "--max-concurrent-trials", "1"],
              "(b) 1 trial at a time x 1 worker x 2 threads": ["--workers-per-trial", "1", "--cpus-per-worker", "2",
                                                                "--max-concurrent-trials", "1"],
              "(c) 2 trials at a time x 1 worker x 1 thread": ["--workers-per-trial", "1", "--cpus-per-worker", "1",
                                                                "--max-concurrent-trials", "2"]}
THROUGHPUT_SPACE = """from ray import tune
fixed = {"algorithm": "kd"}
space = {"learning_rate": tune.loguniform(3e-5, 3e-4)}
"""


def trial_times(exp_dir: Path) -> list[dict]:
    """Per trial of a finished search, from Tune's per-epoch rows (unix seconds): "start" (the trial's
    function began: last report's timestamp minus its time_total_s), "first_step" (start plus the
    reported seconds_to_first_step) and "end" (its last report), sorted by start; a trial with no rows is
    left out."""
    times = []
    for _, frame in trial_rows(exp_dir):
        if frame.empty:
            continue
        last = frame.iloc[-1]
        start = float(last["timestamp"]) - float(last["time_total_s"])
        times.append({"start": start, "first_step": start + float(frame["seconds_to_first_step"].dropna().iloc[0]),
                      "end": float(last["timestamp"])})
    return sorted(times, key=lambda t: t["start"])


def search_throughput(args, cache_dir: Path, scratch: Path) -> list[str]:
    """The `throughput` section, markdown rows: trials per hour of the same 6-trial search (kd, learning rate
    searched, one classification epoch on a seeded --throughput-fraction of RTE) in each layout of THROUGHPUT,
    real `raykd.search` runs on this benchmark's cluster, and the per-trial overhead in seconds: submission to
    first step, and (one trial at a time) the gap from one trial's last report to the next trial's first step.
    Raises CalledProcessError when a search fails."""
    task = get_task("rte")
    teacher_dir, described = teacher_for(task, args.teachers, scratch)
    space = scratch / "throughput_space.py"
    space.write_text(THROUGHPUT_SPACE)
    rows = ["| layout | trials per hour | wall time of the 6 trials (s) | submission to first step, mean (s) "
            "| last report to next trial's first step, mean (s) |", "|---|---|---|---|---|"]
    best = None
    for i, (label, extra) in enumerate(THROUGHPUT.items()):
        subprocess.run([sys.executable, "-m", "raykd.search", "--task", "rte", "--data-dir", args.data_dir,
                        "--teacher", teacher_dir, "--space", str(space), "--num-samples", "6", "--max-epochs", "1",
                        "--grace-period", "1", "--train-fraction", str(args.throughput_fraction),
                        "--max-seq-length", str(args.max_seq_length), "--confirm-top", "0", "--export-formats", "hf",
                        "--cache-dir", str(cache_dir), "--out", str(scratch / "throughput"), "--name", f"layout-{i}",
                        "--address", cluster_address(), *extra], check=True)
        times = trial_times(scratch / "throughput" / "rte" / f"layout-{i}")
        wall = max(t["end"] for t in times) - min(t["start"] for t in times)
        per_hour = len(times) / wall * 3600
        startup = statistics.mean(t["first_step"] - t["start"] for t in times)
        one_at_a_time = extra[extra.index("--max-concurrent-trials") + 1] == "1"
        gaps = [b["first_step"] - a["end"] for a, b in zip(times, times[1:])] if one_at_a_time else []
        rows.append(f"| {label} | {per_hour:.0f} | {wall:.0f} | {startup:.1f} | "
                    f"{f'{statistics.mean(gaps):.1f}' if gaps else '- (trials overlap)'} |")
        print(rows[-1], flush=True)
        if best is None or per_hour > best[1]:
            best = (label, per_hour)
    rows += ["", f"Fastest here: {best[0]}. Each search: 6 trials of kd (soft labels), one classification epoch on a "
             f"seeded {args.throughput_fraction:g} of RTE's train set, max {args.max_seq_length} tokens, teacher {described}, "
             "held-out validation split, no confirmation; the teacher-output cache was warm after the first search."]
    return rows
