"""GLUE metrics, from scikit-learn and scipy."""

from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

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


def compute(task: Task, logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """All of the task's metrics, named `dev_<metric>` as reported to Ray."""
    pred = predictions(task, np.asarray(logits))
    gold = np.asarray(labels)
    return {f"dev_{name}": float(_METRICS[name](pred, gold)) for name in task.metrics}
