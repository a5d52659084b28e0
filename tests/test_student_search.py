"""Student searches on a real local Ray cluster: the shape and the recipe together, as an accuracy-latency front
(--objective pareto) and under a latency budget (--latency-budget-ms), on real RTE rows with a tiny teacher."""

import json

import numpy as np
import pandas as pd
import pytest
from transformers import AutoModelForSequenceClassification

from conftest import fails
from raykd import search
from raykd.student.pareto import non_dominated
from test_search_integration import search_argv

SPACE = '''
from ray import tune
fixed = {"batch_size": 8, "layer_map": "uniform"}
shape = {"student_layers": [1, 2], "student_hidden_size": [0.5, 1.0]}
space = {"algorithm": tune.choice(["kd", "sid"]), "learning_rate": tune.loguniform(1e-4, 1e-3)}
'''


def shape_argv(root, teacher, glue_dir, name, *extra):
    argv = search_argv(root, teacher, glue_dir, name, "--num-samples", "3", "--confirm-top", "0", *extra)  # later flags win
    (root / "space.py").write_text(SPACE)
    return argv


@pytest.fixture(scope="module")
def front(ray_cluster, tiny_teacher_dir, glue_dir, tmp_path_factory):
    """A 3-trial pareto search over 4 shapes, then up to 2 front points confirmed with 2 seeds each; (root,
    experiment folder)."""
    root = tmp_path_factory.mktemp("front")
    search.main(shape_argv(root, tiny_teacher_dir, glue_dir, "p", "--objective", "pareto",
                           "--export-formats", "hf,onnx", "--confirm-top", "2", "--confirm-seeds", "2"))
    return root, root / "results" / "rte" / "p"


def test_pareto_search_writes_a_non_dominated_front_with_exports(front):
    _, exp = front
    table = pd.read_csv(exp / "pareto.csv", dtype={"trial": str})
    assert len(table) == 3 and {"student_shape", "latency_ms", "params", "flops", "on_front"} <= set(table.columns)
    assert table["on_front"].tolist() == non_dominated(table["best_score"], table["latency_ms"]).tolist()
    on = table[table["on_front"]]
    assert len(on) >= 1
    for a in on.itertuples():  # no front point is dominated by any trial
        assert not ((table["best_score"] >= a.best_score) & (table["latency_ms"] <= a.latency_ms)
                    & ((table["best_score"] > a.best_score) | (table["latency_ms"] < a.latency_ms))).any()
    assert (exp / "pareto.png").stat().st_size > 1000
    for trial in on["trial"]:
        folder = exp / "front" / trial
        assert (folder / "onnx").is_dir() and "latency" in (folder / "README.md").read_text().lower()
        row = table[table["trial"] == trial].iloc[0]
        assert AutoModelForSequenceClassification.from_pretrained(folder).config.hidden_size == row["hidden"]
    # the front's points (at most --confirm-top 2), and the best trial of the paper's shape (L2-H32-F64 for this
    # 4-layer teacher) to compare them with, not the top scores
    paper = table[table["student_shape"] == "L2-H32-F64"]
    reference = set(paper.loc[[paper["best_score"].idxmax()], "trial"]) if len(paper) else set()
    confirmed = json.loads((exp / "confirm.json").read_text())["configs"]
    assert 1 <= len(confirmed) <= 3 and {c["search_trial"] for c in confirmed} <= set(on["trial"]) | reference
    assert len({c["search_trial"] for c in confirmed} & set(on["trial"])) >= min(2, len(on))
    for c in confirmed:
        assert table.loc[table["trial"] == c["search_trial"], "confirmed_n"].iloc[0] == c["n"]
    info = json.loads((exp / "experiment.json").read_text())
    assert info["shapes"]["bands"] and set(info["shapes"]["offered"]) == set(info["shapes"]["bands"])
    assert "## Student shapes" in (exp / "summary.md").read_text()


def test_trials_report_their_shapes_cost(front):
    _, exp = front
    trials = pd.read_csv(exp / "trials.csv", dtype={"trial": str})
    costs = json.loads((exp / "experiment.json").read_text())["shapes"]["costs"]
    for row in trials.itertuples():
        assert row.student_shape in costs
    pareto = pd.read_csv(exp / "pareto.csv")
    for row in pareto.itertuples():
        assert row.latency_ms == pytest.approx(costs[row.student_shape]["onnx"]["p50_ms"], abs=1e-3)


def test_a_latency_budget_offers_and_returns_only_shapes_within_it(front, tiny_teacher_dir, glue_dir):
    """The same cache (the shapes' latencies are read back, not measured again): a budget at the median shape's
    latency offers only the shapes within it, and no trial, nor the exported student, is over it."""
    root, exp = front
    costs = json.loads((exp / "experiment.json").read_text())["shapes"]["costs"]
    grid = json.loads((exp / "experiment.json").read_text())["shapes"]["offered"]
    budget = float(np.median([costs[n]["onnx"]["p50_ms"] for n in grid]))
    search.main(shape_argv(root, tiny_teacher_dir, glue_dir, "b", "--latency-budget-ms", str(budget)))
    within = json.loads((root / "results" / "rte" / "b" / "experiment.json").read_text())["shapes"]["offered"]
    assert within and set(within) == {n for n in grid if costs[n]["onnx"]["p50_ms"] <= budget}
    trials = pd.read_csv(root / "results" / "rte" / "b" / "trials.csv")
    assert all(costs[s]["onnx"]["p50_ms"] <= budget for s in trials["student_shape"])
    plan = json.loads((root / "results" / "rte" / "b" / "best" / "plan.json").read_text())
    assert f"L{plan['student_layers']}-H{plan['student_hidden']}-F{plan['student_ffn']}" in within
    assert "Budget" in (root / "results" / "rte" / "b" / "summary.md").read_text()


def test_a_budget_no_shape_meets_is_one_line_before_any_training(front, tiny_teacher_dir, glue_dir, capsys):
    root, _ = front
    argv = shape_argv(root, tiny_teacher_dir, glue_dir, "none", "--latency-budget-ms", "0.000001")
    fails(capsys, search.main, argv, "no student shape of", "meets the budget", "raise the budget",
          out=root / "results" / "rte" / "none")


def test_a_budget_without_shapes_is_refused(tiny_teacher_dir, glue_dir, tmp_path, capsys):
    argv = search_argv(tmp_path, tiny_teacher_dir, glue_dir, "x", "--max-params", "1000")
    fails(capsys, search.main, argv, "--max-params needs student shapes", "has no `shape`",
          out=tmp_path / "results" / "rte" / "x")
