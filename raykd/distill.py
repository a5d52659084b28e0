"""One distillation run.

    python -m raykd.distill --task rte --data-dir ../shared/data/glue \
        --teacher results/teachers/rte-minilm --algorithm sid

The teacher is held by a TeacherService actor, which reads its outputs for the training set from the
disk cache, or computes them once there. The student trains in DDP on `--workers` Ray Train workers; with
one worker (the default) on the local cluster, in this process with every local CPU as a torch thread (no Ray
Train controller or worker process to start: on 2 cores 14 s less start-up and 0.80x the epoch of 2 DDP
workers, results/bench-peer.md). The best classification epoch's student is saved with
`save_pretrained` in `<out>/student` and the run's record in `<out>/result.json`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import ray

from raykd import errors, files, models
from raykd.errors import exits_cleanly
from raykd.method.config import add_config_arguments, config_from_args
from raykd.method.plan import resolve
from raykd.launch import checks, cli, cluster
from raykd.launch.prepare import prepare
from raykd.tasks import get_task
from raykd.training.driver import fit_and_export
from raykd.training.epochs import epoch_log, history
from raykd.training.job import make_job
from raykd.training.progress import EpochProgress


def parser() -> argparse.ArgumentParser:
    """The distill command's argument parser: every option with its default (`--help`)."""
    p = argparse.ArgumentParser(prog="python -m raykd.distill", description="Distill a fine-tuned teacher into a smaller student on Ray Train.")
    cli.add_data_arguments(p)
    p.add_argument("--teacher", required=True, help="fine-tuned teacher folder (from python -m raykd.teacher)")
    p.add_argument("--out", type=Path, help="run folder (default: results/runs/<task>-<algorithm>-<time>)")
    cli.add_teacher_cache_arguments(p)
    cli.add_ray_arguments(p, workers=1, cpus_per_worker=None,
                          workers_help="Ray Train DDP workers; one on the local cluster trains in this process")
    add_config_arguments(p)
    return p


def parse_args(argv=None):
    """The distill command's flags: data, --teacher, --out, teacher cache, Ray and every DistillConfig field;
    --cpus-per-worker resolved (cli.default_cpus_per_worker)."""
    args = parser().parse_args(argv)
    args.cpus_per_worker = cli.default_cpus_per_worker(args)
    return args


@exits_cleanly
def main(argv=None):
    """`python -m raykd.distill`: one distillation run; returns its record (result.json). Raises RaykdError for
    bad flags, teacher or data, or a run that fails or leaves no usable model."""
    args = parse_args(argv)
    task = get_task(args.task)
    checks.check_arguments(args)
    cfg = config_from_args(args)
    out = args.out or Path("results/runs") / f"{task.name}-{cfg.algorithm}-{time.strftime('%Y%m%d-%H%M%S')}"
    cli.check_output_dir(out)
    teacher_dir = str(Path(args.teacher).resolve())  # Ray workers run in another working directory
    teacher, tokenizer = models.load_teacher(teacher_dir, task, args.max_seq_length, verbose=True)
    run = resolve(teacher.config, cfg, args.workers)  # every fact about the run, checked once
    checks.check_data(task, args)  # bad rows or an unusable dev set: before Ray starts
    scaling = cli.scaling(args)
    started = time.perf_counter()
    cluster.connect(args.address, verbose=args.verbose)
    cluster.check_fits(scaling.workers, scaling.cpus_per_worker, scaling.gpus_per_worker, "the run")
    prep = prepare(task, teacher_dir, teacher, tokenizer, args, run.teacher_fields, run.layer_map, widths=run.narrowed)
    out = cli.fresh_output_dir(out)  # only once every input has been checked; marked unfinished until result.json
    errors.at("training", f"nothing finished; run the same command again (it replaces {out})")
    cluster.log_workers_to(out / "ray-workers.log", args.verbose)
    print(f"teacher: {prep.teacher_info['layers']} layers, {prep.teacher_info['teacher_params_total']:,} parameters "
          f"({prep.teacher_info['teacher_params_non_embedding']:,} non-embedding); student: {run.shape} "
          f"(layers {list(run.layer_map)}), {run.student_params_total:,} ({run.student_params_non_embedding:,} non-embedding)")
    with EpochProgress(epoch_log(out / "ray", "distill"), f"distill {task.name} {cfg.algorithm}",
                       run.epochs, task.main_metric):
        best = fit_and_export(make_job(prep, run), scaling, out / "ray", "distill", out / "student",
                              local=not args.address, max_failures=args.max_failures, what="distillation")
    record = {"task": task.name, "teacher": str(args.teacher), "config": cfg.to_dict(),
              "precision_used": best.get("precision_used"), **prep.teacher_info, **run.sizes(),
              "best": best, "history": history(epoch_log(out / "ray", "distill")), "train_examples": prep.train_examples,
              "seconds": round(time.perf_counter() - started, 1), "teacher_service": ray.get(prep.service.stats.remote()),
              "command": cli.command_line("distill", argv)}
    files.atomic_json(out / "result.json", record)
    cli.finished(out)
    metric = f"dev_{task.main_metric}"
    print(f"student saved to {out / 'student'}: {metric} {best[metric]:.4f} (epoch {best['epoch']}), {record['seconds']:.0f} s")
    return record


if __name__ == "__main__":
    main()
