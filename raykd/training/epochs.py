"""Every epoch's metrics, one JSON line each in `<storage_path>/<run name>.epochs.jsonl`: appended by the
Train controller (EpochLog), read by the driver (history; raykd.training.progress prints them).

This module imports neither torch nor transformers on purpose: Ray unpickles a run's callbacks in its
Train controller, a fresh process per run, and importing raykd.training.driver there cost about 4 s of CPU
per run (6.3 CPU-seconds to import it against 2.2 for Ray Train's callback API, by `/usr/bin/time`), a tenth of
the CPU of a short run on 2 cores.
"""

from __future__ import annotations

import json
from pathlib import Path

from ray.train.v2.api.callback import UserCallback

CHECKPOINT_PATH = "checkpoint_path"  # an epoch's checkpoint folder (the name TuneReportCallback gives it)


class EpochLog(UserCallback):
    """Appends every epoch's reported metrics to a JSON-lines file. Ray keeps the metrics of kept
    checkpoints only; this keeps them all. Runs in the Train controller, on the head node."""

    def __init__(self, path: Path, checkpoint_paths: bool = False):
        self.path, self.checkpoint_paths = str(path), checkpoint_paths

    def after_report(self, run_context, metrics, checkpoint):
        """Ray Train's UserCallback hook after each report: append worker 0's metrics (`metrics[0]`) as one JSON line,
        with `checkpoint_path` (the epoch's checkpoint folder) when `checkpoint_paths`: a search trial's log then
        finds its checkpoints even where Tune's own record of them was lost (a search killed mid-write)."""
        record = dict(metrics[0])
        if self.checkpoint_paths and checkpoint is not None:
            record[CHECKPOINT_PATH] = checkpoint.path
        with open(self.path, "a") as f:
            f.write(json.dumps(record, default=str) + "\n")


def epoch_log(storage_path: Path, name: str) -> Path:
    """`<storage_path>/<name>.epochs.jsonl` (absolute): the file EpochLog appends to and `history` reads."""
    return Path(storage_path).resolve() / f"{name}.epochs.jsonl"


def history(path: Path) -> list[dict]:
    """Every epoch's metrics in order; an epoch reported again after a restart counts once (the last)."""
    if not Path(path).is_file():
        return []
    by_epoch = {}
    for line in Path(path).read_text().splitlines():
        record = json.loads(line)
        by_epoch[record["epoch"]] = record
    return [by_epoch[e] for e in sorted(by_epoch)]
