"""The teacher recipe search (python -m raykd.teacher --space): a real local Ray cluster, a tiny real
BERT as the base, real RTE rows; and its bad inputs, refused before anything starts."""

import json

import pytest

from raykd import teacher
from raykd.training import finetune

SPACE = """
from ray import tune
space = {"learning_rate": tune.loguniform(5e-4, 2e-3), "seed": tune.randint(0, 100), "epochs": tune.choice([1, 2])}
fixed = {"batch_size": 16}
"""


def test_teacher_search_keeps_the_best_trial_as_a_usable_teacher(ray_cluster, tiny_teacher_dir, glue_dir, tmp_path):
    (tmp_path / "space.py").write_text(SPACE)
    record = teacher.main(["--task", "rte", "--data-dir", str(glue_dir), "--train-fraction", "0.04",
                           "--max-seq-length", "64", "--cache-dir", str(tmp_path / "cache"),
                           "--teacher-base", str(tiny_teacher_dir), "--space", str(tmp_path / "space.py"),
                           "--num-samples", "3", "--max-epochs", "2", "--grace-period", "1", "--name", "s", "--workers", "1",
                           "--records", str(tmp_path / "results"), "--out", str(tmp_path / "best")])
    assert finetune.is_usable(tmp_path / "best")
    kept = json.loads((tmp_path / "best" / finetune.RECORD).read_text())
    assert kept == json.loads(json.dumps(record, default=str))
    exp = tmp_path / "results" / "rte" / "s"
    import pandas as pd
    trials = pd.read_csv(exp / "trials.csv")
    assert len(trials) == 3
    # The kept teacher is the best epoch of any trial, with that trial's recipe and the space's fixed value.
    # Tiny models often tie at the majority class's accuracy: then the earliest epoch wins, and among
    # those the configuration's key (raykd.artifacts.results.rank), not the first row of the table.
    kept_row = trials.set_index("trial").loc[record["search"]["trial"]]
    assert record["dev_accuracy"] == pytest.approx(trials["best_score"].max()) == pytest.approx(kept_row["best_score"])
    assert record["config"]["learning_rate"] == pytest.approx(kept_row["learning_rate"])
    assert record["config"]["batch_size"] == 16

    def first_best_epoch(row):  # the per-epoch columns are rounded to 4 places
        return min(int(c.split("@")[1]) for c in trials.columns
                   if c.startswith("dev_accuracy@") and abs(row[c] - row["best_score"]) < 1e-4)
    tied = trials[(trials["best_score"] - trials["best_score"].max()).abs() < 1e-9]
    assert record["best_epoch"] == first_best_epoch(kept_row) == min(first_best_epoch(r) for _, r in tied.iterrows())
    assert "selected on GLUE dev" in (exp / "summary.md").read_text()
    assert len(list((tmp_path / "results" / "teachers").glob("best-*.json"))) == 1


@pytest.mark.parametrize("space, flags, message", [
    ('from ray import tune\nspace = {"temperature": tune.uniform(1, 4)}', [], "cannot be searched for a teacher"),
    ('from ray import tune\nspace = {"epochs": tune.choice([3, 12])}', [], "exceed --max-epochs 8"),
    ('from ray import tune\nspace = {"seed": tune.randint(0, 9)}', ["--num-samples", "0"], "--num-samples 0 must be at least 1"),
])
def test_teacher_search_refuses_bad_input_before_compute(glue_dir, tmp_path, capsys, space, flags, message):
    (tmp_path / "space.py").write_text(space)
    with pytest.raises(SystemExit) as exit_:
        teacher.main(["--task", "rte", "--data-dir", str(glue_dir), "--space", str(tmp_path / "space.py"),
                      "--records", str(tmp_path / "results"), *flags])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "results").exists()
