"""A run's job: what every run against one teacher and data set shares (`Prepared`, made once by
raykd.launch.prepare), and the worker loop's typed `Job` (raykd.training.worker): a student's plan, or a teacher
fine-tuning's recipe, with the references the workers read.

Apart from raykd.launch.prepare, which loads data and builds caches, because a search trial's process (Tune's
trial actor, raykd.tuning.trial) needs only this, and importing data loading (scikit-learn, scipy) would cost
every trial about 1.4 s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import ray

from raykd.method.config import DistillConfig
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


@dataclass
class Job:
    """What every worker of one Ray Train run needs (shipped as train_loop_config {"job": Job}): the student's
    plan (its configuration, shape, layer map and stages: the one source of the configuration) or, to fine-tune a
    teacher, the base and its recipe; the data and the teacher's outputs as object references."""
    task: str                       # task name (raykd.tasks)
    data: ray.ObjectRef             # {"train", "dev"[, "validation"]}: raykd.data.as_columns columns
    tokenizer_dir: str              # the tokenizer to pad with, saved beside every checkpoint
    plan: RunPlan | None = None     # a student's run plan; None when fine-tuning a base
    recipe: DistillConfig | None = None  # the fine-tuning's configuration (only without a plan)
    teacher_dir: str | None = None  # the teacher a student is built from
    base: str | None = None         # the base a teacher is fine-tuned from (resolved name or folder)
    teacher_outputs: dict | None = None  # {array name: ref or memory-mapped file} from the TeacherService
    live_teacher: list[str] | None = None  # teacher fields computed at every step
    importance: ray.ObjectRef | None = None  # the teacher's channel importance, for a narrowed student
    selection: dict | None = None   # {"metric", "mode"} each epoch's `score` holds; None: the task's main metric
    submitted_at: float | None = None  # time.time() at submission, for seconds_to_first_step
    startup: dict | None = None     # raykd.training.startup marks taken before the workers (a trial's process, its job)
    cost: dict | None = None        # {"latency_ms", "params", "flops"} of the student's shape, reported every epoch
    threads: int = 1                # torch threads per worker

    @property
    def config(self) -> DistillConfig:
        """The run's configuration: the plan's (a student) or the recipe (a fine-tuning)."""
        return self.plan.config if self.plan is not None else self.recipe


def make_job(prep: Prepared, run: RunPlan, selection: dict | None = None) -> Job:
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
    return Job(task=prep.task.name, data=prep.data_ref, tokenizer_dir=prep.teacher_dir, plan=run,
               teacher_dir=prep.teacher_dir, teacher_outputs=refs, live_teacher=sorted(live) or None,
               importance=prep.importance if run.narrowed else None, selection=selection, submitted_at=submitted)
