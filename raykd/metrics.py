"""GLUE metrics, from scikit-learn and scipy."""

from __future__ import annotations

import numpy as np

from raykd.errors import RaykdError
from raykd.tasks import Task


def _metric(name: str, pred: np.ndarray, gold: np.ndarray) -> float:
    """One GLUE metric by its name in Task.metrics."""
    # Imported on first use: scipy.stats and sklearn.metrics take 1.3 s, and every Ray process that unpickles
    # the worker loop imports this module, the Train controller of each run too, which never computes one.
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    return {"accuracy": lambda: accuracy_score(gold, pred), "f1": lambda: f1_score(gold, pred, pos_label=1),
            "matthews": lambda: matthews_corrcoef(gold, pred), "pearson": lambda: pearsonr(pred, gold)[0],
            "spearman": lambda: spearmanr(pred, gold)[0]}[name]()


def predictions(task: Task, logits: np.ndarray) -> np.ndarray:
    """Class ids for classification, the single output for regression."""
    return logits[:, 0] if task.is_regression else logits.argmax(-1)


def compute(task: Task, logits: np.ndarray, labels: np.ndarray, prefix: str = "dev") -> dict[str, float]:
    """All of the task's metrics of logits [N, C] against labels [N], named `<prefix>_<metric>` as
    reported to Ray: `dev_` for GLUE dev, `val_` for the validation split held out from the training set.
    A classification task also gets `<prefix>_top_class_share`, the share of rows given the most frequent
    predicted class (1.0: a constant classifier, whose F1 or accuracy can still look fine: MRPC's
    all-positive classifier scores 81.2 dev F1)."""
    pred = predictions(task, np.asarray(logits))
    gold = np.asarray(labels)
    scores = {f"{prefix}_{name}": float(_metric(name, pred, gold)) for name in task.metrics}
    if not task.is_regression and len(pred):
        scores[f"{prefix}_top_class_share"] = float(np.bincount(pred).max() / len(pred))
    return scores


def constant_scores(task: Task, labels: np.ndarray) -> dict[int, float]:
    """What always answering one class scores on `labels` [N]: {class id: the task's main metric}, e.g.
    MRPC's dev set {0: 0.0, 1: 0.8122} (F1 of the all-positive answer). Empty for regression. The floor a
    classification result must clear to show that a student tells the classes apart."""
    if task.is_regression:
        return {}
    import warnings

    gold = np.asarray(labels)
    with warnings.catch_warnings():  # sklearn warns that F1 and Matthews are degenerate here: that is the point
        warnings.simplefilter("ignore")
        return {c: float(_metric(task.main_metric, np.full_like(gold, c), gold)) for c in range(task.num_labels)}


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
