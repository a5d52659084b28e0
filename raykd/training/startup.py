"""Where a run's start-up goes: wall-clock marks (time.time(), seconds) from the trial's process start to
the student's first training step, and the durations of the phases between them. The first epoch reports
them (`startup_<phase>_s`), trials.csv keeps them and `python -m raykd.bench --sections startup` tables them.

A mark missing (a run outside Tune has no trial process) leaves its phase out; the next phase then counts
from the last mark there was. A process Ray had started before the trial (an idle worker it reuses) counts
from the previous mark, not from its own start.
"""

from __future__ import annotations

import time

import psutil

# (mark, the phase that ends there) in the order a trial passes them.
PHASES = (
    ("trial_process", None),                 # Tune's trial actor process created (Ray starts a worker process)
    ("trial_function", "trial_imports"),     # run_trial entered: the process's imports and Ray's set-up done
    ("job", "teacher_outputs"),              # the job built: the TeacherService's outputs for this layer map
    ("worker_process", "train_start"),       # a Train worker process created: controller actor, worker group
    ("worker_loop", "worker_imports"),       # train_loop_per_worker entered: imports, the torch process group
    ("data", "data"),                        # the rows from the object store, the tokenizer
    ("model", "model"),                      # the student built from the teacher, a checkpoint restored
    ("ddp", "ddp"),                          # DDP wrapped (prepare_model)
    ("first_step", "loader"),                # the teacher outputs' view, collators, sampler, loader
)


def process_started() -> float:
    """When this process was created, time.time() seconds (psutil)."""
    return psutil.Process().create_time()


def phases(marks: dict[str, float]) -> dict[str, float]:
    """{"startup_<phase>_s": seconds} between consecutive marks present in `marks` ({mark: time.time()}),
    in PHASES order, each at least 0, "startup_total_s" from the first mark to the last, and "startup_at" the
    first mark itself (time.time(): trials ordered by it)."""
    out, last, first = {}, None, None
    for mark, phase in PHASES:
        if mark not in marks:
            continue
        at = marks[mark] if last is None else max(marks[mark], last)
        if last is not None and phase:
            out[f"startup_{phase}_s"] = round(at - last, 3)
        first = at if first is None else first
        last = at
    if first is not None:
        out["startup_total_s"], out["startup_at"] = round(last - first, 3), first
    return out


def mark(marks: dict[str, float], name: str) -> dict[str, float]:
    """`marks` with `name` set to now (time.time()); returns it."""
    marks[name] = time.time()
    return marks
