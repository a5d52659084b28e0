"""Running the worker loop on Ray Train, and taking the best model out of the result."""

from __future__ import annotations

import dataclasses
import errno
import json
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from ray.train.v2._internal.callbacks.datasets import DatasetsCallback
from ray.tune.integration.ray_train import TuneReportCallback
from transformers.utils import logging as hf_logging

from raykd.errors import Interrupted, RaykdError, interrupted_message, sigint_restored
from raykd.selection import NOT_ELIGIBLE
from raykd.training.epochs import EpochLog, epoch_log
from raykd.training.job import Job
from raykd.training.session import KEEP, ProcessSession, TrialSession
from raykd.training.worker import TRAIN_STATE, train_loop_per_worker


CONTROLLER_RETRIES = 2


class Trainer(TorchTrainer):
    """Ray Train's TorchTrainer without its Ray Data actor when the run has no Ray Datasets. Ray Train 2.60
    starts a DatasetManager actor for every run, datasets or none (DataParallelTrainer._create_default_callbacks);
    it imports Ray Data, seconds of CPU per run (results/suite-time.md). raykd's workers read their rows from the job, never from Ray Datasets. The override is
    private API: ray is pinned to 2.60.x in pyproject.toml, and tests/test_driver.py fails when the
    callback it removes is renamed or gone."""

    def _create_default_callbacks(self):
        callbacks = super()._create_default_callbacks()
        return [c for c in callbacks if self.datasets or not isinstance(c, DatasetsCallback)]


@dataclass(frozen=True)
class Scaling:
    """The resources of one run (Ray Train's ScalingConfig): `workers` DDP workers of `cpus_per_worker` CPUs
    and `gpus_per_worker` GPUs each. `one_worker_on_train`: a one-worker run (a search trial, distill on a local
    cluster) runs on Ray Train too (the layout before such runs ran their lone worker themselves; for
    comparison, RAYKD_ONE_WORKER_ON_TRAIN=1)."""
    workers: int = 2
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    one_worker_on_train: bool = False

    @property
    def in_process(self) -> bool:
        """Whether a run of this scaling runs its one worker in the calling process (a search trial's actor,
        or distill's own process on a local cluster: raykd.training.session.ProcessSession) rather than a
        Ray Train run."""
        return self.workers == 1 and not self.one_worker_on_train

    @property
    def threads(self) -> int:
        """Torch threads per worker: its whole CPUs, at least 1."""
        return max(1, int(self.cpus_per_worker))


def fit(job: Job, scaling: Scaling, storage_path: Path, name: str, callbacks=(), max_failures: int = 0,
        log_checkpoints: bool = False):
    """One Ray Train run of `job` (see raykd.training.worker). DDP uses gloo on CPU and nccl on GPU.
    Every epoch's metrics are appended to `<storage_path>/<name>.epochs.jsonl` (with each epoch's checkpoint
    folder when `log_checkpoints`: a search trial's, raykd.training.epochs.EpochLog). Returns Ray Train's
    Result (its `error` set when the run failed). Raises Interrupted when Ctrl-C stops a run started
    outside Tune (distill, a single teacher)."""
    storage_path = Path(storage_path).resolve()
    storage_path.mkdir(parents=True, exist_ok=True)
    callbacks = [*callbacks, EpochLog(epoch_log(storage_path, name), log_checkpoints)]
    resources = {"CPU": scaling.cpus_per_worker}
    if scaling.gpus_per_worker:
        resources["GPU"] = scaling.gpus_per_worker
    trainer = Trainer(
        train_loop_per_worker,
        train_loop_config={"job": dataclasses.replace(job, threads=scaling.threads)},
        scaling_config=ScalingConfig(num_workers=scaling.workers, use_gpu=scaling.gpus_per_worker > 0,
                                     resources_per_worker=resources),
        run_config=RunConfig(
            name=name, storage_path=str(storage_path), callbacks=callbacks,
            # The best two by score: the export, and a fallback to resume from after a worker dies.
            checkpoint_config=CheckpointConfig(num_to_keep=KEEP, checkpoint_score_attribute="score"),
            # Worker deaths are retried max_failures times; a worker group that cannot start (its
            # placement group still pending after RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S, 60 s, e.g.
            # a node was lost) is retried twice, then the run fails instead of waiting forever.
            failure_config=FailureConfig(max_failures=max_failures, controller_failure_limit=CONTROLLER_RETRIES)),
    )
    try:
        with sigint_restored():
            return trainer.fit()
    except (SystemExit, KeyboardInterrupt):
        # Ctrl-C outside Tune: Ray Train's own SIGINT handler aborts the run, then exits from inside fit()
        # without a word (a Ctrl-C before it is installed is a KeyboardInterrupt). Say so, and what to do.
        raise Interrupted(interrupted_message(f"Ray Train aborted the run (its epochs so far: "
                                              f"{epoch_log(storage_path, name)})")) from None


def fit_trial(job: Job, scaling: Scaling, storage_path: Path, name: str, max_failures: int = 0) -> None:
    """A Tune trial's run of `job`, each epoch reported to Tune with its `checkpoint_path`, the checkpoints and
    the epoch log where `fit` keeps them. With one worker (`scaling.in_process`) the worker loop runs in this
    process, the trial's actor (raykd.training.session.TrialSession: no Ray Train controller or worker process
    to start); Tune then retries a failed trial (raykd.tuning.tuner.run_config's max_failures). Else a Ray
    Train run whose reports reach Tune through TuneReportCallback. Raises the run's error, so that the trial
    ends as ERROR and the search goes on."""
    if scaling.in_process:
        session = TrialSession(storage_path, name, use_gpu=scaling.gpus_per_worker > 0)
        train_loop_per_worker({"job": dataclasses.replace(job, threads=scaling.threads)}, session)
        return
    result = fit(job, scaling, storage_path, name, callbacks=[TuneReportCallback()], max_failures=max_failures,
                 log_checkpoints=True)
    if result.error:
        raise result.error


def fit_in_process(job: Job, scaling: Scaling, storage_path: Path, name: str) -> Path | None:
    """A one-worker run of `job` in this process (raykd.training.session.ProcessSession: no Ray Train controller or
    worker process to start), its checkpoints and epoch log where `fit` keeps them. Returns the best checkpoint's
    folder by score (None when it kept none). A failure raises here (no restart: --max-failures is Ray Train's);
    Ctrl-C raises KeyboardInterrupt."""
    session = ProcessSession(storage_path, name, use_gpu=scaling.gpus_per_worker > 0)
    # Start-up counts from here: this process's own start was the command's (its imports, Ray, the data).
    job = dataclasses.replace(job, threads=scaling.threads, startup={**(job.startup or {}), "job": time.time()})
    # A Train worker's transformers output (a base model's load report, the checkpoint-saving progress bar) goes to
    # the workers' log; here it would reach the console among the epoch lines.
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        train_loop_per_worker({"job": job}, session)
    finally:
        hf_logging.enable_progress_bar()
        hf_logging.set_verbosity(verbosity)
    return session.best()


def fit_and_export(job: Job, scaling: Scaling, storage_path: Path, name: str, out: Path, local: bool,
                   max_failures: int = 0, what: str = "the run") -> dict:
    """One run of `job` outside Tune (distill, a teacher's fine-tuning), its best checkpoint by score exported to
    `out`; returns its metrics. One worker (`scaling.in_process`) on the local cluster (`local`: its CPUs and GPUs
    are this machine's) trains in this process (fit_in_process); else a Ray Train run (fit) survives
    `max_failures` worker failures. Raises RaykdError naming `what` when the run fails, or when it leaves no usable
    checkpoint (export_usable); Interrupted or KeyboardInterrupt on Ctrl-C."""
    if scaling.in_process and local:
        try:
            best = fit_in_process(job, scaling, storage_path, name)
        except Exception as err:  # as a Train run's error: one line, the traceback kept beside the epoch log
            if isinstance(err, RaykdError) or getattr(err, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
                raise  # already one line; a full disk has its own (raykd.errors.exits_cleanly)
            trace = Path(storage_path) / f"{name}.error.txt"
            trace.parent.mkdir(parents=True, exist_ok=True)
            trace.write_text(traceback.format_exc())
            raise RaykdError(f"{what} failed: {type(err).__name__}: {err}; its traceback is in {trace}") from err
        return export_usable(best, out)
    result = fit(job, scaling, storage_path, name, max_failures=max_failures)
    if result.error:
        raise RaykdError(f"{what} failed: {result.error}; see the Ray logs under {storage_path}")
    return export_best(result, out)


def export_checkpoint(checkpoint_dir: Path, out: Path) -> dict:
    """Copy a checkpoint's Hugging Face files (not the optimizer state) to `out`; its metrics."""
    out.mkdir(parents=True, exist_ok=True)
    for f in Path(checkpoint_dir).iterdir():
        if f.name != TRAIN_STATE:
            shutil.copy2(f, out / f.name)
    return json.loads((out / "metrics.json").read_text())


def export_best(result, out: Path) -> dict:
    """Export the best checkpoint by score of Ray Train's `result` to `out` (export_usable); its metrics. Raises
    RaykdError when the run reported no checkpoint, or its best is not usable."""
    checkpoint = result.get_best_checkpoint(metric="score", mode="max")
    if checkpoint is None:
        raise RaykdError(f"the run reported no checkpoint ({result.error}); see the Ray logs under {out.parent}")
    with checkpoint.as_directory() as folder:
        return export_usable(Path(folder), out)


def export_usable(folder: Path | None, out: Path) -> dict:
    """Export the checkpoint `folder` (a run's best, e.g. fit_in_process's) to `out` (export_checkpoint); its
    metrics. Raises RaykdError when there is none, or it has no usable score (no classification epoch, or a
    non-finite loss or dev metric)."""
    if folder is None:
        raise RaykdError(f"the run kept no checkpoint; see its epoch log under {out.parent}")
    metrics = json.loads((Path(folder) / "metrics.json").read_text())
    if metrics["score"] <= NOT_ELIGIBLE:
        reason = metrics.get("stop_reason", "it ended before its classification stage")
        raise RaykdError(f"the run produced no usable model: {reason} at epoch {metrics['epoch']}; "
                         "lower the learning rate, or raise the temperature or the epochs")
    return export_checkpoint(Path(folder), out)
