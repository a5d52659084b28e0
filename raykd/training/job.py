"""A run's job: what every run against one teacher and data set shares (`Prepared`, made once by
raykd.launch.prepare), and each configuration's plan turned into the worker loop's job (raykd.training.worker).

Apart from raykd.launch.prepare, which loads data and builds caches, because a search trial's process (Tune's
trial actor, raykd.tuning.trial) needs only this, and importing data loading (scikit-learn, scipy) would cost
every trial about 1.4 s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import ray

from raykd.method.plan import RunPlan
from raykd.tasks import Task


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
    importance: ray.ObjectRef | None = None  # the teacher's channel importance (raykd.student.pruning), for narrowed students


def make_job(prep: Prepared, run: RunPlan, selection: dict | None = None) -> dict:
    """The worker loop's `job` (raykd.training.worker) for one configuration's plan: the teacher outputs of the
    layers its layer map reads, from the TeacherService (which extends the cache if they are missing).
    `selection` {"metric", "mode"}: the search's metric, which each epoch's `score` holds (None: the
    task's main metric on the selection split)."""
    submitted = time.time()  # the run's start, for the time to its first step (before the cache is read)
    refs = None
    cached = set(run.teacher_fields) - set(prep.live_fields)
    live = set(run.teacher_fields) if prep.live_teacher else set(run.teacher_fields) & set(prep.live_fields)
    if cached and not prep.live_teacher:
        refs = ray.get(prep.service.outputs.remote(prep.data_ref, sorted(cached), sorted(set(run.layer_map))))
    return {"hparams": run.config.to_dict(), "plan": run, "task": prep.task.name,
            "model": {"kind": "student", "teacher_dir": prep.teacher_dir},
            "data": prep.data_ref, "teacher_outputs": refs, "tokenizer_dir": prep.teacher_dir,
            "live_teacher": sorted(live) or None, "submitted_at": submitted, "selection": selection,
            "importance": prep.importance if run.narrowed else None}
