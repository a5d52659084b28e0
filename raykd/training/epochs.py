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


class EpochLog(UserCallback):
    """Appends every epoch's reported metrics to a JSON-lines file. Ray keeps the metrics of kept
    checkpoints only; this keeps them all. Runs in the Train controller, on the head node."""

    def __init__(self, path: Path):
        self.path = str(path)

    def after_report(self, run_context, metrics, checkpoint):
        """Ray Train's UserCallback hook after each report: append worker 0's metrics (`metrics[0]`) as one JSON line."""
        with open(self.path, "a") as f:
            f.write(json.dumps(metrics[0], default=str) + "\n")


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
