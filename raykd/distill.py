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

from raykd import checks, cli, cluster, models
from raykd.algorithms import epoch_plan, schedule, teacher_fields
from raykd.config import DistillConfig, add_config_arguments, config_from_args
from raykd.data import load_task_data
from raykd.cache import estimate_bytes
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
    live_fields: tuple[str, ...] = ()  # computed by each worker: the cache would exceed its disk budget
    validation_examples: int = 0  # rows held out from the training set to select on (none: selection on dev)


def check_config(teacher, cfg: DistillConfig, workers: int | None = None) -> dict:
    """Validate a configuration against the teacher before any worker starts (raykd.models.plan, the
    rule every configuration of a search passes too); parameter counts. Raises RaykdError."""
    plan = models.plan(teacher.config, cfg, workers)
    n, mapping = plan["student_layers"], tuple(plan["layer_map"])
    student = models.build_student(teacher, n, mapping, cfg.student_init)
    models.check_heads(teacher, student, "attentions" in teacher_fields(schedule(cfg, n)))
    return {"student_layers": n, "layer_map": list(mapping),
            **{f"student_params_{k}": v for k, v in models.parameter_counts(student).items()}}


def prepare(task: Task, teacher_dir: str, teacher, tokenizer, args, fields=(), layers=None,
            validation_fraction: float = 0.0) -> Prepared:
    """Load and tokenize the data, build the teacher-output cache for `fields` of the teacher layers
    `layers` (None: all; here, in the driver, with a progress bar on the console; nothing when it is
    warm), start Ray and the TeacherService. Prints the cache plan. Call before any run.
    With `validation_fraction` > 0 that share of the training set is held out to select on
    (raykd.data.hold_out); the cache, keyed by the tokenized training inputs, then holds the outputs
    of the remaining training rows only. Raises RaykdError for bad data or an unwritable cache."""
    data = load_task_data(task, cli.data_source(args), tokenizer, args.max_seq_length, args.train_fraction,
                          args.data_seed, args.cache_dir, validation_fraction)
    budget = parse_size(args.teacher_cache_memory, "--teacher-cache-memory")
    key = cache_key(teacher_dir, data["train"], args.max_seq_length)
    cache = DiskCache(Path(args.cache_dir).resolve(), key)
    live_fields = ()
    if fields and not args.live_teacher:
        layers = sorted(layers or range(1, teacher.config.num_hidden_layers + 1))
        sizes = estimate_bytes(teacher.config, [len(x) for x in data["train"]["input_ids"]], fields, layers)
        disk = parse_size(args.teacher_cache_disk, "--teacher-cache-disk")
        if sum(sizes.values()) > disk and "attentions" in sizes:  # the maps are nearly all of it
            live_fields = ("attentions",)
            print(f"teacher-output plan: the attention maps would take {sizes['attentions'] / 2**30:.1f} GiB, over "
                  f"--teacher-cache-disk {args.teacher_cache_disk}: each worker computes them live", flush=True)
        cached = sorted(set(fields) - set(live_fields))
        print(f"teacher-output plan: cache {', '.join(cached)} of teacher layers {layers} for "
              f"{len(data['train']['input_ids'])} examples, {sum(sizes[f] for f in cached) / 2**20:.0f} MiB "
              f"({', '.join(f'{f} {sizes[f] / 2**20:.0f}' for f in cached)}) in {cache.dir}", flush=True)
        _, seconds = ensure(cache, teacher, data["train"], cached, progress=tqdm, layers=layers)
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
                    args.live_teacher, live_fields, len(data.get("validation", {}).get("labels", ())))


def make_job(prep: Prepared, cfg: DistillConfig, fields: set[str]) -> dict:
    """The worker loop's `job` (raykd.train) for one configuration: the teacher outputs of the layers
    its layer map reads, from the TeacherService (which extends the cache if they are missing)."""
    submitted = time.time()  # the run's start, for the time to its first step (before the cache is read)
    refs = None
    cached = set(fields) - set(prep.live_fields)
    live = set(fields) if prep.live_teacher else set(fields) & set(prep.live_fields)
    if cached and not prep.live_teacher:
        depth = models.student_depth(prep.teacher_info["layers"], cfg.student_layers)
        layers = sorted(set(models.layer_map(cfg.layer_map, prep.teacher_info["layers"], depth)))
        refs = ray.get(prep.service.outputs.remote(prep.data_ref, sorted(cached), layers))
    return {"hparams": cfg.to_dict(), "task": prep.task.name,
            "model": {"kind": "student", "teacher_dir": prep.teacher_dir},
            "data": prep.data_ref, "teacher_outputs": refs, "tokenizer_dir": prep.teacher_dir,
            "live_teacher": sorted(live) or None, "submitted_at": submitted,
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
    checks.check_arguments(args)
    cfg = config_from_args(args)
    out = args.out or Path("results/runs") / f"{task.name}-{cfg.algorithm}-{time.strftime('%Y%m%d-%H%M%S')}"
    cli.check_output_dir(out)
    teacher_dir = str(Path(args.teacher).resolve())  # Ray workers run in another working directory
    teacher, tokenizer = models.load_teacher(teacher_dir, task, args.max_seq_length, verbose=True)
    sizes = check_config(teacher, cfg, args.workers)
    checks.check_data(task, args)  # bad rows or an unusable dev set: before Ray starts
    scaling = cli.scaling(args)
    stages = schedule(cfg, sizes["student_layers"])
    started = time.perf_counter()
    cluster.connect(args.address, verbose=args.verbose)
    cluster.check_fits(scaling.workers, scaling.cpus_per_worker, scaling.gpus_per_worker, "the run")
    prep = prepare(task, teacher_dir, teacher, tokenizer, args, teacher_fields(stages), sizes["layer_map"])
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
