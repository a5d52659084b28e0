"""Teacher memory with 1, 2 and 4 concurrent trials: N TrialProbe actors read the whole teacher-output
cache as a trial's workers do (from the object store, or memory-mapped files), or each load their own
teacher (what a toolkit running the teacher per trial holds); their proportional (PSS) and private memory,
from psutil (`memory` section)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import psutil
import ray

from raykd import models
from raykd.benchmarks.common import MiB, task_data, teacher_for
from raykd.launch.prepare import SHARED_FIELDS
from raykd.tasks import get_task
from raykd.teacher_outputs.disk_cache import DiskCache, cache_key, ensure, open_placed


def memory(pid: int | None = None) -> dict[str, int]:
    """A process's (None: this one's) resident, proportional (shared pages split among their users) and private
    bytes, as {"rss", "pss", "private"} (psutil's memory_full_info: smaps on Linux); zeros when the process has
    ended or is not ours."""
    try:
        info = psutil.Process(pid).memory_full_info()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return {"rss": 0, "pss": 0, "private": 0}
    return {"rss": info.rss, "pss": info.pss, "private": info.uss}


def tree_pss() -> int:
    """Sum of PSS over this process and its descendants (the local Ray cluster), in bytes: every page once."""
    me = psutil.Process()
    return sum(memory(p.pid)["pss"] for p in [me, *me.children(recursive=True)])


@ray.remote(num_cpus=0)
class TrialProbe:
    """Holds the teacher's outputs (or a teacher) as one trial's worker would, and reports memory."""

    def __init__(self):
        self.held, self.before = None, memory()

    def read_cache(self, placed: dict) -> None:
        """Open the placed arrays as a worker does (open_placed) and read every page."""
        self.held = open_placed(placed, ray.get)
        for array in self.held.values():  # touch every page, as an epoch does
            flat = array.reshape(-1)
            for start in range(0, flat.size, 1 << 24):
                float(flat[start:start + (1 << 24)].sum(dtype=np.float32))

    def load_teacher(self, teacher_dir: str, task_name: str) -> None:
        """Hold a teacher of its own, loaded from `teacher_dir`."""
        self.held, _ = models.load_teacher(teacher_dir, get_task(task_name))

    def growth(self) -> dict[str, int]:
        """Bytes by which this actor's rss, pss and private memory grew since it started."""
        now = memory()
        return {k: now[k] - self.before[k] for k in now}


def teacher_memory(args, cache_dir: Path, scratch: Path) -> list[str]:
    """The `memory` section, markdown rows: memory (MiB) added by 1, 2 and 4 TrialProbe actors holding RTE's
    teacher outputs from the object store, memory-mapped, or each its own teacher: the whole process tree's PSS,
    the trials' private memory and their RSS growth. Raises RaykdError on a bad teacher or data."""
    from raykd.teacher_outputs.service import TeacherService

    task = get_task("rte")
    teacher_dir, _ = teacher_for(task, args.teachers, scratch)
    train = task_data(task, teacher_dir, args, cache_dir)["train"]
    cache = DiskCache(cache_dir, cache_key(teacher_dir, train, args.max_seq_length))
    ensure(cache, models.load_teacher(teacher_dir, task)[0], train, SHARED_FIELDS)  # built once, outside the count
    modes = {"one shared cache in the object store": 2**40, "one shared cache, memory-mapped (--teacher-cache-memory 0)": 0,
             "a teacher per trial (no cache)": None}
    rows = ["| teacher outputs held as | trials | memory added, whole process tree (MiB) | of it private to the trials (MiB) "
            "| sum of the trials' RSS growth (MiB) |", "|---|---|---|---|---|"]
    for label, budget in modes.items():
        for n in (1, 2, 4):
            probes = [TrialProbe.remote() for _ in range(n)]
            service = TeacherService.remote(teacher_dir, task.name, cache, budget) if budget is not None else None
            ray.get([p.growth.remote() for p in probes] + ([service.describe.remote()] if service else []))
            before = tree_pss()
            if service:
                placed = ray.get(service.outputs.remote({"train": train}, list(SHARED_FIELDS)))
                ray.get([p.read_cache.remote(placed) for p in probes])
            else:
                ray.get([p.load_teacher.remote(teacher_dir, task.name) for p in probes])
            added = tree_pss() - before  # measured while all N hold their copy
            growth = ray.get([p.growth.remote() for p in probes])
            rows.append(f"| {label} | {n} | {added / MiB:.0f} | {sum(g['private'] for g in growth) / MiB:.0f} | "
                        f"{sum(g['rss'] for g in growth) / MiB:.0f} |")
            print(rows[-1], flush=True)
            for actor in [*probes, *([service] if service else [])]:
                ray.kill(actor)
            time.sleep(2)  # let the object store free the killed service's objects
    rows += ["", f"The RTE cache holds {cache.nbytes() / MiB:.0f} MiB (logits, [CLS], attention maps of 6 layers). Each trial "
             "is a Ray actor that opens the outputs as a worker does (`open_placed`) and reads every page, or loads "
             "its own teacher. 'Memory added' is the growth of the summed PSS of every process of the local Ray cluster "
             "(psutil's memory_full_info, from smaps; a shared page counts once) from before the outputs were placed to when all N "
             "trials hold them; the TeacherService's own teacher is loaded before and not counted. RSS counts a shared "
             "page once per process, which is what `top` would show."]
    return rows
