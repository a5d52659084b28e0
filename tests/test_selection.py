"""Honest selection (issue 9, item 2): the validation split held out from the training set (real RTE
rows, a user's CSV), the teacher-output cache of the training part, and the selection and confirmation
flags checked before anything runs. The real searches that select and confirm are in
test_search_integration.py."""

import math

import numpy as np
import pandas as pd
import pytest

from raykd import search
from raykd.data import DataSource, load_split, load_task_data
from raykd.splits import hold_out
from raykd.errors import RaykdError
from raykd.tasks import get_task
from raykd.teacher_outputs.disk_cache import DiskCache, cache_key, ensure
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


def test_a_low_data_run_selects_on_a_share_of_the_full_runs_held_out_rows(glue_dir, tokenizer, tmp_path):
    """The split is held out of the whole training set before --train-fraction cuts both sides
    (raykd.splits.split_train): a low-data run never selects on rows that a full-data teacher holding out the
    same split trained on, and never trains on rows it held out."""
    rte = DataSource(data_dir=str(glue_dir))
    data = load_task_data(RTE, rte, tokenizer, 64, 0.04, 42, tmp_path, 0.1)
    assert (len(data["train"]["labels"]), len(data["validation"]["labels"]), len(data["dev"]["labels"])) == (90, 10, 277)
    full = load_task_data(RTE, rte, tokenizer, 64, 1.0, 42, tmp_path, 0.1)
    pairs = lambda split: {tuple(x) for x in split["input_ids"]}
    assert (len(full["train"]["labels"]), len(full["validation"]["labels"])) == (2241, 249)
    assert pairs(data["validation"]) <= pairs(full["validation"]) and pairs(data["train"]) <= pairs(full["train"])
    assert not pairs(data["train"]) & pairs(data["validation"])
    assert set(data["validation"]["labels"]) == {0, 1}  # the subsample is stratified too
    plain = load_task_data(RTE, rte, tokenizer, 64, 0.04, 42, tmp_path)
    assert len(plain["train"]["labels"]) == 100 and "validation" not in plain  # nothing held out: 4% of every row
    rows = [(f"premise {i}", f"hypothesis {i}", ("entailment", "not_entailment")[i % 2]) for i in range(20)]
    pd.DataFrame(rows, columns=["premise", "hypothesis", "label"]).to_csv(tmp_path / "train.csv", index=False)
    source = DataSource(train_file=str(tmp_path / "train.csv"), dev_file=str(tmp_path / "train.csv"),
                        text_columns=("premise", "hypothesis"))
    own = load_task_data(RTE, source, tokenizer, 64, 1.0, 3, tmp_path, 0.25)
    assert len(own["validation"]["labels"]) == 5 and len(own["train"]["labels"]) == 15
    assert set(own["validation"]["labels"]) == {0, 1}  # stratified: both classes even in 5 rows


def test_a_split_prints_no_progress_bar_and_leaves_the_bars_setting_as_it_was(rte_train, capsys):
    """datasets' "Flattening the indices" bar once showed twice on every command's console."""
    import datasets

    assert not datasets.are_progress_bars_disabled()
    train, validation = hold_out(RTE, rte_train, 0.1, seed=42)
    assert len(train) + len(validation) == len(rte_train)
    out, err = capsys.readouterr()
    assert "Flattening" not in out + err and not datasets.are_progress_bars_disabled()


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
    (["--train-fraction", "0.002"], "cannot keep 0.002 of the 249 held-out validation rows"),
    (["--latency-examples", "-1"], "--latency-examples -1 is negative; pass 0 to skip the latency table"),
])
def test_bad_selection_flags_fail_before_anything_runs(tmp_path, tiny_teacher_dir, glue_dir, capsys, extra, message):
    (tmp_path / "space.py").write_text('from ray import tune\nfixed = {"algorithm": "kd"}\n'
                                       'space = {"temperature": tune.uniform(1.0, 4.0)}\n')
    argv = ["--task", "rte", "--space", tmp_path / "space.py", "--teacher", tiny_teacher_dir, "--data-dir", glue_dir,
            "--train-fraction", "0.02", "--num-samples", "2", "--max-epochs", "1", "--workers-per-trial", "1",
            "--out", tmp_path / "results", "--cache-dir", tmp_path / "cache", *extra]
    fails(capsys, search.main, argv, message, out=tmp_path / "results")


def test_equal_scores_rank_by_epoch_then_configuration_never_by_trial_id():
    """A 10-row validation split ties often; the same search must pick the same student whichever of two
    trials started together got the lower trial id (the CI failure of stop 22)."""
    from raykd.selection import config_key, rank
    sid, kd = {"algorithm": "sid", "seed": 1}, {"algorithm": "kd", "seed": 2}
    epochs = [(0.5, 3, sid), (0.5, 1, kd), (0.4, 1, sid), (0.5, None, kd)]
    assert [(e, c["algorithm"]) for _, e, c in sorted(epochs, key=lambda r: rank(*r))] == \
        [(1, "kd"), (3, "sid"), (None, "kd"), (1, "sid")]
    assert sorted([(0.5, 1, sid), (0.5, 1, kd)], key=lambda r: rank(*r))[0][2] is kd  # then by the configuration's key
    assert config_key({"a": 1, "seed": 3}) == config_key({"seed": 4, "a": 1})  # the seed is not part of a configuration
    seeds = [(0.5, 1, {"algorithm": "kd", "seed": s}) for s in (7, 3, 5)]  # then by the seed, whatever the listing
    assert [c["seed"] for _, _, c in sorted(seeds, key=lambda r: rank(*r))] == \
        [c["seed"] for _, _, c in sorted(seeds[::-1], key=lambda r: rank(*r))] == [3, 5, 7]


def test_the_console_names_as_best_the_trial_the_selection_rule_picks_on_a_tie(capsys):
    """The search's console says which trial is best as it goes (raykd.tuning.console): on a tie that must be the
    trial raykd.selection.rank picks (the earlier epoch, then the configuration), whichever reported first; it once
    named the first to report while the summary named the other (CI, 2026-12-07)."""
    from types import SimpleNamespace

    from raykd.tuning.console import SearchConsole

    console = SearchConsole("val_accuracy", max_epochs=2)
    sid, kd = SimpleNamespace(trial_id="aaaa0001", config={"algorithm": "sid"}), \
        SimpleNamespace(trial_id="aaaa0002", config={"algorithm": "kd"})
    console.on_trial_result(0, [], sid, {"epoch": 1, "score": 0.5, "val_accuracy": 0.5})
    assert console._leader() == "0.5000 (aaaa0001)"
    console.on_trial_result(0, [], kd, {"epoch": 1, "score": 0.5, "val_accuracy": 0.5})  # a tie: kd's key is lower
    assert console._leader() == "0.5000 (aaaa0002)"
    console.on_trial_result(0, [], sid, {"epoch": 2, "score": 0.5, "val_accuracy": 0.5})  # a later epoch: no better
    assert console._leader() == "0.5000 (aaaa0002)"
    console.on_trial_result(0, [], sid, {"epoch": 3, "score": 0.6, "val_accuracy": 0.6})
    assert console._leader() == "0.6000 (aaaa0001)"
    assert capsys.readouterr().out.splitlines()[-1].endswith("; best 0.6000 (aaaa0001)")


def test_the_summary_cautions_when_the_teacher_trained_on_the_validation_rows():
    """A teacher fine-tuned on the whole training set (before raykd held the validation rows out, or with
    --validation-fraction 0) has trained on the validation rows; a student that mimics it then scores high on them
    (CoLA: the teacher 61.8 Matthews there, 29.0 on dev). The search says so when it starts and in the summary
    whenever the teacher trained on more rows than the trials did, and only then."""
    from raykd.artifacts.results import _selection_line
    from raykd.selection import teacher_caution
    selection = {"select_on": "validation", "validation_fraction": 0.1, "validation_rows": 856, "train_rows": 7695,
                 "data_seed": 42}
    for rows, cautions in ((8551, True), (7695, False), (None, False)):
        line = _selection_line({**selection, "teacher_train_rows": rows}, 4, get_task("cola"))
        assert line.startswith("- selection: on a validation split held out from the training set (0.1, 856 rows")
        assert ("caution: the teacher was fine-tuned on 8551 training rows, more than the trials' 7695" in line) is cautions
    assert "caution" not in _selection_line(selection, 4, get_task("cola"))  # experiments from before the field
    assert teacher_caution({**selection, "teacher_train_rows": 8551}).what.startswith("the teacher was fine-tuned on 8551")
    assert teacher_caution({**selection, "select_on": "dev", "teacher_train_rows": 8551}) is None  # dev: no such split


def test_the_summary_cautions_when_the_validation_split_is_too_small_to_rank_trials():
    """An accuracy on n rows has a standard error of up to 0.5 / sqrt(n): 3.2 points on RTE's 249 held-out rows,
    where the selection chose finetune, last of five methods on dev. Under 400 rows (2.5 points) the search says
    so, with the number, when it starts and in the summary; SST-2's 1010 rows and dev selection get no caution.
    STS-B (regression) is judged by Pearson's standard error at r = 0.8."""
    from raykd.artifacts.results import _selection_line
    from raykd.selection import selection_cautions, small_validation_caution
    rte = {"select_on": "validation", "validation_fraction": 0.1, "validation_rows": 249, "train_rows": 2241,
           "data_seed": 42}
    caution = small_validation_caution(249, RTE)
    assert caution.what == "the validation split has 249 rows, so an accuracy near 50% measured on it has a standard error of 3.2 points"
    assert caution.why.startswith("trials less than about 6 points apart are ranked by chance")
    assert caution.console.startswith(f"caution: {caution.what}; trials less than about 6 points")
    assert f"**caution: {caution.what}.** Trials less than about 6 points" in _selection_line(rte, 12, RTE)
    assert selection_cautions(rte, RTE) == [caution]
    assert small_validation_caution(25, RTE).what.endswith("standard error of 10.0 points")
    assert small_validation_caution(399, RTE) is not None
    for quiet in (400, 1010, 0, None):
        assert small_validation_caution(quiet, RTE) is None
    for quiet in ({**rte, "validation_rows": 1010}, {**rte, "select_on": "dev"}, {"select_on": "dev"}):
        assert selection_cautions(quiet, RTE) == []  # dev selection: no validation split to be small
    assert "caution" not in _selection_line({**rte, "validation_rows": 1010}, 12, RTE)
    stsb = get_task("stsb")
    assert small_validation_caution(575, stsb) is None  # 1.5 points of Pearson
    assert small_validation_caution(57, stsb).what == (
        "the validation split has 57 rows, so a Pearson correlation near 0.8 measured on it has a standard error of 4.8 points")


def test_the_caution_follows_the_split_the_teacher_held_out_not_its_row_count():
    """Since raykd.splits.split_train a teacher that held out the trials' fraction with their data seed never saw their
    validation rows, even when it trained on more rows (a low-data run's full-data teacher); one that held out
    another split, or none, may have."""
    from raykd.selection import teacher_caution
    low_data = {"select_on": "validation", "validation_fraction": 0.1, "validation_rows": 37, "train_rows": 330,
                "data_seed": 42, "teacher_train_rows": 3301}
    same = {"validation_fraction": 0.1, "data_seed": 42}
    assert teacher_caution({**low_data, "teacher_held_out": same}) is None
    other = teacher_caution({**low_data, "teacher_held_out": {**same, "data_seed": 7}}).what
    assert other.startswith("the teacher held out 0.1 of the training set with data seed 7, not the trials' 0.1 with "
                            "data seed 42, so it may have trained on the validation rows")
    none = teacher_caution({**low_data, "teacher_train_rows": 3668, "teacher_held_out": None}).what
    assert none.startswith("the teacher was fine-tuned on 3668 training rows and held none out")
    assert teacher_caution({**low_data, "teacher_train_rows": None, "teacher_held_out": None}) is None  # not raykd's
    share = teacher_caution({**low_data, "teacher_held_out": {**same, "of_train_fraction": 0.3}}).what
    assert share.startswith("the teacher held out 0.1 of a 0.3 share of the training set (raykd then cut the share "
                            "first), not the trials' rows, so it may have trained on the validation rows")


def test_the_teachers_training_rows_come_from_its_own_record_and_never_raise(tmp_path):
    """A user's teacher folder may hold no teacher.json, another task's, or a broken one (a field case's
    sibling): the row count is then unknown, and the search goes on without the caution."""
    import json

    from raykd.training.finetune import held_out, trained_rows
    cola = get_task("cola")
    for text, rows in ((json.dumps({"task": "cola", "train_examples": 8551}), 8551),
                       (json.dumps({"task": "rte", "train_examples": 2490}), None),
                       ("{not json", None), ("[1, 2]", None), (json.dumps({"task": "cola", "train_examples": "all"}), None)):
        (tmp_path / "teacher.json").write_text(text)
        assert trained_rows(tmp_path, cola) == rows, text
        assert held_out(tmp_path, cola) is None, text  # none of these names a split
    assert trained_rows(tmp_path / "absent", cola) is None and held_out(tmp_path / "absent", cola) is None
    (tmp_path / "teacher.json").write_text(json.dumps({"task": "cola", "train_examples": 7695, "validation_fraction": 0.1,
                                                       "data_seed": 42, "validation_examples": 856}))
    assert held_out(tmp_path, cola) == {"validation_fraction": 0.1, "data_seed": 42}
    # A record from before split_train (no train_fraction) held its rows out of its --train-fraction share
    old = {"task": "cola", "train_examples": 2309, "validation_fraction": 0.1, "data_seed": 42, "validation_examples": 256}
    for command, share in (("python -m raykd.teacher --task cola --train-fraction 0.3 --out t", 0.3),
                           ("python -m raykd.teacher --task cola --train-fraction=0.3", 0.3),
                           ("python -m raykd.teacher --task cola", None), (None, None), ("--train-fraction", None)):
        (tmp_path / "teacher.json").write_text(json.dumps({**old, "command": command}))
        split = {"validation_fraction": 0.1, "data_seed": 42}
        assert held_out(tmp_path, cola) == (split if share is None else {**split, "of_train_fraction": share}), command
    (tmp_path / "teacher.json").write_text(json.dumps({**old, "train_fraction": 0.3, "command": "--train-fraction 0.3"}))
    assert held_out(tmp_path, cola) == {"validation_fraction": 0.1, "data_seed": 42}  # split_train's rows: a share


def test_a_teachers_line_and_record_name_the_split_that_chose_its_epoch():
    """The console line per epoch and the teacher's one-line description show the validation score (it
    chooses the epoch when a split is held out) before the dev score, and the dev score alone otherwise."""
    from raykd.training.finetune import scores
    from raykd.training.progress import format_epoch

    report = {"epoch": 2, "stage": "finetune", "train_loss": 0.5, "val_matthews": 0.6179, "dev_matthews": 0.29}
    line = format_epoch("teacher cola", report, 5, "matthews", 120.0)
    assert "| validation matthews 0.6179 | dev matthews 0.2900 |" in line and "ETA 3m00s" in line
    assert "validation" not in format_epoch("teacher cola", {**report, "val_matthews": None}, 5, "matthews", 120.0)
    cola = get_task("cola")
    assert scores(report, cola) == "validation matthews 0.6179, dev matthews 0.2900"
    assert scores({"dev_matthews": 0.29}, cola) == "dev matthews 0.2900"
    assert scores({}, cola) == "no dev score recorded"


def test_an_exported_constant_classifier_gets_a_caution_and_a_varied_one_none():
    from raykd.selection import one_class_caution
    caution = one_class_caution({"val_f1": 0.8065, "val_top_class_share": 1.0, "dev_top_class_share": 1.0})
    assert "one class for every row of validation and GLUE dev" in caution
    assert one_class_caution({"val_top_class_share": 0.71, "dev_top_class_share": 0.68}) is None
    assert one_class_caution({"dev_pearson": 0.8}) is None and one_class_caution(None) is None


def test_the_confirmation_never_exports_a_constant_seed_of_a_varied_configuration_nor_prefers_a_constant_configuration():
    from raykd.tuning.confirm import choose

    def run(candidate, seed, val, constant):
        return {"candidate": candidate, "seed": seed, "epoch": 1, "val_f1": val, "dev_f1": val - 0.01,
                "score": val - 3 * constant, "constant": constant, "values": {"seed": seed}}

    # candidate 1: all-positive on every seed (F1 0.81); candidate 2 learnt something (0.78 +- 0.02), one seed constant
    runs = [run(1, s, 0.8125, True) for s in (43, 44, 45)] + [run(2, 43, 0.76, False), run(2, 44, 0.80, False),
                                                              run(2, 45, 0.8125, True)]
    configs = [{"candidate": c, "val_f1_mean": sum(r["val_f1"] for r in runs if r["candidate"] == c) / 3,
                "score_mean": sum(r["score"] for r in runs if r["candidate"] == c) / 3} for c in (1, 2)]
    chosen = choose(configs, runs, "val_f1", "dev_f1")
    assert chosen["candidate"] == 2 and chosen["seed"] == 44 and not chosen["constant"]  # 0.80: nearest the mean
    assert chosen["mean"] == pytest.approx((0.76 + 0.80 + 0.8125) / 3) and chosen["metrics"]["dev_f1"] == chosen["dev_f1"]
    # a configuration constant on every seed still ships when nothing else was confirmed (with the caution)
    assert choose(configs[:1], runs[:3], "val_f1", "dev_f1")["seed"] == 43
    assert choose([{"candidate": 1, "val_f1_mean": None, "score_mean": None}], [], "val_f1", "dev_f1") is None


def test_the_summary_says_whether_the_chosen_configuration_leads_by_more_than_the_seed_std():
    from raykd.artifacts.results import _confirmation_lines
    from raykd.tuning.confirm import lead

    def config(candidate, mean, std):
        return {"candidate": candidate, "search_trial": f"t{candidate}", "search_score": mean, "config": {"lr": candidate},
                "seeds": [43, 44, 45], "n": 3, "constant_runs": 0, "score_mean": mean,
                "val_accuracy_mean": mean, "val_accuracy_std": std, "dev_accuracy_mean": mean, "dev_accuracy_std": std}

    chosen = {"candidate": 2, "seed": 44, "trial": "c2", "epoch": 3, "val_accuracy": 0.56, "dev_accuracy": 0.55, "mean": 0.56}
    close = [config(1, 0.555, 0.02), config(2, 0.56, 0.01), config(3, 0.50, 0.01)]
    margin = lead(close, chosen, "val_accuracy")
    assert margin["runner_up"] == 1 and margin["lead"] == pytest.approx(0.005) and margin["std"] == 0.02
    assert margin["separated"] is False
    summary = {"selection_metric": "val_accuracy", "dev_metric": "dev_accuracy", "finished": True, "configs": close,
               "runs": [], "chosen": chosen, "lead": margin}
    text = "\n".join(_confirmation_lines(summary, "x"))
    assert "leads #1, the runner-up, by 0.0050 in mean val_accuracy, under the larger seed-to-seed std (0.0200)" in text
    clear = [config(1, 0.50, 0.01), config(2, 0.56, 0.02)]
    assert lead(clear, chosen, "val_accuracy") == {"runner_up": 1, "lead": pytest.approx(0.06), "std": 0.02, "separated": True}
    text = "\n".join(_confirmation_lines(summary | {"configs": clear, "lead": lead(clear, chosen, "val_accuracy")}, "x"))
    assert "more than the larger seed-to-seed std (0.0200)" in text and "no difference" not in text
    one_seed = [config(1, 0.50, None), config(2, 0.56, None)]
    assert lead(one_seed, chosen, "val_accuracy")["separated"] is None
    assert lead(close[1:2], chosen, "val_accuracy") is None and lead(close, None, "val_accuracy") is None
