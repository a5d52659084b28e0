"""Task metrics against hand-computed values."""

import numpy as np
import pytest

from raykd.metrics import compute
from raykd.tasks import get_task


def test_accuracy_f1_matthews_and_correlations():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])  # predicts 0, 1, 0, 1
    gold = np.array([0, 1, 1, 1])
    assert compute(get_task("rte"), logits, gold) == {"dev_accuracy": 0.75, "dev_top_class_share": 0.5}
    mrpc = compute(get_task("mrpc"), logits, gold)
    assert mrpc["dev_f1"] == pytest.approx(0.8) and mrpc["dev_accuracy"] == 0.75
    # Matthews: tp=2 tn=1 fp=0 fn=1 -> (2*1 - 0*1) / sqrt(2*3*1*2)
    assert compute(get_task("cola"), logits, gold)["dev_matthews"] == pytest.approx(2 / np.sqrt(12))
    scores = compute(get_task("stsb"), np.array([[1.0], [2.0], [3.0], [5.0]]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert scores["dev_spearman"] == pytest.approx(1.0) and 0.9 < scores["dev_pearson"] < 1.0


def test_a_constant_classifier_shows_in_its_top_class_share_not_in_its_f1():
    gold = np.array([1, 1, 0, 1, 0, 1])
    constant = compute(get_task("mrpc"), np.array([[0.0, 1.0]] * 6), gold, prefix="val")
    assert constant["val_top_class_share"] == 1.0 and constant["val_f1"] == pytest.approx(0.8)
    assert "dev_top_class_share" not in compute(get_task("stsb"), np.array([[1.0], [2.0]]), np.array([1.0, 3.0]))


def test_a_constant_student_ranks_below_every_student_that_tells_the_classes_apart():
    """MRPC's small validation splits: the all-positive answer's F1 (0.8 here) beats a student that tells the
    classes apart (0.29); the selection score puts it last, and only for a split where it was constant."""
    from raykd.selection import CONSTANT_PENALTY, is_constant, selection_score

    gold = np.array([1, 1, 0, 1, 0, 1])
    constant = compute(get_task("mrpc"), np.array([[0.0, 1.0]] * 6), gold, prefix="val")
    varied = compute(get_task("mrpc"), np.array([[0.0, 1.0], [1.0, 0.0]] * 3), gold, prefix="val")
    assert constant["val_f1"] > varied["val_f1"] and is_constant(constant, "val_f1") and not is_constant(varied, "val_f1")
    assert selection_score(constant, "val_f1") == pytest.approx(constant["val_f1"] - CONSTANT_PENALTY)
    assert selection_score(constant, "val_f1") < selection_score(varied, "val_f1") == varied["val_f1"]
    worst = compute(get_task("cola"), np.array([[1.0, 0.0], [0.0, 1.0]] * 3), 1 - np.array([0, 1] * 3))
    assert worst["dev_matthews"] == pytest.approx(-1.0)  # the lowest a varied student can score
    assert selection_score({**constant, "dev_matthews": 1.0, "dev_top_class_share": 1.0}, "dev_matthews") < -1.0
    # the split of the metric decides; a loss and a regression metric are never penalised; "min" negates
    assert selection_score({"val_f1": 0.8, "dev_top_class_share": 1.0, "val_top_class_share": 0.6}, "val_f1") == 0.8
    assert selection_score({"train_loss": 0.3, "val_top_class_share": 1.0}, "train_loss", "min") == -0.3
    assert selection_score({"dev_pearson": 0.7}, "dev_pearson") == 0.7
