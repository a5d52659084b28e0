"""Search throughput (`throughput` section): trials per hour of one TRIALS-trial RTE search in layouts of the
cores, real `raykd.search` runs: one trial at a time of 2 Ray Train workers x 1 thread (the default before
issue 50), and two one-worker trials at once, each worker run inside its trial's process
(raykd.training.session.TrialSession, the default now) and, as before, on Ray Train; with the per-trial
overhead: submission to first step, and the gap between consecutive trials."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

from raykd.benchmarks.common import cluster_address, teacher_for
from raykd.tasks import get_task
from raykd.tuning.trials import trial_rows

TRIALS = 12
# label -> (environment, flags) of the search
THROUGHPUT = {"(a) 1 trial at a time x 2 Ray Train workers x 1 thread":
              ({}, ["--workers-per-trial", "2", "--cpus-per-worker", "1", "--max-concurrent-trials", "1"]),
              "(b) 2 trials at a time x 1 worker x 1 thread, on Ray Train (before)":
              ({"RAYKD_ONE_WORKER_ON_TRAIN": "1"},
               ["--workers-per-trial", "1", "--cpus-per-worker", "1", "--max-concurrent-trials", "2"]),
              "(c) 2 trials at a time x 1 worker x 1 thread, in the trial's process (the default)":
              ({}, ["--workers-per-trial", "1", "--cpus-per-worker", "1", "--max-concurrent-trials", "2"])}
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
                      "end": float(last["timestamp"]), "epochs": len(frame)})
    return sorted(times, key=lambda t: t["start"])


def search_throughput(args, cache_dir: Path, scratch: Path) -> list[str]:
    """The `throughput` section, markdown rows: trials per hour of the same TRIALS-trial search (kd, learning rate
    searched, --throughput-epochs classification epochs under ASHA on a seeded --throughput-fraction of RTE) in each
    chosen layout of THROUGHPUT (--throughput-layouts),
    real `raykd.search` runs on this benchmark's cluster, and the per-trial overhead in seconds: submission to
    first step, and (one trial at a time) the gap from one trial's last report to the next trial's first step.
    Raises CalledProcessError when a search fails."""
    task = get_task("rte")
    teacher_dir, described = teacher_for(task, args.teachers, scratch)
    space = scratch / "throughput_space.py"
    space.write_text(THROUGHPUT_SPACE)

    def search(name: str, trials: int, epochs: int, env: dict, extra: list[str]):
        subprocess.run([sys.executable, "-m", "raykd.search", "--task", "rte", "--data-dir", args.data_dir,
                        "--teacher", teacher_dir, "--space", str(space), "--num-samples", str(trials),
                        "--max-epochs", str(epochs), "--grace-period", "1",
                        "--train-fraction", str(args.throughput_fraction), "--max-seq-length", str(args.max_seq_length),
                        "--confirm-top", "0", "--export-formats", "hf", "--cache-dir", str(cache_dir),
                        "--out", str(scratch / "throughput"), "--name", name, "--address", cluster_address(), *extra],
                        check=True, env={**os.environ, **env})

    # A one-trial, one-epoch search first builds the teacher-output cache, so that no layout pays its build.
    search("warm-up", 1, 1, *THROUGHPUT[next(iter(THROUGHPUT))])
    # ASHA's stops depend on the order trials report in, so layouts may train different numbers of epochs: epochs
    # per hour is shown beside trials per hour.
    rows = [f"| layout | trials per hour | against the first | epochs trained | epochs per hour | against the first | "
            f"wall time of the {TRIALS} trials (s) | "
            "submission to first step, mean (s) | last report to next trial's first step, mean (s) |",
            "|---|---|---|---|---|---|---|---|---|"]
    best = base = None
    for i, (label, (env, extra)) in enumerate(THROUGHPUT.items()):
        if label[1] not in args.throughput_layouts:
            continue
        search(f"layout-{i}", TRIALS, args.throughput_epochs, env, extra)
        times = trial_times(scratch / "throughput" / "rte" / f"layout-{i}")
        wall = max(t["end"] for t in times) - min(t["start"] for t in times)
        per_hour = len(times) / wall * 3600
        startup = statistics.mean(t["first_step"] - t["start"] for t in times)
        one_at_a_time = extra[extra.index("--max-concurrent-trials") + 1] == "1"
        gaps = [b["first_step"] - a["end"] for a, b in zip(times, times[1:])] if one_at_a_time else []
        epochs = sum(t["epochs"] for t in times)
        base = base or (per_hour, epochs / wall * 3600)
        rows.append(f"| {label} | {per_hour:.0f} | {per_hour / base[0]:.2f}x | {epochs} | {epochs / wall * 3600:.0f} | "
                    f"{epochs / wall * 3600 / base[1]:.2f}x | {wall:.0f} | {startup:.1f} | "
                    f"{f'{statistics.mean(gaps):.1f}' if gaps else '- (trials overlap)'} |")
        print(rows[-1], flush=True)
        if best is None or per_hour > best[1]:
            best = (label, per_hour)
    per_trial = "one classification epoch" if args.throughput_epochs == 1 else \
        f"up to {args.throughput_epochs} classification epochs (ASHA, grace period 1)"
    share = "all" if args.throughput_fraction == 1 else f"a seeded {args.throughput_fraction:g}"
    rows += ["", f"Fastest here: {best[0]}. Each search: {TRIALS} trials of kd (soft labels), {per_trial} on {share} "
             f"of RTE's train set, max {args.max_seq_length} tokens, teacher {described}, "
             "held-out validation split, no confirmation; the teacher-output cache built by a one-trial search before them."]
    return rows
