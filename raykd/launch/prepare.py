"""Preparing runs against one teacher and data set, shared by `distill` (one run) and `search` (many):
the data loaded once into the object store, the teacher-output plan (what is cached, its size, what is
computed live) and its cache built in the driver, the TeacherService started. What that yields
(`Prepared`) and each configuration's job are in raykd.training.job."""

from __future__ import annotations

import uuid
from pathlib import Path

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tqdm import tqdm

from raykd import errors, models
from raykd.data import load_task_data
from raykd.launch import cli, cluster
from raykd.student import pruning
from raykd.tasks import Task
from raykd.teacher_outputs.cache import estimate_bytes
from raykd.teacher_outputs.disk_cache import DiskCache, cache_key, ensure, parse_size
from raykd.teacher_outputs.service import TeacherService
from raykd.training.job import Prepared

# What a search caches up front for the whole experiment; a trial that needs full hidden states adds them once.
SHARED_FIELDS = ("logits", "attentions", "cls")

# The last TeacherService started, {(cache key, memory budget, threads): (actor name, handle)}, kept for the
# life of the driver process. Ray ends an actor, named or not, when its last handle goes: each run from one
# process (a script or notebook calling several commands, the tests) started its own service, about 10
# CPU-seconds (torch, transformers, the teacher) on 2 cores. A run on another teacher or data set replaces
# it, so one teacher at a time is held.
_KEPT: dict = {}


def _alive(name: str) -> bool:
    """Whether this cluster has a live actor `name` (the kept service may have died, or the cluster restarted)."""
    try:
        ray.get_actor(name)
        return True
    except ValueError:
        return False


def prepare(task: Task, teacher_dir: str, teacher, tokenizer, args, fields=(), layers=None,
            validation_fraction: float = 0.0, widths: bool = False) -> Prepared:
    """Load and tokenize the data, build the teacher-output cache for `fields` of the teacher layers
    `layers` (None: all; here, in the driver, with a progress bar on the console; nothing when it is
    warm), start Ray and the TeacherService. Prints the cache plan. Call before any run.
    With `validation_fraction` > 0 that share of the training set is held out to select on
    (raykd.splits.hold_out); the cache, keyed by the tokenized training inputs, then holds the outputs
    of the remaining training rows only. With `widths` (a run narrows its student) the teacher's channel
    importance is measured on the training rows (raykd.student.pruning.measure, a few seconds) and shipped with
    every job. Raises RaykdError for bad data or an unwritable cache."""
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
        cache.check_space({f: sizes[f] for f in cached})  # before the first write: a full disk is one line, not SIGBUS
        errors.at("teacher outputs")  # an entry left half-written is rebuilt, never read (DiskCache)
        _, seconds = ensure(cache, teacher, data["train"], cached, progress=tqdm, layers=layers)
        if seconds:
            print(f"teacher outputs ({', '.join(sorted(fields))}) computed in {seconds:.1f} s into {cache.dir}", flush=True)
    cluster.connect(args.address, verbose=getattr(args, "verbose", True))
    # One service per (teacher, data, memory budget, threads): a second run from this driver reuses it and its
    # objects (_KEPT). It lives on the driver's node: the objects it puts die with it, and a lost worker node
    # must not take them.
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    threads = max(1, int(args.cpus_per_worker * args.workers))
    kept = _KEPT.get((key, budget, threads))
    if kept and _alive(kept[0]):
        service = kept[1]
        service.new_run.remote(cache)  # this run's cache folder (same key: same outputs); stats for this run only
    else:
        # A fresh name each time: a service let go of ends a moment later, and its name with it.
        name = f"teacher-{key}-{uuid.uuid4().hex[:6]}"
        service = TeacherService.options(name=name, scheduling_strategy=here).remote(
            str(teacher_dir), task.name, cache, budget, threads)
        _KEPT.clear()  # the handle that created an actor keeps it alive; one fetched by name would not
        _KEPT[(key, budget, threads)] = (name, service)
    info = {"layers": teacher.config.num_hidden_layers, "heads": teacher.config.num_attention_heads,
            **{f"teacher_params_{k}": v for k, v in models.parameter_counts(teacher).items()}}
    importance = None
    if widths:
        importance = ray.put(pruning.measure(teacher, data["train"], tokenizer.pad_token_id))
    return Prepared(task, str(teacher_dir), info, ray.put(data), len(data["train"]["labels"]), service,
                    args.live_teacher, live_fields, len(data.get("validation", {}).get("labels", ())), importance)
