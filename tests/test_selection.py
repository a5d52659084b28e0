"""Honest selection and multi-seed confirmation (issue 9, items 2 and 3).

The validation split held out from the training set (real RTE rows, a user's CSV), the teacher-output
cache of the training part, the flags checked before anything runs, and real searches on a local Ray
cluster with a tiny teacher: both numbers in the summary, the confirmation's mean +- std per
configuration, the exported seed, a resume that runs nothing again, and `--select-on dev`.
"""

import json
import math

import numpy as np
import pandas as pd
import pytest

from raykd import search
from raykd.data import DataSource, hold_out, load_split, load_task_data
from raykd.errors import RaykdError
from raykd.tasks import get_task
from raykd.teacher_outputs.disk_cache import DiskCache, cache_key, ensure
from test_distill_integration import dev_metric_of
from test_field_cases import fails

RTE = get_task("rte")


@pytest.fixture(scope="module")
def rte_train(glue_dir):
    """RTE's train set with each row's position in the file, to follow rows through the split."""
    ds = load_split(RTE, "train", DataSource(data_dir=str(glue_dir)))
    return ds.add_column("row", list(range(len(ds))))


def test_the_held_out_split_is_disjoint_sized_stratified_and_seeded(rte_train):
    train, validation = hold_out(RTE, rte_train, 0.1, seed=42)
    n = len(rte_train)
    assert len(validation) == math.ceil(0.1 * n) and len(train) == n - len(validation)  # 2490 -> 249 + 2241
    assert set(train["row"]).isdisjoint(validation["row"]) and set(train["row"]) | set(validation["row"]) == set(range(n))
    assert train["row"] == sorted(train["row"])  # the file's order is kept
    share = np.mean(rte_train["label"])
    assert abs(np.mean(validation["label"]) - share) < 1 / len(validation) + 1e-9  # stratified: the same class share
    again_train, again = hold_out(RTE, rte_train, 0.1, seed=42)
    assert again["row"] == validation["row"] and again_train["row"] == train["row"]
    assert hold_out(RTE, rte_train, 0.1, seed=7)[1]["row"] != validation["row"]


def test_the_split_is_taken_from_the_train_fraction_and_from_a_users_file(glue_dir, tokenizer, tmp_path):
    data = load_task_data(RTE, DataSource(data_dir=str(glue_dir)), tokenizer, 64, 0.04, 42, tmp_path, 0.1)
    assert (len(data["train"]["labels"]), len(data["validation"]["labels"]), len(data["dev"]["labels"])) == (90, 10, 277)
    plain = load_task_data(RTE, DataSource(data_dir=str(glue_dir)), tokenizer, 64, 0.04, 42, tmp_path)
    pairs = lambda split: {tuple(x) for x in split["input_ids"]}
    assert pairs(data["train"]) | pairs(data["validation"]) == pairs(plain["train"]) and "validation" not in plain
    assert not pairs(data["train"]) & pairs(data["validation"])
    rows = [(f"premise {i}", f"hypothesis {i}", ("entailment", "not_entailment")[i % 2]) for i in range(20)]
    pd.DataFrame(rows, columns=["premise", "hypothesis", "label"]).to_csv(tmp_path / "train.csv", index=False)
    source = DataSource(train_file=str(tmp_path / "train.csv"), dev_file=str(tmp_path / "train.csv"),
                        text_columns=("premise", "hypothesis"))
    own = load_task_data(RTE, source, tokenizer, 64, 1.0, 3, tmp_path, 0.25)
    assert len(own["validation"]["labels"]) == 5 and len(own["train"]["labels"]) == 15
    assert set(own["validation"]["labels"]) == {0, 1}  # stratified: both classes even in 5 rows


def test_too_few_rows_to_hold_out_is_a_clear_error(rte_train):
    with pytest.raises(RaykdError, match=r"cannot hold out 0.1 of the 5 training rows .*; raise --validation-fraction"):
        hold_out(RTE, rte_train.select(range(5)), 0.1, seed=0)  # 1 validation row cannot hold 2 classes
    with pytest.raises(RaykdError, match=r"--validation-fraction 1 is out of range"):
        hold_out(RTE, rte_train, 1.0, seed=0)


def test_the_teacher_outputs_are_those_of_the_training_part(glue_dir, tiny_teacher_dir, tmp_path):
    """The cache is keyed by the tokenized training rows: the split's training part gets its own entry,
    with one output per training row, and the held-out rows get none."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_teacher_dir)
    split = load_task_data(RTE, DataSource(data_dir=str(glue_dir)), tok, 64, 0.02, 42, tmp_path, 0.2)
    whole = load_task_data(RTE, DataSource(data_dir=str(glue_dir)), tok, 64, 0.02, 42, tmp_path)
    key = cache_key(tiny_teacher_dir, split["train"], 64)
    assert key != cache_key(tiny_teacher_dir, whole["train"], 64)
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher_dir, attn_implementation="eager").eval()
    arrays, _ = ensure(DiskCache(tmp_path, key), teacher, split["train"], ["logits"])
    assert arrays["logits"].shape[0] == len(split["train"]["labels"]) == 40
    assert arrays["lengths"].tolist() == [len(x) for x in split["train"]["input_ids"]]


# Flags: one error line, exit 2, nothing written ---------------------------------------------------------

@pytest.mark.parametrize("extra, message", [
    (["--validation-fraction", "0"], "--validation-fraction 0 is out of range; it must be in (0, 1)"),
    (["--validation-fraction", "1"], "--validation-fraction 1 is out of range"),
    (["--validation-fraction", "-0.2"], "--validation-fraction -0.2 is out of range"),
    (["--confirm-top", "-1"], "--confirm-top -1 is negative; pass the number of configurations"),
    (["--confirm-seeds", "-2"], "--confirm-seeds -2 is negative"),
    (["--train-fraction", "0.002"], "cannot hold out 0.1 of the 5 training rows for validation"),
])
def test_bad_selection_flags_fail_before_anything_runs(tmp_path, tiny_teacher_dir, glue_dir, capsys, extra, message):
    (tmp_path / "space.py").write_text('from ray import tune\nfixed = {"algorithm": "kd"}\n'
                                       'space = {"temperature": tune.uniform(1.0, 4.0)}\n')
    argv = ["--task", "rte", "--space", tmp_path / "space.py", "--teacher", tiny_teacher_dir, "--data-dir", glue_dir,
            "--train-fraction", "0.02", "--num-samples", "2", "--max-epochs", "1", "--workers-per-trial", "1",
            "--out", tmp_path / "results", "--cache-dir", tmp_path / "cache", *extra]
    fails(capsys, search.main, argv, message, out=tmp_path / "results")


# Real searches -------------------------------------------------------------------------------------------

SPACE = '''
from ray import tune
fixed = {"algorithm": "kd", "batch_size": 8}
space = {"learning_rate": tune.loguniform(1e-4, 1e-3)}
points_to_evaluate = [{"learning_rate": 1e-3}, {"learning_rate": 2e-4}]
'''


def search_argv(root, teacher, glue_dir, name, *extra):
    (root / "space.py").write_text(SPACE)
    return [str(a) for a in ["--task", "rte", "--space", root / "space.py", "--data-dir", glue_dir, "--teacher", teacher,
                             "--num-samples", "2", "--max-epochs", "1", "--train-fraction", "0.04",
                             "--max-seq-length", "64", "--workers-per-trial", "1", "--out", root / "results",
                             "--name", name, "--cache-dir", root / "cache", "--export-formats", "hf", *extra]]


@pytest.fixture(scope="module")
def confirmed(ray_cluster, tiny_teacher_dir, glue_dir, tmp_path_factory):
    """2 trials, then the top 2 configurations x 2 seeds (4 runs of one epoch), selection on 10%
    of the 100 training rows."""
    root = tmp_path_factory.mktemp("confirm")
    argv = search_argv(root, tiny_teacher_dir, glue_dir, "c", "--confirm-top", "2", "--confirm-seeds", "2")
    summary = search.main(argv)
    return root / "results" / "rte" / "c", argv, summary


def test_the_search_selects_on_validation_and_reports_dev(confirmed):
    exp, _, summary = confirmed
    info = json.loads((exp / "experiment.json").read_text())
    assert info["metric"] == "val_accuracy"
    assert info["selection"] == {"select_on": "validation", "validation_fraction": 0.1, "validation_rows": 10,
                                 "train_rows": 90, "data_seed": 42}
    table = pd.read_csv(exp / "trials.csv")
    assert {"val_accuracy@1", "dev_accuracy@1"} <= set(table.columns)
    assert table["best_score"].tolist() == table["val_accuracy@1"].tolist()  # the score ASHA and Optuna saw: validation
    search_best = summary["search_best"]
    assert search_best["val_accuracy"] == table["best_score"].max()
    text = (exp / "summary.md").read_text()
    assert f"best val_accuracy: **{search_best['val_accuracy']:.4f}**" in text
    assert f"on GLUE dev: dev_accuracy **{search_best['dev_accuracy']:.4f}** (reported only" in text
    assert "GLUE dev is used only to report the chosen student" in text and "was used for selection" not in text


def test_the_confirmation_reports_mean_and_std_and_exports_the_seed_closest_to_the_mean(confirmed, glue_dir):
    exp, _, summary = confirmed
    result = json.loads((exp / "confirm.json").read_text())
    assert result["finished"] and len(result["configs"]) == 2 and len(result["runs"]) == 4
    lrs = sorted(c["config"]["learning_rate"] for c in result["configs"])
    assert lrs == pytest.approx([2e-4, 1e-3])  # both configurations of the search, each once
    runs = pd.read_csv(exp / "confirm.csv")
    assert sorted(runs["seed"]) == [43, 43, 44, 44] and set(runs["status"]) == {"ok"}  # fresh seeds: 42 + 1, 42 + 2
    trials = pd.read_csv(exp / "trials.csv").set_index("trial")
    for c in result["configs"]:  # every run confirms its own candidate's configuration, that of its search trial
        assert set(runs[runs["candidate"] == c["candidate"]]["config/learning_rate"]) == {c["config"]["learning_rate"]}
        assert trials.loc[c["search_trial"], "learning_rate"] == c["config"]["learning_rate"]
        assert trials.loc[c["search_trial"], "best_score"] == c["search_score"]
    assert [c["search_score"] for c in result["configs"]] == sorted(trials["best_score"], reverse=True)
    text = (exp / "summary.md").read_text()
    for c in result["configs"]:
        mine = runs[runs["candidate"] == c["candidate"]]
        for metric in ("val_accuracy", "dev_accuracy"):
            assert c[f"{metric}_mean"] == pytest.approx(mine[metric].mean())
            assert c[f"{metric}_std"] == pytest.approx(mine[metric].std(ddof=1))
            assert f"{c[f'{metric}_mean']:.4f} +- {c[f'{metric}_std']:.4f}" in text
    chosen = result["chosen"]
    best_mean = max(c["val_accuracy_mean"] for c in result["configs"])
    winner = next(c for c in result["configs"] if c["candidate"] == chosen["candidate"])
    assert winner["val_accuracy_mean"] == best_mean
    mine = runs[runs["candidate"] == chosen["candidate"]]
    distance = (mine["val_accuracy"] - best_mean).abs()
    assert abs(chosen["val_accuracy"] - best_mean) == pytest.approx(distance.min())
    assert f"its seed {chosen['seed']}" in text and "closest to the mean" in text
    # best/ is that run's student: its dev metric, measured again from the folder
    assert summary["best_trial"] == chosen["trial"] and summary["best_dev_value"] == pytest.approx(chosen["dev_accuracy"])
    assert dev_metric_of(exp / "best", glue_dir, 64, exp.parents[2] / "cache") == pytest.approx(chosen["dev_accuracy"])


def test_a_resumed_search_runs_no_finished_confirmation_again(confirmed):
    exp, argv, summary = confirmed
    logs = lambda: {p.name: p.read_text() for p in sorted((exp / "ray" / "confirm-trials").glob("*.epochs.jsonl"))}
    before = logs()
    assert len(before) == 4
    resumed = search.main([*argv, "--resume"])
    assert logs() == before  # no confirmation run trained again
    assert resumed["confirmation"]["chosen"] == summary["confirmation"]["chosen"]


def test_select_on_dev_says_so_in_the_summary(ray_cluster, tiny_teacher_dir, glue_dir, tmp_path):
    argv = search_argv(tmp_path, tiny_teacher_dir, glue_dir, "d", "--select-on", "dev", "--confirm-top", "0",
                       "--num-samples", "1")
    summary = search.main(argv)
    exp = tmp_path / "results" / "rte" / "d"
    info = json.loads((exp / "experiment.json").read_text())
    assert info["metric"] == "dev_accuracy" and info["selection"]["select_on"] == "dev"
    assert info["selection"]["train_rows"] == 100 and info["selection"]["validation_rows"] == 0
    text = (exp / "summary.md").read_text()
    assert "**GLUE dev was used for selection** (`--select-on dev`)" in text and "optimistically biased" in text
    assert not (exp / "confirm.json").exists() and summary["confirmation"] is None
    assert "val_accuracy@1" not in pd.read_csv(exp / "trials.csv").columns
