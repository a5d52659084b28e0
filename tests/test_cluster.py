"""Where the cluster decides: requests it can never hold fail in seconds, teachers are found (or made)
where a fresh clone, a second run and a run after deleting the weights all work."""

import json
import os
import subprocess
import sys

import pytest

from raykd import distill, search, teacher
from raykd.launch import cli, search_run
from raykd.training import finetune

SPACE = '''
def space(trial):
    trial.suggest_categorical("algorithm", ["kd"])
'''


def last_error_line(capsys) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("command, extra, message", [
    ("search", ["--workers-per-trial", "4"],
     "each trial asks for 4 workers x (1 CPU) = 4 CPUs in all, but the cluster's 1 node(s) have 2 CPUs and 0 GPUs"),
    ("search", ["--cpus-per-worker", "3", "--workers-per-trial", "1"], "room for 0 such worker(s)"),
    ("distill", ["--workers", "2", "--gpus-per-worker", "1"], "the run asks for 2 workers x (1 CPU, 1 GPU) = 2 CPUs, 2 GPUs in all"),
    ("teacher", ["--workers", "3"], "the fine-tuning asks for 3 workers x (1 CPU)"),
])
def test_impossible_requests_fail_in_seconds(ray_cluster, tiny_teacher_dir, glue_dir, tmp_path, capsys,
                                             command, extra, message):
    (tmp_path / "space.py").write_text(SPACE)
    common = ["--task", "rte", "--data-dir", str(glue_dir), "--train-fraction", "0.04", "--max-seq-length", "64",
              "--cache-dir", str(tmp_path / "cache")]
    argv = {"search": [*common, "--space", str(tmp_path / "space.py"), "--teacher", str(tiny_teacher_dir),
                       "--out", str(tmp_path / "out")],
            "distill": [*common, "--teacher", str(tiny_teacher_dir), "--out", str(tmp_path / "out")],
            "teacher": [*common, "--teacher-base", str(tiny_teacher_dir), "--out", str(tmp_path / "out")]}[command]
    main = {"search": search.main, "distill": distill.main, "teacher": teacher.main}[command]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, *extra])
    assert exit_.value.code == 2
    line = last_error_line(capsys)
    assert line.startswith("error: ") and message in line and "add nodes" in line
    assert not (tmp_path / "out").exists()  # nothing computed, nothing written


def test_a_record_alone_is_not_a_teacher(tmp_path, tiny_teacher_dir):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / finetune.RECORD).write_text("{}")
    (tmp_path / "t" / "config.json").write_text("{}")
    assert not finetune.is_usable(tmp_path / "t")  # no weights: what a fresh clone of old results had
    (tmp_path / "t" / "model.safetensors").write_bytes(b"x")
    assert finetune.is_usable(tmp_path / "t")
    assert not finetune.is_usable(tiny_teacher_dir)  # weights without a record: not made by raykd.teacher


def test_recipe_dir_is_keyed_by_everything_that_decides_the_weights(tmp_path):
    from raykd.tasks import get_task

    data = {"train": {"input_ids": [[1, 2]], "labels": [0]}, "dev": {"input_ids": [[3]], "labels": [1]}}
    task = get_task("rte")
    base = finetune.recipe_dir(tmp_path, task, "minilm", finetune.DEFAULTS, data, 128)
    assert base == finetune.recipe_dir(tmp_path, task, "minilm", finetune.DEFAULTS, data, 128)
    assert base.parent == (tmp_path / "teachers").resolve() and base.name.startswith("rte-minilm-")
    other_data = {**data, "train": {"input_ids": [[1, 2]], "labels": [1]}}
    assert len({base, finetune.recipe_dir(tmp_path, task, "minilm", finetune.DEFAULTS.replace(epochs=1), data, 128),
                finetune.recipe_dir(tmp_path, task, "minilm", finetune.DEFAULTS, other_data, 128),
                finetune.recipe_dir(tmp_path, task, "minilm", finetune.DEFAULTS, data, 64),
                finetune.recipe_dir(tmp_path, task, "other", finetune.DEFAULTS, data, 128),
                finetune.recipe_dir(tmp_path, task, "minilm", finetune.DEFAULTS,  # a held-out split chooses its epoch
                                    {**data, "validation": {"input_ids": [[4]], "labels": [0]}}, 128)}) == 6


def test_search_without_teacher_fine_tunes_once_and_again_after_the_weights_are_deleted(
        ray_cluster, tokenizer, glue_dir, tmp_path, capsys):
    """A fresh machine: the search's teacher lookup (the function the search calls before its trials)
    fine-tunes the teacher (on the user's own --train-file, through every data flag) without the rows the
    trials select on, and keeps its best epoch on those rows; a second search's lookup reuses it; deleting its weights makes the teacher command redo it (it holds out the same rows by default);
    with --validation-fraction 0 the teacher command trains on every row and chooses on dev. The
    base is a bare encoder (no classifier), as a Hub base is. (The whole search without --teacher, trials
    and export included, is CI's smoke run of the README's command, which checks its experiment.json.)"""
    import pandas as pd

    from raykd.models import load_teacher
    from raykd.tasks import get_task
    from conftest import tiny_bert
    from test_distill_integration import dev_metric_of

    (tmp_path / "space.py").write_text(SPACE)
    base = tmp_path / "base"
    tiny_bert().bert.save_pretrained(base)
    tokenizer.save_pretrained(base)
    rows = pd.read_csv(glue_dir / "RTE" / "train.tsv", sep="\t", quoting=3).head(100)
    rows["label"] = rows["label"].astype(str)
    rows[["sentence1", "sentence2", "label"]].to_csv(tmp_path / "train.csv", index=False)
    data = ["--task", "rte", "--data-dir", str(glue_dir), "--train-file", str(tmp_path / "train.csv"),
            "--text-columns", "sentence1,sentence2", "--max-seq-length", "64", "--cache-dir", str(tmp_path / "cache")]
    argv = [*data, "--space", str(tmp_path / "space.py"), "--teacher-base", str(base),
            "--teacher-epochs", "2", "--teacher-learning-rate", "1e-3", "--num-samples", "1", "--max-epochs", "1",
            "--workers-per-trial", "1", "--confirm-top", "0", "--export-formats", "hf", "--out", str(tmp_path / "results")]
    args = search.parse_args([*argv, "--name", "first"])
    first = search_run.default_teacher(args, get_task("rte"), cli.scaling(args), tmp_path / "results", "first")
    folders = list((tmp_path / "cache" / "teachers").iterdir())
    assert len(folders) == 1 and finetune.is_usable(folders[0]) and first == str(folders[0])
    record = json.loads((folders[0] / finetune.RECORD).read_text())
    assert record["config"]["epochs"] == 2  # the user's file, the flags
    # The 10 rows the search's trials select on are held out from the teacher too, and choose its epoch.
    assert (record["train_examples"], record["validation_examples"], record["selected_on"]) == (90, 10, "val_accuracy")
    assert finetune.held_out(folders[0], get_task("rte")) == {"validation_fraction": 0.1, "data_seed": 42}
    assert record["train_fraction"] == 1.0
    scores = [h["val_accuracy"] for h in record["history"]]
    assert len(scores) == 2 and record["val_accuracy"] == max(scores) and scores[record["best_epoch"] - 1] == max(scores)
    assert record["dev_accuracy"] == record["history"][record["best_epoch"] - 1]["dev_accuracy"]
    assert dev_metric_of(folders[0], glue_dir, 64, tmp_path / "cache") == pytest.approx(record["dev_accuracy"])
    model, _ = load_teacher(folders[0], get_task("rte"))  # the fine-tuned folder is a valid teacher for distillation
    assert model.config.num_labels == 2 and not model.training
    assert "fine-tuning" in capsys.readouterr().out

    args = search.parse_args([*argv, "--name", "second"])
    second = search_run.default_teacher(args, get_task("rte"), cli.scaling(args), tmp_path / "results", "second")
    assert second == str(folders[0]) and "fine-tuning" not in capsys.readouterr().out
    assert len(list((tmp_path / "results" / "teachers").glob("*.json"))) == 1  # one teacher, one record

    (folders[0] / "model.safetensors").unlink()
    again = teacher.main([*data, "--teacher-base", str(base), "--epochs", "2", "--learning-rate", "1e-3",
                          "--records", str(tmp_path / "results")])
    assert finetune.is_usable(folders[0]) and again["config"] == record["config"]
    assert len(list((tmp_path / "results" / "teachers").glob("*.json"))) == 2  # the old record is kept

    # --validation-fraction 0: the teacher of a search that selects on dev: every row, its epoch chosen on dev.
    whole = teacher.main([*data, "--teacher-base", str(base), "--epochs", "2", "--learning-rate", "1e-3",
                          "--records", str(tmp_path / "results"), "--validation-fraction", "0"])
    assert (whole["train_examples"], whole["selected_on"]) == (100, "dev_accuracy") and "validation_examples" not in whole
    dev_scores = [h["dev_accuracy"] for h in whole["history"]]
    assert whole["dev_accuracy"] == max(dev_scores) and "val_accuracy" not in whole["history"][0]
    assert sum(finetune.is_usable(p) for p in (tmp_path / "cache" / "teachers").iterdir()) == 2  # its own cache entry


GPU_ACCOUNTING = '''
import ray
from raykd.launch import cluster
from raykd.training.driver import Scaling
from raykd.tuning.tuner import concurrency

ray.init(num_cpus=4, num_gpus=1, include_dashboard=False)  # a declared GPU: Ray counts it, nothing runs on it
print("cpu trials", concurrency(Scaling(1, 1.0, 0.0)))
print("gpu trials", concurrency(Scaling(1, 1.0, 1.0)))
print("quarter-gpu trials", concurrency(Scaling(1, 1.0, 0.25)))
from raykd.launch.search_run import teacher_scaling
print("teacher workers", teacher_scaling(Scaling(1, 1.0, 0.0), None, False).workers,
      teacher_scaling(Scaling(1, 1.0, 0.0), 2, False).workers, teacher_scaling(Scaling(1, 1.0, 0.25), None, False).workers)
print("local teacher", *[(s.workers, s.cpus_per_worker, s.in_process) for s in (
      teacher_scaling(Scaling(1, 1.0, 0.0), None, True), teacher_scaling(Scaling(1, 1.0, 0.0), 2, True),
      teacher_scaling(Scaling(1, 1.0, 0.25), None, True))])
cluster.check_fits(1, 1.0, 0.0, "each trial")
cluster.check_fits(1, 1.0, 0.0, "this trial", note_unused_gpus=False)  # inside Tune: said once already
cluster.check_fits(1, 1.0, 1.0, "each GPU trial")
'''


def test_a_clusters_gpus_bound_the_trials_at_once_and_unused_gpus_are_named():
    """On a node with 4 CPUs and 1 GPU, trials of 1 worker x (1 CPU, 1 GPU) run one at a time (four at once
    would queue three and have Optuna draw them blind), four at once with a quarter GPU each, and a request
    without GPUs says once that it leaves the GPU idle. A search's teacher is fine-tuned on the CPUs the trials use
    at once (4, or the 2 --max-concurrent-trials allows): on a cluster given by --address by as many DDP workers,
    on the local cluster by one worker in the search's process with that many threads; on GPUs as one trial."""
    done = subprocess.run([sys.executable, "-c", GPU_ACCOUNTING], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "RAY_ADDRESS": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "cpu trials 4" in done.stdout and "\ngpu trials 1" in done.stdout and "quarter-gpu trials 4" in done.stdout
    assert "teacher workers 4 2 1" in done.stdout
    assert "local teacher (1, 4.0, True) (1, 2.0, True) (1, 1.0, True)" in done.stdout
    notes = [line for line in done.stdout.splitlines() if line.startswith("note: ")]
    assert notes == ["note: the cluster has 1 GPU(s) but each trial trains on CPUs (--gpus-per-worker 0); pass "
                     "--gpus-per-worker 1 to train on them"], done.stdout
