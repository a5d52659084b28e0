"""GLUE metrics, from scikit-learn and scipy."""

from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from raykd.errors import RaykdError
from raykd.tasks import Task

_METRICS = {
    "accuracy": lambda pred, gold: accuracy_score(gold, pred),
    "f1": lambda pred, gold: f1_score(gold, pred, pos_label=1),
    "matthews": lambda pred, gold: matthews_corrcoef(gold, pred),
    "pearson": lambda pred, gold: pearsonr(pred, gold)[0],
    "spearman": lambda pred, gold: spearmanr(pred, gold)[0],
}


def predictions(task: Task, logits: np.ndarray) -> np.ndarray:
    """Class ids for classification, the single output for regression."""
    return logits[:, 0] if task.is_regression else logits.argmax(-1)


def compute(task: Task, logits: np.ndarray, labels: np.ndarray, prefix: str = "dev") -> dict[str, float]:
    """All of the task's metrics of logits [N, C] against labels [N], named `<prefix>_<metric>` as
    reported to Ray: `dev_` for GLUE dev, `val_` for the validation split held out from the training set."""
    pred = predictions(task, np.asarray(logits))
    gold = np.asarray(labels)
    return {f"{prefix}_{name}": float(_METRICS[name](pred, gold)) for name in task.metrics}


def check_defined(task: Task, gold, split: str = "dev set", fix: str | None = None) -> None:
    """Refuse dev labels on which one of the task's metrics is undefined, before any training: a
    correlation (pearson, spearman, matthews) needs at least two distinct labels, f1 a positive one.

    `split` names the labels in the message ("dev set", "validation split"); `fix`, when given, replaces
    the message's advice. Raises RaykdError naming the metric and the labels.
    """
    gold = np.asarray(gold)
    for name in task.metrics:
        if name in ("pearson", "spearman", "matthews") and len(np.unique(gold)) < 2:
            value = f"all {gold[0]:g}" if len(gold) else "missing"
            raise RaykdError(f"the {split}'s labels are {value} ({len(gold)} rows): {name}, a correlation, is undefined "
                             f"on a constant set; {fix or 'use a dev set whose labels vary'}")
        if name == "f1" and not (gold == 1).any():
            raise RaykdError(f"the {split} has no positive label (1) in its {len(gold)} rows: f1 is undefined; "
                             f"{fix or 'use a dev set with both classes'}")
