"""The Ray Tune set-up every raykd search shares (the student search, the teacher search and the
multi-seed confirmation): where a trial runs, how many run at once, Optuna as the searcher and ASHA
counted in classification epochs.

A trial is a function trainable that calls Ray Train's `fit` (Ray 2.60: Train inside Tune is a function,
see Ray's train_tune_interop example); its workers hold the CPUs and GPUs, the trial itself none.
"""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import ray
from ray import tune
from ray.tune import ExperimentAnalysis
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from raykd.training.driver import Scaling
from raykd.tuning.console import SearchConsole
from raykd.tuning.orphans import ReleaseOrphanedGroups

TUNE_NAME = "tune"  # <experiment>/ray/tune: Tune's own experiment folder
# What Tune, Optuna and ASHA rank trials by, always maximised: each epoch's `score` (raykd.selection.selection_score,
# the selection metric with a constant student ranked last), not the metric itself, so that they agree with the
# checkpoint and confirmation choices made from the same `score`.
SCORE, SCORE_MODE = "score", "max"
# Tune's actor reuse: a trial's process (its actor) runs the next trial too, so its start and imports (4.3 s a
# trial on 2 cores, results/bench-startup.md) are paid once per concurrent slot. On for one-worker trials: their
# worker is the trial's own thread, which Tune ends at the report ASHA stopped it after (Tune's function
# trainables report synchronously). Off for Ray Train trials: Tune waits up to 2 s for fit() to notice the stop,
# while the Train workers train on (a tiny trial then completes the epochs ASHA cut; with that wait set to 0 a
# search hung once; issue 50). RAYKD_REUSE_TRIAL_PROCESSES=1 turns it on for every trial, =0 off for every trial.
REUSE_TRIAL_PROCESSES = os.environ.get("RAYKD_REUSE_TRIAL_PROCESSES", "")


def reuse_processes(scaling: Scaling) -> bool:
    """Whether Tune runs each next trial in the process of one that ended (REUSE_TRIAL_PROCESSES)."""
    return {"1": True, "0": False}.get(REUSE_TRIAL_PROCESSES, scaling.in_process)


TRIAL_MEMORY = 256 * 2**20  # bytes every trial's own process reserves


def trainable(function, scaling: Scaling, **parameters):
    """`function(config, **parameters)` as a Tune trainable with a trial's own resources. A trial of Ray Train
    workers (DDP) holds none but a little memory, on the head node: its workers hold the CPUs and GPUs, and the
    trial's driver (and with it Ray Train's controller, which Ray puts on the caller's node) stays on the head
    node, the one node whose loss ends the search anyway. A one-worker trial (`scaling.in_process`) runs its
    worker in its own process, on any node, and holds the worker's CPUs and GPUs itself (with the same
    memory: raykd.tuning.orphans tells Tune's reservations from Ray Train's by it). `parameters` go through
    the object store once (tune.with_parameters), not once per trial."""
    bundle = {"memory": TRIAL_MEMORY}
    if scaling.in_process:
        bundle["CPU"] = scaling.cpus_per_worker
        if scaling.gpus_per_worker:
            bundle["GPU"] = scaling.gpus_per_worker
    else:
        bundle.update({"CPU": 0, "node:__internal_head__": 0.001})
    return tune.with_resources(tune.with_parameters(function, **parameters), tune.PlacementGroupFactory([bundle]))


def concurrency(scaling: Scaling, requested: int | None = None) -> int:
    """Trials at once: `requested`, else as many as the cluster's CPUs (and GPUs, when trials use them) hold
    trials of `scaling` (at least 1). More would only queue, and would make Optuna draw their configurations
    before any result came back. Needs a connected Ray cluster."""
    if requested:
        return requested
    have = ray.cluster_resources()
    fits = have.get("CPU", 1) // (scaling.workers * scaling.cpus_per_worker)
    if scaling.gpus_per_worker > 0:
        fits = min(fits, have.get("GPU", 0) // (scaling.workers * scaling.gpus_per_worker))
    return max(1, int(fits))


def asha(max_epochs: int, grace_period: int, reduction_factor: int = 2) -> ASHAScheduler:
    """ASHA (Li et al., MLSys 2020) whose time is the classification epoch (`cls_epoch`): PID's and SID's
    internal stages report cls_epoch 0, so a staged schedule is first judged at its first classification
    epoch, like every other trial at its own (tests/test_asha_fairness.py)."""
    return ASHAScheduler(time_attr="cls_epoch", max_t=max_epochs, grace_period=grace_period,
                         reduction_factor=reduction_factor)


def banded_asha(bands: dict[str, int], max_epochs: int, grace_period: int, reduction_factor: int = 2):
    """asha's settings inside latency bands (raykd.tuning.bands.BandedASHA): for --objective pareto."""
    from raykd.tuning.bands import BandedASHA

    return BandedASHA(bands, time_attr="cls_epoch", max_t=max_epochs, grace_period=grace_period,
                      reduction_factor=reduction_factor)


def optuna_searcher(space, metric: str | list[str], mode: str | list[str], seed: int, exp_dir: Path, points_to_evaluate=None) -> OptunaSearch:
    """Optuna's TPE over `space` (a Tune dict or a define-by-run function), seeded, its study kept in
    `<exp_dir>/optuna.db` (SQLite) under the experiment's name, so optuna-dashboard can show it. Lists of metrics
    and modes make it multi-objective (TPE handles both; Ray 2.60's OptunaSearch takes lists)."""
    return OptunaSearch(space, metric=metric, mode=mode, seed=seed, points_to_evaluate=points_to_evaluate or None,
                        study_name=Path(exp_dir).name,
                        storage=optuna.storages.RDBStorage(f"sqlite:///{Path(exp_dir) / 'optuna.db'}"))


def tuner(trainable, exp_dir: Path, metric: str, mode: str, searcher, scheduler, num_samples: int,
          max_concurrent: int, console: SearchConsole, scaling: Scaling, max_failures: int = 0) -> tune.Tuner:
    """A new Tuner writing to `<exp_dir>/ray/tune`, printing through `console`, its trials' processes reused
    or not (reuse_processes) and failed trials retried (trial_retries) as `scaling` and `max_failures` say."""
    return tune.Tuner(trainable, tune_config=tune.TuneConfig(
        metric=metric, mode=mode, search_alg=searcher, scheduler=scheduler, num_samples=num_samples,
        max_concurrent_trials=max_concurrent, reuse_actors=reuse_processes(scaling)),
        run_config=run_config(exp_dir, TUNE_NAME, console, trial_retries(scaling, max_failures)))


def trial_retries(scaling: Scaling, max_failures: int) -> int:
    """How often Tune restarts a failed trial: `max_failures` for a one-worker trial (its worker is the trial's
    own process), else 0, Ray Train retrying its workers itself (raykd.training.driver.fit)."""
    return max_failures if scaling.in_process else 0


def run_config(exp_dir: Path, name: str, console: SearchConsole, retries: int = 0) -> tune.RunConfig:
    """Tune's RunConfig for the experiment `<exp_dir>/ray/<name>`: Tune's own console off (verbose=0) for
    raykd's (raykd.tuning.console), the callback that releases what stopped trials' Ray Train left
    reserved (raykd.tuning.orphans), and `retries` restarts of a failed trial (trial_retries; it continues from
    its last checkpoint); --resume restores them with the rest."""
    # Tune's new console prints its experiment box and paths whatever `verbose` says; its legacy one with
    # verbose=0 prints nothing. Read by Tune when the Tuner fits, in this (the driver's) process.
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    return tune.RunConfig(name=name, storage_path=str(Path(exp_dir) / "ray"), verbose=0,
                          callbacks=[ReleaseOrphanedGroups(), console],
                          failure_config=tune.FailureConfig(max_failures=retries))


def started(exp_dir: Path, name: str = TUNE_NAME) -> bool:
    """Whether `<exp_dir>/ray/<name>` holds a Tune experiment that `restore` can continue (Tuner.can_restore):
    False for a search stopped before Tune saved its first state."""
    return tune.Tuner.can_restore(str(Path(exp_dir) / "ray" / name))


def restore(trainable, exp_dir: Path, name: str = TUNE_NAME) -> tune.Tuner:
    """The Tuner of `<exp_dir>/ray/<name>`, restored: finished trials are kept, unfinished and errored
    ones continue from their last checkpoint."""
    return tune.Tuner.restore(str(Path(exp_dir) / "ray" / name), trainable, resume_unfinished=True, resume_errored=True)


def ended(exp_dir: Path, expected: int, name: str = TUNE_NAME) -> bool:
    """True when the experiment `<exp_dir>/ray/<name>` holds at least `expected` trials and each ended
    (terminated: it finished or the scheduler stopped it; or errored), as Tune last saved it.

    Read from the saved experiment state, never from `fit()`'s ResultGrid: on Ctrl-C (or SIGUSR1) Tune saves
    the state, then stops the running trials and marks them TERMINATED in memory (ray.tune.tune.run:
    `runner.checkpoint` before `runner.cleanup`), so the ResultGrid cannot tell an interrupted trial from
    a finished one. In the saved state an interrupted trial is RUNNING, which loads as PENDING. Raises
    ValueError when the folder holds no Tune experiment.
    """
    trials = ExperimentAnalysis(str(Path(exp_dir) / "ray" / name)).trials
    return len(trials) >= expected and all(t.status in (Trial.TERMINATED, Trial.ERROR) for t in trials)
