"""Where the worker loop (raykd.training.worker) runs, and what it asks of that place: its rank, its device,
the model and loader prepared for it, the checkpoint to resume from, and where each epoch is reported.

- `TrainSession`: a Ray Train worker (DDP, any number of workers): Ray Train's own calls.
- `ProcessSession`: one worker run in the calling process: `distill --workers 1` on a local cluster, and
  (`TrialSession`) a one-worker search trial inside its Tune trial actor. Ray Train would add its controller
  and a worker process to every such run, about 10 s of a trial's start-up on 2 cores and 15 s of a distill
  command's (results/bench-startup.md, results/bench-peer.md), to coordinate a group of one. This session does
  the little of Train's job a lone worker needs, in the same layout, so that selection, export, resume and the
  epoch log read one format:
  checkpoints in `<trials dir>/<run name>/checkpoint_<epoch>`, the best `KEEP` by `score` and the latest kept
  (Ray Train 2.60's CheckpointManager rule), every epoch appended to `<run name>.epochs.jsonl` with its
  checkpoint, and, in a trial, the metrics with `checkpoint_path` reported to Tune (what
  ray.tune.integration.ray_train.TuneReportCallback sends for a Train run).
  Ray Train's own local mode (`ScalingConfig(num_workers=0)`, Ray 2.60's LocalController) also runs the loop in
  the caller, but keeps only the last report in memory: no checkpoint on disk, no keep rule, no resume after a
  kill, no run callbacks; hence this session.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import ray.train
import ray.train.torch
import torch
from ray import tune

from raykd import files
from raykd.training.epochs import CHECKPOINT_PATH, epoch_log

KEEP = 2  # checkpoints kept by score, by Ray Train (raykd.training.driver.fit) and here: the export, and a fallback


class TrainSession:
    """The worker loop inside a Ray Train worker: rank and world size from Train's context, the model in DDP
    (ray.train.torch.prepare_model), batches moved to the worker's device by Train's loader wrapper."""

    def __init__(self):
        ctx = ray.train.get_context()
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
        self.device = ray.train.torch.get_device()

    def prepare_model(self, model: torch.nn.Module, find_unused_parameters: bool) -> torch.nn.Module:
        """The model on this worker's device, in DDP when the run has more than one worker."""
        return ray.train.torch.prepare_model(
            model, parallel_strategy_kwargs={"find_unused_parameters": find_unused_parameters})

    def prepare_loader(self, loader):
        """`loader` whose batches arrive on this worker's device (the sampler already shards by rank)."""
        return ray.train.torch.prepare_data_loader(loader, add_dist_sampler=False, move_to_device=True)

    def checkpoint_dir(self):
        """A context manager giving the folder of the run's latest checkpoint, or None when there is none
        (Ray Train restored the run after a failure, or a stopped search was resumed)."""
        checkpoint = ray.train.get_checkpoint()
        return None if checkpoint is None else checkpoint.as_directory()

    def report(self, metrics: dict, folder: Path | None):
        """Report an epoch's metrics, with its checkpoint `folder` (rank 0 only) to Ray Train."""
        ray.train.report(metrics, checkpoint=None if folder is None else ray.train.Checkpoint.from_directory(folder))


class ProcessSession:
    """The worker loop in the calling process: one worker (rank 0 of 1, no DDP), on the process's first visible
    GPU when `use_gpu`. `storage_path` and `name` are what raykd.training.driver.fit would give Ray Train."""

    rank, world = 0, 1

    def __init__(self, storage_path: Path, name: str, use_gpu: bool):
        self.folder = Path(storage_path).resolve() / name
        self.log = epoch_log(storage_path, name)
        # Tune sets CUDA_VISIBLE_DEVICES to a trial's GPU, so it is device 0 there.
        self.device = torch.device("cuda", 0) if use_gpu else torch.device("cpu")

    def prepare_model(self, model: torch.nn.Module, find_unused_parameters: bool) -> torch.nn.Module:
        """The model on the trial's device (one worker: no DDP)."""
        return model.to(self.device)

    def prepare_loader(self, loader):
        """`loader` whose batches arrive on the trial's device."""
        return loader if self.device.type == "cpu" else _OnDevice(loader, self.device)

    def checkpoint_dir(self):
        """A context manager giving the folder of the run's latest checkpoint, or None."""
        checkpoints = self._checkpoints()
        return None if not checkpoints else contextlib.nullcontext(str(max(checkpoints, key=lambda c: c[1]["epoch"])[0]))

    def report(self, metrics: dict, folder: Path | None) -> dict:
        """Keep the epoch's checkpoint `folder` (copied; the best KEEP by score and the latest stay) and log the
        epoch; returns its metrics with `checkpoint_path`."""
        metrics = dict(metrics)
        if folder is not None:
            kept = self.folder / f"checkpoint_{metrics['epoch']:06d}"
            if Path(folder).resolve() != kept.resolve():  # else: a restored last epoch, reported again as it is
                # published whole or not at all: ASHA may stop the trial mid-copy; an epoch run again after a
                # restore replaces its own
                with files.publish_dir(kept) as partial:
                    shutil.copytree(folder, partial, dirs_exist_ok=True)
            metrics[CHECKPOINT_PATH] = str(kept)
            checkpoints = sorted(self._checkpoints(), key=lambda c: c[1]["score"], reverse=True)
            for path, _ in checkpoints[KEEP:]:
                if path != kept:
                    shutil.rmtree(path)
        with open(self.log, "a") as f:
            f.write(json.dumps(metrics, default=str) + "\n")  # with its checkpoint_path, as a search's EpochLog
        return metrics

    def best(self) -> Path | None:
        """The kept checkpoint with the highest `score` (of equal scores, the latest epoch's), or None when the
        run kept none."""
        checkpoints = self._checkpoints()
        return max(checkpoints, key=lambda c: (c[1]["score"], c[1]["epoch"]))[0] if checkpoints else None

    def _checkpoints(self) -> list[tuple[Path, dict]]:
        """(folder, its metrics.json) of every complete checkpoint of the run."""
        found = []
        for path in sorted(self.folder.glob("checkpoint_*")):
            if (path / "metrics.json").is_file():
                found.append((path, json.loads((path / "metrics.json").read_text())))
        return found


class TrialSession(ProcessSession):
    """A one-worker search trial's worker loop inside its Tune trial actor: each epoch also reported to Tune."""

    def report(self, metrics: dict, folder: Path | None) -> dict:
        """ProcessSession.report, then the metrics with `checkpoint_path` to Tune (tune.report)."""
        metrics = super().report(metrics, folder)
        tune.report(metrics)
        return metrics


class _OnDevice:
    """A DataLoader whose batches (dicts of tensors, nested) are moved to `device`; Ray Train's wrapper does
    this for its workers, but needs a Train worker's context."""

    def __init__(self, loader, device: torch.device):
        self.loader, self.device = loader, device

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            yield _to(batch, self.device)


def _to(value, device: torch.device):
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    return value
