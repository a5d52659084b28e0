"""Seconds per epoch on RTE, each a real `raykd.distill` run (distill's default, one worker in the command's own
process, or `--workers` Ray Train workers on the benchmark's cluster): plain fine-tuning of the student
(the floor), distillation with the warm cache, with the teacher at every step and with the cache over its
disk budget, with the paper's full loss (algorithm `all`: attention KL + [CLS] cosine + soft labels), and
each run's seconds from submission to its first training step (`epochs` section); the same in fp32 and bf16,
shuffled and length-grouped (`precision` section)."""

from __future__ import annotations

import statistics
from pathlib import Path

from raykd.benchmarks.common import distill_flags, distill_run, task_data, teacher_for
from raykd.tasks import get_task

RUNS = {"student fine-tuning (floor)": ["--algorithm", "finetune"],
        "distillation, warm cache": ["--algorithm", "all"],
        "distillation, teacher at every step": ["--algorithm", "all", "--live-teacher"],
        "distillation, cache over its disk budget (attention maps live)": ["--algorithm", "all", "--teacher-cache-disk", "1MiB"]}

SPEED_RUNS = {"student fine-tuning, fp32, shuffled (the old floor)": ["--algorithm", "finetune", "--precision", "fp32", "--no-group-by-length"],
              "student fine-tuning, bf16, length-grouped (the new floor)": ["--algorithm", "finetune", "--precision", "bf16"],
              "student fine-tuning, fp32, length-grouped (the fp32 floor)": ["--algorithm", "finetune", "--precision", "fp32"],
              "distillation, fp32, shuffled (before)": ["--precision", "fp32", "--no-group-by-length"],
              "distillation, fp32, length-grouped": ["--precision", "fp32"],
              "distillation, bf16, shuffled": ["--precision", "bf16", "--no-group-by-length"],
              "distillation, bf16, length-grouped": ["--precision", "bf16"],
              "distillation, bf16, length-grouped, cache over its disk budget (attention maps live)":
                  ["--precision", "bf16", "--teacher-cache-disk", "1MiB"]}
OLD_FLOOR, BF16_FLOOR, FP32_FLOOR = list(SPEED_RUNS)[:3]  # student fine-tuning: the old floor, and each precision's


def layout(args) -> str:
    """The timed runs' workers, for the tables' notes."""
    if args.workers == 1:
        return "1 worker in the command's own process x every CPU" + (f" ({args.gpus_per_worker:g} GPU)" if args.gpus_per_worker else "")
    return f"{args.workers} Ray Train workers x " + (f"(1 CPU, {args.gpus_per_worker:g} GPU)" if args.gpus_per_worker else "1 CPU")


def timed_run(args, argv: list[str]) -> dict:
    """One timed `raykd.distill` run's result.json: with one worker a command on the local cluster it starts itself
    (distill's default: the worker in its own process), else on the benchmark's cluster (Ray Train workers)."""
    return distill_run(argv, own_cluster=args.workers == 1)


def each_epoch(record: dict) -> tuple[float, str]:
    """(mean seconds per epoch, the table cell "mean (each epoch's seconds)") of a raykd.distill result.json."""
    seconds = [h["epoch_seconds"] for h in record["history"]]
    return statistics.mean(seconds), f"{statistics.mean(seconds):.1f} ({', '.join(f'{s:.1f}' for s in seconds)})"


def epoch_times(args, cache_dir: Path, scratch: Path) -> list[str]:
    """The `epochs` section, markdown rows: seconds per epoch of each of RUNS on RTE (real raykd.distill runs
    of --epochs epochs, --workers workers), its ratio to student fine-tuning, and seconds from submission to
    the first training step. Raises CalledProcessError when a run fails."""
    task = get_task("rte")
    teacher_dir, _ = teacher_for(task, args.teachers, scratch)
    common = [*distill_flags(args, teacher_dir, cache_dir, args.epochs),
              "--workers", str(args.workers), "--gpus-per-worker", str(args.gpus_per_worker)]
    records = {label: timed_run(args, [*common, *extra, "--out", str(scratch / f"run-{i}")])
               for i, (label, extra) in enumerate(RUNS.items())}
    train = task_data(task, teacher_dir, args, cache_dir)["train"]
    stats = records["distillation, warm cache"]["teacher_service"]
    floor, _ = each_epoch(records["student fine-tuning (floor)"])
    rows = ["| run | seconds per epoch (each epoch) | ratio to the floor | seconds from submission to first step |",
            "|---|---|---|---|"]
    for label, record in records.items():
        mean, cell = each_epoch(record)
        rows.append(f"| {label} | {cell} | {mean / floor:.2f}x | {record['history'][0]['seconds_to_first_step']:.1f} |")
        print(rows[-1], flush=True)
    rows += ["", f"RTE train set ({len(train['input_ids'])} examples), {layout(args)}, global batch 32, "
             f"{args.epochs} epochs each, 6 -> 3 layers (map 2,4,6). Teacher forward passes by the TeacherService in "
             f"this process tree: {stats['forward_seconds']:.1f} s (its disk cache was built in the cache section; reading "
             f"and checking it took {stats['load_seconds']:.1f} s)."]
    return rows


def precision_times(args, cache_dir: Path, scratch: Path) -> list[str]:
    """The `precision` section, markdown rows: seconds per epoch of student fine-tuning and of distillation
    (algorithm all, warm cache) in fp32 and bf16, with and without length-grouped batches (SPEED_RUNS), side by
    side: the ratio of each to the old fp32 floor and of each distillation to the floor of its own precision,
    examples/s and the last epoch's dev accuracy. Raises CalledProcessError when a run fails."""
    task = get_task("rte")
    teacher_dir, described = teacher_for(task, args.teachers, scratch)
    common = [*distill_flags(args, teacher_dir, cache_dir, args.epochs), "--workers", str(args.workers),
              "--algorithm", "all", "--gpus-per-worker", str(args.gpus_per_worker)]
    rows = ["| run | seconds per epoch (each epoch) | ratio to the old floor | ratio to its own floor | examples/s "
            "| dev accuracy (last epoch) |", "|---|---|---|---|---|---|"]
    means = {}
    for i, (label, extra) in enumerate(SPEED_RUNS.items()):
        record = timed_run(args, [*common, *extra, "--out", str(scratch / f"speed-{i}")])  # later flags win
        means[label], cell = each_epoch(record)
        # a distillation's own floor: fine-tuning in its precision with its batching (the old floor for shuffled fp32)
        own = (means[label] if "distillation" not in label else means[OLD_FLOOR] if "fp32, shuffled" in label
               else means[FP32_FLOOR] if "fp32" in label else means[BF16_FLOOR])
        rows.append(f"| {label} | {cell} | {means[label] / means[OLD_FLOOR]:.2f}x | {means[label] / own:.2f}x | "
                    f"{statistics.mean(h['examples_per_second'] for h in record['history']):.0f} | "
                    f"{record['history'][-1]['dev_accuracy']:.4f} |")
        print(rows[-1], flush=True)
    rows += ["", f"RTE train set, teacher {described}, {layout(args)}, global batch 32, "
             f"{args.epochs} epochs each, 6 -> 3 layers (map 2,4,6), the paper's full loss (algorithm all) for the "
             "distillations, warm teacher-output cache. 'Its own floor' is student fine-tuning in the same precision "
             "and batching (fp32 shuffled for the shuffled fp32 row, fp32 grouped for the grouped fp32 row, bf16 grouped "
             "for bf16 rows; the shuffled bf16 row against bf16 grouped). One seed: the dev accuracies show that each "
             "run trains, not which is better (results/parity.md compares fp32 and bf16 students over seeds)."]
    return rows
