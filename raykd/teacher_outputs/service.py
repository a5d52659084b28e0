"""The TeacherService: one Ray actor per (teacher, training set) that holds the teacher once and hands
its outputs (from the disk cache, raykd.teacher_outputs.disk_cache) to every worker of every trial."""

from __future__ import annotations

import time

import ray
import torch
from ray.experimental import tqdm_ray

from raykd import models
from raykd.tasks import get_task
from raykd.teacher_outputs.cache import LAYER_ARRAYS
from raykd.teacher_outputs.disk_cache import DiskCache, arrays_of, ensure, place


@ray.remote(num_cpus=0)
class TeacherService:
    """Loads the teacher once and serves its outputs on one training set to every worker of every trial.

    The outputs come from the disk cache (raykd.teacher_outputs.disk_cache), built with a progress bar on first use.
    What fits `memory_budget` bytes goes into the object store as numpy arrays, which every worker on
    the node maps without copying (Ray 2.60, measured: 25 MB in 6-21 ms; a torch tensor would be
    pickled and copied, 3-10x slower); the rest is handed out as file paths that workers
    memory-map. Computing a forward pass per worker request instead would serialise the workers
    behind this one actor.
    """

    def __init__(self, teacher_dir: str, task_name: str, cache: DiskCache, memory_budget: int, threads: int = 1):
        torch.set_num_threads(threads)
        self.teacher, _ = models.load_teacher(teacher_dir, get_task(task_name))
        self.cache, self.memory_budget = cache, memory_budget
        self.placed: dict = {}
        self.placed_layers: dict[str, set[int]] = {}  # field -> teacher layers its placed arrays hold
        self.store_bytes = {}  # array name -> bytes this service holds in the object store
        self.forward_seconds, self.load_seconds = 0.0, 0.0
        self.runs = 1  # the runs this service has served, the current one included

    def describe(self) -> dict:
        """The teacher's shape and size: {"layers", "heads", "width", "params_total", "params_non_embedding"}."""
        c = self.teacher.config
        return {"layers": c.num_hidden_layers, "heads": c.num_attention_heads, "width": c.hidden_size,
                **{f"params_{k}": v for k, v in models.parameter_counts(self.teacher).items()}}

    def new_run(self, cache: DiskCache) -> None:
        """Serve the driver's next run (raykd.launch.prepare keeps the service between runs): use that run's disk
        cache, which holds the same outputs (its key is the same) in the folder the run was given, and count
        forward and loading seconds afresh."""
        self.cache = cache
        self.forward_seconds, self.load_seconds = 0.0, 0.0
        self.runs += 1

    def stats(self) -> dict:
        """Seconds this service spent for the current run in teacher forward passes and in loading the cache, the cache's
        folder and size (bytes), which arrays are in the object store and which memory-mapped, and how many runs
        it has served (`runs`, this one included)."""
        return {"forward_seconds": self.forward_seconds, "load_seconds": self.load_seconds, "runs": self.runs,
                "cache_dir": str(self.cache.dir), "cache_bytes": self.cache.nbytes(),
                "in_object_store": sorted(n for n, v in self.placed.items() if not isinstance(v, str)),
                "memory_mapped": sorted(n for n, v in self.placed.items() if isinstance(v, str))}

    def outputs(self, data: dict, fields: list[str], layers: list[int] | None = None) -> dict:
        """{array name: ObjectRef or file path} of the teacher's outputs on data["train"] for the teacher
        layers `layers` (1-based; None: all); see raykd.teacher_outputs.disk_cache.open_placed. Later calls, from any
        trial, get the same objects; a call that needs layers the cache lacks extends it once."""
        wanted = arrays_of(fields)
        needed = set(layers or range(1, self.teacher.config.num_hidden_layers + 1))
        short = [f for f in fields if f in LAYER_ARRAYS and not needed <= self.placed_layers.get(f, set())]
        if short or not set(wanted) <= set(self.placed):
            started = time.perf_counter()
            arrays, forward = ensure(self.cache, self.teacher, data["train"], fields, progress=tqdm_ray.tqdm,
                                     layers=sorted(needed))
            self.forward_seconds += forward
            self.load_seconds += time.perf_counter() - started - forward
            stale = {n for f in short for n in arrays_of([f]) if n != "lengths"}  # rebuilt with more layers
            new = {n: a for n, a in arrays.items() if n not in self.placed or n in stale}
            for name in new:  # a rebuilt array's old object is released here: its bytes no longer count
                self.store_bytes.pop(name, None)
            placed = place(new, self.memory_budget - sum(self.store_bytes.values()), ray.put)
            self.store_bytes.update({n: new[n].nbytes for n, v in placed.items() if not isinstance(v, str)})
            self.placed.update(placed)
            for f in fields:
                if f in LAYER_ARRAYS:
                    self.placed_layers[f] = self.cache.stored_layers(f)
            print(f"teacher outputs ({', '.join(sorted(fields))}; teacher layers {sorted(needed)}) for "
                  f"{len(data['train']['input_ids'])} examples: {sum(a.nbytes for a in arrays.values()) / 2**20:.0f} MiB, "
                  f"{forward:.1f} s of teacher forward passes, cache {self.cache.dir}", flush=True)
        return {name: self.placed[name] for name in wanted}
