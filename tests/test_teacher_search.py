"""The teacher recipe search (python -m raykd.teacher --space): a real local Ray cluster, a tiny real
BERT as the base, real RTE rows; and its bad inputs, refused before anything starts."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pandas as pd
from conftest import fails

from raykd import teacher
from raykd.training import finetune

SPACE = """
from ray import tune
space = {"learning_rate": tune.loguniform(5e-4, 2e-3), "seed": tune.randint(0, 100), "epochs": tune.choice([1, 2])}
fixed = {"batch_size": 16}
"""


def test_a_teacher_search_stopped_by_ctrl_c_resumes_and_keeps_the_best_trial(ray_cluster, tiny_teacher_dir, glue_dir, tmp_path):
    """Ctrl-C in a real `python -m raykd.teacher` process once a recipe has reported its first epoch: the
    error line says how to continue, and `--resume` (in this process) finishes the search without
    training an epoch twice, then keeps the best trial's best epoch as the teacher."""
    (tmp_path / "space.py").write_text(SPACE)
    argv = ["--task", "rte", "--data-dir", str(glue_dir), "--train-fraction", "0.04", "--max-seq-length", "64",
            "--cache-dir", str(tmp_path / "cache"), "--teacher-base", str(tiny_teacher_dir), "--space", str(tmp_path / "space.py"),
            "--num-samples", "2", "--max-epochs", "2", "--grace-period", "1", "--name", "s", "--workers", "1",
            "--records", str(tmp_path / "results"), "--out", str(tmp_path / "best")]
    exp = tmp_path / "results" / "rte" / "s"
    process = subprocess.Popen([sys.executable, "-m", "raykd.teacher", *argv, "--address", ray_cluster.get_runtime_context().gcs_address],
                               cwd=Path(__file__).parents[1], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    epoch_logs = lambda: {p.name: p.read_text() for p in (exp / "ray" / "trials").glob("*.epochs.jsonl")} if exp.is_dir() else {}
    deadline = time.monotonic() + 300
    while not any(epoch_logs().values()) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=300)
    last = err.strip().splitlines()[-1]
    assert process.returncode == 130 and last.startswith("error: the teacher search was interrupted"), err[-2000:]
    assert "--resume --name s" in last and not (tmp_path / "best").exists()
    assert json.loads((exp / "experiment.json").read_text())["kind"] == "teacher search"
    before = epoch_logs()

    record = teacher.main([*argv, "--resume"])
    assert finetune.is_usable(tmp_path / "best")
    kept = json.loads((tmp_path / "best" / finetune.RECORD).read_text())
    assert kept == json.loads(json.dumps(record, default=str))
    after = epoch_logs()
    for name, log in before.items():  # epochs from before Ctrl-C are kept; a restored last epoch is only reported again
        assert after[name].startswith(log)
        records = [json.loads(line) for line in after[name].splitlines()]
        assert all(r == next(q for q in records if q["epoch"] == r["epoch"]) for r in records), after[name]
    trials = pd.read_csv(exp / "trials.csv", dtype={"trial": str})  # an id of 8 digits must not become a number
    assert len(trials) == 2 and not (trials["stop_reason"] == "interrupted").any() and record["search"]["trials"] == 2
    assert record["seconds"] == pytest.approx(trials["seconds"].sum(), abs=0.1)  # both pieces of the search, not the last alone
    # Every epoch a trial logged has its column in trials.csv, an epoch Tune restarted past or missed at Ctrl-C too.
    for name, log in after.items():
        row = trials.set_index("trial").loc[name.removeprefix("trial-").removesuffix(".epochs.jsonl")]
        for line in log.splitlines():
            assert pd.notna(row[f"dev_accuracy@{json.loads(line)['epoch']}"]), (name, log, row.to_dict())
    # The kept teacher is the best epoch of any trial on the validation split held out from its 100 rows (the
    # rows a search of the same data selects its students on), with that trial's recipe and the space's fixed
    # value; GLUE dev only reports it. Tiny models often tie at the majority class's accuracy: then the earliest epoch wins, and among
    # those the configuration's key (raykd.artifacts.results.rank), not the first row of the table.
    kept_row = trials.set_index("trial").loc[record["search"]["trial"]]
    # ranked by score (raykd.selection.selection_score: val_accuracy, 3 lower for an epoch that predicted one class)
    assert kept_row["best_score"] == pytest.approx(trials["best_score"].max())
    assert record["val_accuracy"] == pytest.approx(kept_row["best_value"])
    assert (record["selected_on"], record["train_examples"], record["validation_examples"]) == ("val_accuracy", 90, 10)
    assert record["dev_accuracy"] == pytest.approx(kept_row[f"dev_accuracy@{record['best_epoch']}"], abs=1e-4)
    assert record["config"]["learning_rate"] == pytest.approx(kept_row["learning_rate"])
    assert record["config"]["batch_size"] == 16

    def first_best_epoch(row):  # the per-epoch columns are rounded to 4 places
        return min(int(c.split("@")[1]) for c in trials.columns
                   if c.startswith("val_accuracy@") and abs(row[c] - row["best_value"]) < 1e-4)
    tied = trials[(trials["best_score"] - trials["best_score"].max()).abs() < 1e-9]
    assert record["best_epoch"] == first_best_epoch(kept_row) == min(first_best_epoch(r) for _, r in tied.iterrows())
    assert "selected on 10 rows held out from the training set" in (exp / "summary.md").read_text()
    assert "**caution: the validation split has 10 rows, so an accuracy near 50% measured on it has a standard error " \
           "of 15.8 points.** Trials less than about 32 points apart" in (exp / "summary.md").read_text()
    assert len(list((tmp_path / "results" / "teachers").glob("best-*.json"))) == 1


def test_resume_refuses_a_search_that_is_not_there_or_another_space(glue_dir, tmp_path, capsys):
    (tmp_path / "space.py").write_text('from ray import tune\nspace = {"seed": tune.randint(0, 9)}\n')
    argv = ["--task", "rte", "--data-dir", glue_dir, "--space", tmp_path / "space.py", "--records", tmp_path / "results"]
    fails(capsys, teacher.main, [*argv, "--resume"], "--resume continues a recipe search; give the --space and --name")
    fails(capsys, teacher.main, [*argv, "--resume", "--name", "nothing"], "no teacher search to resume at")
    assert not (tmp_path / "results").exists()


def test_a_teacher_search_interrupted_before_it_started_is_not_resumed_but_replaced(glue_dir, tmp_path, capsys):
    """Ctrl-C between the folder's creation and its experiment.json leaves it marked unfinished (cli.UNFINISHED):
    --resume says to rerun without it, and the rerun's check replaces the folder (with a note)."""
    from raykd.launch import cli

    (tmp_path / "space.py").write_text('from ray import tune\nspace = {"seed": tune.randint(0, 9)}\n')
    argv = ["--task", "rte", "--data-dir", glue_dir, "--space", tmp_path / "space.py", "--records", tmp_path / "results"]
    left = cli.fresh_output_dir(tmp_path / "results" / "rte" / "t1")  # what an interrupted start leaves
    fails(capsys, teacher.main, [*argv, "--resume", "--name", "t1"], "was interrupted before it started, so there is "
                                                                     "nothing to resume; run the same command without --resume")
    assert (left / cli.UNFINISHED).is_file()
    assert cli.check_output_dir(left) == left and not left.exists()  # what the rerun does first


@pytest.mark.parametrize("space, flags, message", [
    ('from ray import tune\nspace = {"temperature": tune.uniform(1, 4)}', [], "cannot be searched for a teacher"),
    ('from ray import tune\nspace = {"epochs": tune.choice([3, 12])}', [], "exceed --max-epochs 8"),
    ('from ray import tune\nspace = {"seed": tune.randint(0, 9)}', ["--num-samples", "0"], "--num-samples 0 must be at least 1"),
    ('from ray import tune\nspace = {"seed": tune.randint(0, 9)}', ["--validation-fraction", "1"],
     "--validation-fraction 1 is out of range; it must be in [0, 1)"),
])
def test_teacher_search_refuses_bad_input_before_compute(glue_dir, tmp_path, capsys, space, flags, message):
    (tmp_path / "space.py").write_text(space)
    with pytest.raises(SystemExit) as exit_:
        teacher.main(["--task", "rte", "--data-dir", str(glue_dir), "--space", str(tmp_path / "space.py"),
                      "--records", str(tmp_path / "results"), *flags])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "results").exists()
