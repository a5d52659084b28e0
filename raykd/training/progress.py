"""One console line per epoch for `teacher` and `distill`.

The workers' own output goes to a log file (raykd.launch.cluster); what a person watches is this: the
Train controller appends every epoch's metrics to `<run>.epochs.jsonl` (raykd.training.epochs.EpochLog), and
a thread of the driver prints each new line of it as

    teacher rte | epoch 2/6 finetune | 412 ex/s | loss 0.5123 | validation accuracy 0.6185 | dev accuracy 0.6101 | 1m32s/epoch, ETA 6m08s

The file is the source because the controller runs in another process (and, on a cluster, possibly on
another node with the same shared storage); Ray Train offers no driver-side per-report hook.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def format_epoch(label: str, record: dict, total_epochs: int, metric: str, elapsed: float) -> str:
    """The line for one epoch's `record` (the worker's report); `elapsed` seconds since the run began. It
    shows the validation score (when a split is held out: it chooses the epoch) and the dev score."""
    done = int(record["epoch"])
    per_epoch = elapsed / max(done, 1)
    parts = [label, f"epoch {done}/{total_epochs} {record.get('stage', '')}".rstrip()]
    if record.get("examples_per_second"):
        parts.append(f"{record['examples_per_second']:.0f} ex/s")
    parts.append(f"loss {record['train_loss']:.4f}")
    for split, key in (("validation", f"val_{metric}"), ("dev", f"dev_{metric}")):  # validation chooses, when held out
        if record.get(key) is not None:
            parts.append(f"{split} {metric} {record[key]:.4f}")
    parts.append(f"{_duration(per_epoch)}/epoch, ETA {_duration(per_epoch * max(total_epochs - done, 0))}")
    return " | ".join(parts)


class EpochProgress:
    """Context manager: while the block runs, print one line per epoch appended to `path`."""

    def __init__(self, path: Path, label: str, total_epochs: int, metric: str, poll_s: float = 1.0, printer=print):
        self.path, self.label, self.total, self.metric = Path(path), label, total_epochs, metric
        self.poll_s, self.printer = poll_s, printer
        self._stop = threading.Event()
        self._offset = 0
        self._thread = threading.Thread(target=self._run, name="raykd-progress", daemon=True)

    def __enter__(self):
        self._started = time.perf_counter()
        self._offset = self.path.stat().st_size if self.path.is_file() else 0  # a resumed run: only new epochs
        self.printer(f"{self.label} | {self.total} epochs; a line per epoch (the first after start-up)", flush=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._print_new()  # the last epoch, reported just before fit() returned

    def _run(self):
        while not self._stop.wait(self.poll_s):
            self._print_new()

    def _print_new(self):
        if not self.path.is_file():
            return
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        complete = chunk[:chunk.rfind(b"\n") + 1]  # a line still being written waits for the next poll
        self._offset += len(complete)
        for line in complete.decode().splitlines():
            if line.strip():
                record = json.loads(line)
                self.printer(format_epoch(self.label, record, self.total, self.metric,
                                          time.perf_counter() - self._started), flush=True)
