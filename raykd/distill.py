"""One distillation run on Ray Train.

    python -m raykd.distill --task rte --data-dir ../shared/data/glue \
        --teacher results/teachers/rte-minilm --algorithm sid --workers 2

The teacher is held by a TeacherService actor, which reads its outputs for the training set from the
disk cache, or computes them once there;
the student trains in DDP on `--workers` Ray Train workers; the best classification epoch's student
is saved with `save_pretrained` in `<out>/student` and the run's record in `<out>/result.json`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tqdm import tqdm

from raykd import cli, cluster, models
from raykd.algorithms import epoch_plan, schedule, teacher_fields
from raykd.config import DistillConfig, add_config_arguments, config_from_args
from raykd.data import load_task_data
from raykd.disk_cache import DiskCache, cache_key, ensure, parse_size
from raykd.errors import RaykdError, exits_cleanly
from raykd.progress import EpochProgress
from raykd.tasks import Task, get_task
from raykd.teacher import TeacherService
from raykd.trainer import epoch_log, export_best, fit, history


@dataclass
class Prepared:
    """What every run against one teacher and data set shares."""
    task: Task
    teacher_dir: str
    teacher_info: dict
    data_ref: ray.ObjectRef
    train_examples: int
    service: ray.actor.ActorHandle
    live_teacher: bool = False


def check_config(teacher, cfg: DistillConfig) -> dict:
    """Validate a configuration against the teacher before any worker starts; parameter counts."""
    n = models.student_depth(teacher.config.num_hidden_layers, cfg.student_layers)
    mapping = models.layer_map(cfg.layer_map, teacher.config.num_hidden_layers, n)
    student = models.build_student(teacher, n, mapping, cfg.student_init)
    models.check_heads(teacher, student, "attentions" in teacher_fields(schedule(cfg, n)))
    return {"student_layers": n, "layer_map": list(mapping),
            **{f"student_params_{k}": v for k, v in models.parameter_counts(student).items()}}


def prepare(task: Task, teacher_dir: str, teacher, tokenizer, args, fields=()) -> Prepared:
    """Load and tokenize the data, build the teacher-output cache for `fields` (here, in the driver,
    with a progress bar on the console; nothing when it is warm), start Ray and the TeacherService.
    Call before any run. Raises RaykdError for bad data or an unwritable cache."""
    data = load_task_data(task, cli.data_source(args), tokenizer, args.max_seq_length, args.train_fraction,
                          args.data_seed, args.cache_dir)
    budget = parse_size(args.teacher_cache_memory)
    key = cache_key(teacher_dir, data["train"], args.max_seq_length)
    cache = DiskCache(Path(args.cache_dir).resolve(), key)
    if fields and not args.live_teacher:
        _, seconds = ensure(cache, teacher, data["train"], fields, progress=tqdm)
        if seconds:
            print(f"teacher outputs ({', '.join(sorted(fields))}) computed in {seconds:.1f} s into {cache.dir}", flush=True)
    cluster.connect(args.address, verbose=getattr(args, "verbose", True))
    # One service per (teacher, data): a second run in the same cluster reuses its objects. It lives on
    # the driver's node: the objects it puts die with it, and a lost worker node must not take them.
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    service = TeacherService.options(name=f"teacher-{key}", get_if_exists=True, scheduling_strategy=here).remote(
        str(teacher_dir), task.name, cache, budget,
        max(1, int(args.cpus_per_worker * args.workers)))
    info = {"layers": teacher.config.num_hidden_layers, "heads": teacher.config.num_attention_heads,
            **{f"teacher_params_{k}": v for k, v in models.parameter_counts(teacher).items()}}
    return Prepared(task, str(teacher_dir), info, ray.put(data), len(data["train"]["labels"]), service,
                    args.live_teacher)


def make_job(prep: Prepared, cfg: DistillConfig, fields: set[str]) -> dict:
    submitted = time.time()  # the run's start, for the time to its first step (before the cache is read)
    refs = None
    if fields and not prep.live_teacher:
        refs = ray.get(prep.service.outputs.remote(prep.data_ref, sorted(fields)))
    return {"hparams": cfg.to_dict(), "task": prep.task.name,
            "model": {"kind": "student", "teacher_dir": prep.teacher_dir},
            "data": prep.data_ref, "teacher_outputs": refs, "tokenizer_dir": prep.teacher_dir,
            "live_teacher": sorted(fields) if prep.live_teacher else None, "submitted_at": submitted,
            "teacher_layers": prep.teacher_info["layers"], "teacher_heads": prep.teacher_info["heads"]}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m raykd.distill", description="Distill a fine-tuned teacher into a smaller student on Ray Train.")
    cli.add_data_arguments(p)
    p.add_argument("--teacher", required=True, help="fine-tuned teacher folder (from python -m raykd.teacher)")
    p.add_argument("--out", type=Path, help="run folder (default: results/runs/<task>-<algorithm>-<time>)")
    cli.add_teacher_cache_arguments(p)
    cli.add_ray_arguments(p)
    add_config_arguments(p)
    return p.parse_args(argv)


@exits_cleanly
def main(argv=None):
    args = parse_args(argv)
    task = get_task(args.task)
    cfg = config_from_args(args)
    out = args.out or Path("results/runs") / f"{task.name}-{cfg.algorithm}-{time.strftime('%Y%m%d-%H%M%S')}"
    cli.check_output_dir(out)
    teacher_dir = str(Path(args.teacher).resolve())  # Ray workers run in another working directory
    teacher, tokenizer = models.load_teacher(teacher_dir, task)
    sizes = check_config(teacher, cfg)
    scaling = cli.scaling(args)
    stages = schedule(cfg, sizes["student_layers"])
    started = time.perf_counter()
    cluster.connect(args.address, verbose=args.verbose)
    cluster.check_fits(scaling.workers, scaling.cpus_per_worker, scaling.gpus_per_worker, "the run")
    prep = prepare(task, teacher_dir, teacher, tokenizer, args, teacher_fields(stages))
    out = cli.fresh_output_dir(out)  # only once every input has been checked
    cluster.log_workers_to(out / "ray-workers.log", args.verbose)
    print(f"teacher: {prep.teacher_info['layers']} layers, {prep.teacher_info['teacher_params_total']:,} parameters "
          f"({prep.teacher_info['teacher_params_non_embedding']:,} non-embedding); student: {sizes['student_layers']} "
          f"layers {sizes['layer_map']}, {sizes['student_params_total']:,} ({sizes['student_params_non_embedding']:,} non-embedding)")
    with EpochProgress(epoch_log(out / "ray", "distill"), f"distill {task.name} {cfg.algorithm}",
                       len(epoch_plan(stages)), task.main_metric):
        result = fit(make_job(prep, cfg, teacher_fields(stages)), scaling, out / "ray", "distill",
                     max_failures=args.max_failures)
    if result.error:
        raise RaykdError(f"distillation failed: {result.error}; see the Ray logs under {out / 'ray'}")
    best = export_best(result, out / "student")
    record = {"task": task.name, "teacher": str(args.teacher), "config": cfg.to_dict(), **prep.teacher_info, **sizes,
              "best": best, "history": history(epoch_log(out / "ray", "distill")), "train_examples": prep.train_examples,
              "seconds": round(time.perf_counter() - started, 1), "teacher_service": ray.get(prep.service.stats.remote()),
              "command": "python -m raykd.distill " + shlex.join(sys.argv[1:] if argv is None else argv)}
    (out / "result.json").write_text(json.dumps(record, indent=2, default=str))
    metric = f"dev_{task.main_metric}"
    print(f"student saved to {out / 'student'}: {metric} {best[metric]:.4f} (epoch {best['epoch']}), {record['seconds']:.0f} s")
    return record


if __name__ == "__main__":
    main()
