"""A real 2-trial search on a local Ray cluster: Optuna + ASHA, 2 Train workers per trial, a tiny
teacher and real RTE rows; results files, the exported best student, export again, and resume."""

import json

import pandas as pd
import pytest
from transformers import AutoModelForSequenceClassification

from raykd import export, search
from test_distill_integration import dev_metric_of

SPACE = '''
def space(trial):
    algorithm = trial.suggest_categorical("algorithm", ["kd", "sid"])
    trial.suggest_float("temperature", 1.0, 4.0)
    trial.suggest_float("learning_rate", 1e-4, 1e-3, log=True)
'''


@pytest.fixture(scope="module")
def experiment(ray_cluster, tiny_teacher_dir, glue_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    (root / "space.py").write_text(SPACE)
    argv = ["--task", "rte", "--space", str(root / "space.py"), "--data-dir", str(glue_dir),
            "--teacher", str(tiny_teacher_dir), "--num-samples", "2", "--max-epochs", "2",
            "--train-fraction", "0.04", "--max-seq-length", "64", "--workers-per-trial", "2", "--confirm-top", "0",
            "--export-formats", "hf", "--out", str(root / "results"), "--name", "tiny", "--cache-dir", str(root / "cache")]
    summary = search.main(argv)
    return root, argv, summary


def test_trials_table_and_summary(experiment):
    root, _, summary = experiment
    exp = root / "results" / "rte" / "tiny"
    table = pd.read_csv(exp / "trials.csv")
    assert len(table) == 2 and set(table["status"]) == {"TERMINATED"}
    assert set(table["stop_reason"]) <= {"completed", "stopped by ASHA"}
    assert {"algorithm", "temperature", "learning_rate", "dev_accuracy@1", "seconds"} <= set(table.columns)
    assert summary["best_value"] == pytest.approx(table["best_score"].max())  # metric = the main score here
    assert "best val_accuracy: **" in (exp / "summary.md").read_text()  # selected on the held-out validation split
    assert (exp / "trials.png").stat().st_size > 1000 and (exp / "optuna.db").is_file()


def test_best_student_loads_and_reproduces_its_metric(experiment, glue_dir):
    root, _, summary = experiment
    best = root / "results" / "rte" / "tiny" / "best"
    model = AutoModelForSequenceClassification.from_pretrained(best)
    assert model.config.num_hidden_layers == 2 and "raykd student for rte" in (best / "README.md").read_text()
    assert dev_metric_of(best, glue_dir, 64, root / "cache") == pytest.approx(summary["best_dev_value"])
    again = export.main([str(root / "results" / "rte" / "tiny"), "--out", str(root / "exported"), "--format", "hf"])
    assert again["dev_accuracy"] == pytest.approx(summary["best_dev_value"])


def test_same_command_and_seed_give_the_same_trials(experiment):
    """Determinism on CPU: the same search again (another name) proposes and scores the same trials."""
    root, argv, summary = experiment
    again = search.main([*argv[:-4], "--name", "tiny-again", *argv[-2:]])
    tables = [pd.read_csv(root / "results" / "rte" / n / "trials.csv").drop(columns=["trial", "seconds", "seconds_to_first_step"])
              for n in ("tiny", "tiny-again")]
    pd.testing.assert_frame_equal(tables[0], tables[1])
    losses = []
    for name in ("tiny", "tiny-again"):
        exp = root / "results" / "rte" / name
        ids = pd.read_csv(exp / "trials.csv")["trial"]
        losses.append([[json.loads(line)["train_loss"] for line in (exp / "ray" / "trials" / f"trial-{t}.epochs.jsonl").read_text().splitlines()]
                       for t in ids])
    assert losses[0] == losses[1] and all(losses[0])
    assert again["best_value"] == summary["best_value"]


def test_resume_does_not_rerun_finished_trials(experiment):
    root, argv, summary = experiment
    exp = root / "results" / "rte" / "tiny"
    logs = sorted((exp / "ray" / "trials").glob("*.epochs.jsonl"))
    before = {p.name: p.read_text() for p in logs}
    resumed = search.main([*argv, "--resume"])
    after = {p.name: p.read_text() for p in sorted((exp / "ray" / "trials").glob("*.epochs.jsonl"))}
    assert after == before  # no trial trained again
    assert resumed["best_value"] == summary["best_value"] and resumed["trials"] == 2


ASHA_SPACE = '''
metric, mode = "train_loss", "min"
fixed = {"algorithm": "finetune"}  # gold-label loss: it differs between learning rates
space = {"learning_rate": tune.loguniform(1e-6, 1e-3)}
points_to_evaluate = [{"learning_rate": 5e-4}, {"learning_rate": 1e-3}, {"learning_rate": 1e-6}]
from ray import tune
'''


def test_a_trial_stopped_by_asha_releases_its_workers(ray_cluster, tiny_teacher_dir, glue_dir, tmp_path):
    """Trials run one at a time (2 workers on 2 CPUs): a trial after one that ASHA stopped can only
    start if the stopped trial's Train workers were released."""
    (tmp_path / "space.py").write_text("from ray import tune\n" + ASHA_SPACE)
    summary = search.main(["--task", "rte", "--space", str(tmp_path / "space.py"), "--data-dir", str(glue_dir),
                           "--teacher", str(tiny_teacher_dir), "--num-samples", "4", "--max-epochs", "3",
                           "--train-fraction", "0.04", "--max-seq-length", "64", "--workers-per-trial", "2",
                           "--confirm-top", "0", "--export-formats", "hf", "--out", str(tmp_path / "results"), "--name", "asha", "--cache-dir", str(tmp_path / "cache")])
    table = pd.read_csv(tmp_path / "results" / "rte" / "asha" / "trials.csv")  # in creation order
    reasons = table["stop_reason"].tolist()
    stopped = [i for i, reason in enumerate(reasons) if reason == "stopped by ASHA"]
    assert stopped and stopped[0] < len(reasons) - 1, reasons  # a trial ran after a stopped one
    assert len(table) == 4 and set(table["status"]) == {"TERMINATED"}
    assert table["cls_epochs_run"].tolist()[stopped[0]] < 3 and "completed" in reasons
    assert summary["stopped_by_asha"] == len(stopped)
    # One rule for "best" with the space's own metric and mode: the lowest train_loss of any epoch is exported.
    losses = table[[c for c in table.columns if c.startswith("train_loss@")]]  # rounded to 4 decimals in trials.csv
    assert summary["best_value"] == pytest.approx(losses.min().min(), abs=1e-4)
    exported = json.loads((tmp_path / "results" / "rte" / "asha" / "best" / "metrics.json").read_text())
    assert exported["train_loss"] == pytest.approx(losses.min().min(), abs=1e-4)
