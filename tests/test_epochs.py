"""The epoch log: what the Train controller appends and the driver reads back."""

import json
import subprocess
import sys

from raykd.training.epochs import EpochLog, epoch_log, history


def test_an_epoch_reported_again_after_a_restart_counts_once_with_its_last_metrics(tmp_path):
    path = epoch_log(tmp_path, "run")
    callback = EpochLog(path)
    for epoch, loss in [(1, 0.9), (2, 0.8), (2, 0.7), (3, 0.6)]:  # epoch 2 again: the run was restored
        callback.after_report(None, [{"epoch": epoch, "train_loss": loss}, {"epoch": epoch, "train_loss": -1}], None)
    assert path == (tmp_path / "run.epochs.jsonl").resolve()
    assert len(path.read_text().splitlines()) == 4
    assert history(path) == [{"epoch": 1, "train_loss": 0.9}, {"epoch": 2, "train_loss": 0.7}, {"epoch": 3, "train_loss": 0.6}]
    assert history(tmp_path / "missing.epochs.jsonl") == []


def test_the_callback_imports_neither_torch_nor_transformers():
    """Ray unpickles EpochLog in every run's Train controller, a fresh process: importing the training code
    there cost about 4 s of CPU per run on 2 cores."""
    code = ("import sys, pickle; from raykd.training.epochs import EpochLog; pickle.loads(pickle.dumps(EpochLog('x')));"
            "print([m for m in ('torch', 'transformers', 'datasets') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().replace("'", '"')) == []
