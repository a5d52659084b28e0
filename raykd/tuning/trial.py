"""A search trial: Tune's function trainable, one Ray Train run of one configuration (Ray 2.60: Train
inside Tune is a function that calls fit).

Tune unpickles `run_trial` in a fresh process for every trial and imports this module there, so it imports
only what a trial runs: a command module (raykd.search) would add data loading's imports (scikit-learn,
scipy: 1.4 s on 2 cores) to every trial.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import time
from dataclasses import dataclass
from pathlib import Path

from ray import tune

from raykd.launch import cluster
from raykd.method.config import DistillConfig
from raykd.method.plan import resolve
from raykd.training import startup
from raykd.training.driver import Scaling, fit_trial
from raykd.training.job import Prepared, make_job
from raykd.tuning.trials import run_name


@dataclass
class Experiment:
    """What every trial of a search needs; shipped once to the trials by tune.with_parameters."""
    prep: Prepared
    fixed: dict
    scaling: Scaling
    max_epochs: int
    trials_dir: str
    max_failures: int
    selection: dict  # {"metric", "mode"}: the search's metric, reported as every epoch's `score`
    teacher_config: object  # the teacher's Hugging Face config: each trial's plan is resolved against it
    trial_costs: dict | None = None  # {shape name: {"latency_ms", "params", "flops"}}: reported with every epoch

    def config(self, trial_values: dict) -> DistillConfig:
        """The trial's configuration: a search trial's values, or a confirmation run's
        {"confirm": {"candidate": rank, "values": {...}}} (raykd.tuning.confirm), over the fixed ones."""
        return DistillConfig.merged({"epochs": self.max_epochs}, self.fixed, own_values(trial_values))


def own_values(config: dict) -> dict:
    """A trial's own values from Tune's config: a search trial's as they are, a confirmation run's from under
    {"confirm": {"candidate": rank, "values": {...}}} (raykd.tuning.confirm)."""
    return config["confirm"]["values"] if "confirm" in config else config


_TRIALS_RUN = 0  # trials this process has run


def run_trial(trial_values: dict, experiment: Experiment):
    """The Tune function trainable (Ray 2.60: Train inside Tune is a function that calls fit).

    Raises RaykdError when the cluster can no longer hold the trial's workers (a node was lost), and
    the run's error when it fails (raykd.training.driver.fit_trial): the trial then ends as ERROR and the
    search goes on.
    """
    global _TRIALS_RUN
    # A process Tune reuses (raykd.tuning.tuner.reuse_processes) was started and imported for an earlier trial.
    now = time.time()
    marks = {"trial_process": startup.process_started() if not _TRIALS_RUN else now, "trial_function": now}
    _TRIALS_RUN += 1
    s = experiment.scaling
    cluster.check_fits(s.workers, s.cpus_per_worker, s.gpus_per_worker, "this trial", note_unused_gpus=False)
    run = resolve(experiment.teacher_config, experiment.config(trial_values), s.workers)
    job = make_job(experiment.prep, run, experiment.selection)
    job.cost = (experiment.trial_costs or {}).get(run.shape)
    job.startup = startup.mark(marks, "job")
    try:
        fit_trial(job, s, Path(experiment.trials_dir), run_name(tune.get_context().get_trial_id()), experiment.max_failures)
    finally:
        release_memory()


def release_memory():
    """Give what a finished trial freed back to the system, for the next trial Tune runs in this process: glibc keeps
    freed heap in its arenas, and a reused process grew by 1-1.7 GiB a trial with cached attention maps (the main
    command's 12-trial search on 24 GiB was stopped by Ray's OOM killer). gc first, so the trial's tensors are freed."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)
