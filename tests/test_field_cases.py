"""Inputs from the field (issue 10, ../shared/field-cases): each kind of bad input ends with one line
`error: <problem>; <fix>` and exit code 2 before anything is computed or written, or is handled
correctly. Each field case is a test here, with siblings of its kind. The commands run in-process
(`main(argv)`); only the tests marked with `ray_cluster` start Ray."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from raykd import distill, export, models, search, teacher
from raykd.artifacts import results
from raykd.selection import best_checkpoint
from raykd.tuning import trials as tune_trials
from raykd.tuning.settings import EXPERIMENT, keep_space, resume_settings, search_settings
from raykd.tuning import spaces
from conftest import fails
from raykd.data import DataSource, load_checked, load_split
from raykd.errors import RaykdError
from raykd.tasks import get_task
from tiny_teachers import make_teacher


@pytest.fixture(scope="session")
def teachers(tmp_path_factory) -> dict[str, Path]:
    """The field cases' tiny teachers and a few siblings, built once (seconds)."""
    root = tmp_path_factory.mktemp("field_teachers")
    specs = {"rte-bert": {}, "bin01-bert": {"labels": ("0", "1")}, "stsb-bert": {"labels": None, "num_labels": 1},
             "rte-notok": {"tokenizer": False}, "rte-roberta": {"arch": "roberta"},
             "rte-swapped": {"labels": ("not_entailment", "entailment")}, "rte-generic": {"labels": None},
             "rte-other": {"labels": ("yes", "no")}, "rte-gpt2": {"arch": "gpt2"},
             "rte-pos64": {"max_positions": 64}, "sst2-hub-swapped": {"labels": ("POSITIVE", "Negative")},
             "cola-bert": {"labels": ("0", "1")}, "mrpc-bert": {"labels": ("0", "1")}}
    return {name: make_teacher(root / name, **spec) for name, spec in specs.items()}


def distill_argv(tmp_path, task, teacher, *data, extra=()):
    return ["--task", task, *data, "--teacher", teacher, "--algorithm", "kd", "--epochs", "1", "--workers", "1",
            "--batch-size", "4", "--out", tmp_path / "out", "--cache-dir", tmp_path / "cache", *extra]


def write_csv(path: Path, rows: list[tuple], header=("sentence", "label")) -> Path:
    pd.DataFrame(rows, columns=list(header)).to_csv(path, index=False)
    return path


GOOD_SST2 = [("a warm film", "1"), ("dull", "0"), ("sharp", "1"), ("flat", "0")]


# 1. User data files ------------------------------------------------------------------------------------

def test_01_a_tsv_that_is_not_utf8_names_file_line_and_byte(tmp_path, teachers, capsys):
    folder = tmp_path / "glue" / "SST-2"
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_bytes("sentence\tlabel\na warm film \t1\ndull \t0\nit\x92s a caf\xe9 \t1\n".encode("latin-1"))
    (folder / "dev.tsv").write_text("sentence\tlabel\ngood \t1\nbad \t0\n")
    fails(capsys, distill.main, distill_argv(tmp_path, "sst2", teachers["bin01-bert"], "--data-dir", tmp_path / "glue"),
          "train.tsv:4: byte 0x92 at column 3 is not UTF-8", "save the file as UTF-8", out=tmp_path / "out")


def test_a_user_csv_that_is_not_utf8_names_its_line_too(tmp_path):
    (tmp_path / "train.csv").write_bytes("sentence,label\ngood,1\ncaf\xe9 noir,0\n".encode("latin-1"))
    with pytest.raises(RaykdError, match=r"train.csv:3: byte 0xe9 at column 4 is not UTF-8"):
        load_split(get_task("sst2"), "train", DataSource(train_file=str(tmp_path / "train.csv"), text_columns=("sentence",)))


def test_a_utf16_file_is_named_as_such(tmp_path):
    (tmp_path / "train.csv").write_text("sentence,label\ngood,1\n", encoding="utf-16")
    with pytest.raises(RaykdError, match=r"train.csv is UTF-16 .*; save the file as UTF-8"):
        load_split(get_task("sst2"), "train", DataSource(train_file=str(tmp_path / "train.csv"), text_columns=("sentence",)))


def test_a_hub_that_cannot_be_reached_is_one_line(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub (OfflineModeIsEnabled)")
    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(RaykdError, match=r"cannot load rte \(validation\) from the Hugging Face Hub.*; pass --data-dir"):
        load_split(get_task("rte"), "dev", DataSource())


def test_02_na_null_none_are_words_not_missing_values(tmp_path):
    words = ["null", "NA", "None", "nan", "N/A", "NaN", "NULL", "#N/A", "-"]
    train = write_csv(tmp_path / "train.csv", [(w, str(i % 2)) for i, w in enumerate(words)])
    dev = tmp_path / "dev.jsonl"
    dev.write_text("\n".join(json.dumps({"sentence": w, "label": i % 2}) for i, w in enumerate(["null", "NA", "ok"])))
    train_ds, dev_ds = load_checked(get_task("sst2"), DataSource(train_file=str(train), dev_file=str(dev), text_columns=("sentence",)))
    assert train_ds["text_a"] == words and train_ds["label"] == [i % 2 for i in range(len(words))]
    assert dev_ds["text_a"] == ["null", "NA", "ok"] and dev_ds["label"] == [0, 1, 0]  # JSON numbers are their text


@pytest.mark.parametrize("name, content, message", [
    ("train.jsonl", '{"sentence": "ok", "label": "1"}\n{"sentence": null, "label": "0"}\n',
     "train.jsonl:line 2: no value in column 'sentence'"),
    ("train.jsonl", '{"sentence": "ok", "label": "1"}\n{"sentence": "x", "label": 0\n',
     "train.jsonl:2: not valid JSON"),
    ("train.jsonl", '{"sentence": ["a", "b"], "label": "1"}\n', "holds [\"a\", \"b\"], not text or a number"),
    ("train.json", '[{"sentence": "ok", "label": "1"}, {"sentence": "fine", "label": "2"}]',
     "train.json:row 2: label '2' is not one of 0, 1"),
    ("train.csv", "sentence,label\nok,1\n,0\n", "train.csv:row 2: empty text in sentence"),
    ("train.csv", "sentence,label\nok,1\nfine\n", "train.csv:row 2: no label"),
    ("train.csv", "sentence,label\nok,1\nfine, really,0\n", "train.csv:3: expected 2 columns, found 3"),
    ("train.csv", "text,label\nok,1\n", "no column(s) sentence (it has text, label)"),
    ("train.txt", "ok\t1\n", "unsupported file type '.txt'"),
])
def test_bad_user_files_name_the_row_and_the_value(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(RaykdError, match=None) as err:
        load_split(get_task("sst2"), "train", DataSource(train_file=str(tmp_path / name), text_columns=("sentence",)))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_blank_lines_are_skipped_and_rows_keep_their_numbers(tmp_path):
    (tmp_path / "train.csv").write_text("sentence,label\nok,1\n\nfine,7\n")
    with pytest.raises(RaykdError, match="row 3: label '7'"):
        load_split(get_task("sst2"), "train", DataSource(train_file=str(tmp_path / "train.csv"), text_columns=("sentence",)))


def test_04_a_label_that_changes_type_late_is_named_with_its_row(tmp_path, teachers, capsys):
    rows = [(f"review {i}", str(i % 2)) for i in range(1, 10001)] + [("the very last review", "positive")]
    train = write_csv(tmp_path / "train.csv", rows)
    dev = write_csv(tmp_path / "dev.csv", GOOD_SST2)
    fails(capsys, distill.main, distill_argv(tmp_path, "sst2", teachers["bin01-bert"], "--train-file", train,
                                             "--dev-file", dev, "--text-columns", "sentence"),
          "train.csv:row 10001: label 'positive' is not one of 0, 1", out=tmp_path / "out")


@pytest.mark.parametrize("label", ["NA", "nan", "inf", "", "high"])
def test_regression_labels_must_be_finite_numbers(tmp_path, label):
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps({"s1": "a", "s2": "b", "score": v}) for v in ["3.8", 1.5, label]))
    source = DataSource(train_file=str(path), text_columns=("s1", "s2"), label_column="score")
    with pytest.raises(RaykdError, match=r"line 3: (label '.*' is not a number; stsb is a regression task|no label)"):
        load_split(get_task("stsb"), "train", source)
    path.write_text("\n".join(json.dumps({"s1": "a", "s2": "b", "score": v}) for v in ["3.8", 1.5, 2]))
    assert load_split(get_task("stsb"), "train", source)["label"] == [3.8, 1.5, 2.0]


def test_a_pair_task_needs_two_text_columns(tmp_path, teachers, capsys):
    train = write_csv(tmp_path / "train.csv", [("a", "b", "entailment")], header=("premise", "hypothesis", "label"))
    fails(capsys, distill.main, distill_argv(tmp_path, "rte", teachers["rte-bert"], "--train-file", train,
                                             "--dev-file", train, "--text-columns", "premise"),
          "rte takes 2 text column(s) (sentence pairs) but --text-columns names 1", out=tmp_path / "out")


# 2. Teacher folders -------------------------------------------------------------------------------------

@pytest.mark.parametrize("teacher, extra, message", [
    ("rte-notok", [], "has no tokenizer"),
    ("rte-gpt2", [], "a gpt2 model (GPT2ForSequenceClassification) is not an encoder family raykd knows; raykd distils BERT (bert), RoBERTa"),
    ("rte-other", [], "has labels (yes, no) but rte's are (entailment, not_entailment)"),
    ("rte-pos64", [], "--max-seq-length 128 is longer than the 64 positions of teacher"),
    ("rte-roberta", ["--max-seq-length", "514"], "--max-seq-length 514 is longer than the 513 positions"),  # pad id 0 + 1
    ("stsb-bert", [], "has 1 outputs but rte needs 2"),
])
def test_teacher_folders_that_cannot_work_fail_before_any_compute(tmp_path, teachers, glue_dir, capsys, teacher, extra, message):
    fails(capsys, distill.main, distill_argv(tmp_path, "rte", teachers[teacher], "--data-dir", glue_dir,
                                             "--train-fraction", "0.05", extra=extra), message, out=tmp_path / "out")


# Bases a teacher is fine-tuned from: by `raykd.teacher`, or by a search without --teacher. A missing
# folder is resolved under the test's tmp_path; every other name is a fixture teacher or a Hub id.
BAD_BASES = pytest.mark.parametrize("base, message", [
    ("rte-gpt2", "a gpt2 model (GPT2ForSequenceClassification) is not an encoder family raykd knows"),
    ("rte-pos64", "--max-seq-length 128 is longer than the 64 positions of"),
    ("rte-notok", "has no tokenizer"),
    ("no-such/model", "cannot find the base model 'no-such/model'"),
    ("missing-folder", "cannot find the base model"),
])


def bad_base(tmp_path, teachers, base: str) -> str:
    return teachers.get(base, str(tmp_path / base) if base == "missing-folder" else base)


@BAD_BASES
def test_a_base_to_fine_tune_a_teacher_from_is_checked_too(tmp_path, teachers, glue_dir, capsys, base, message):
    argv = search_argv(tmp_path, teachers["rte-bert"], glue_dir, 'from ray import tune\nspace = {"temperature": tune.uniform(1, 2)}\n')
    argv = [a for a in argv if a != teachers["rte-bert"] and a != "--teacher"]
    fails(capsys, search.main, [*argv, "--teacher-base", bad_base(tmp_path, teachers, base)], message, out=tmp_path / "results")
    assert not (tmp_path / "cache").exists()  # no teacher was fine-tuned


@BAD_BASES
def test_the_teacher_commands_base_is_checked_before_any_compute(tmp_path, teachers, glue_dir, capsys, base, message):
    """A mistyped folder or an unusable base was a traceback from Ray's workers after start-up."""
    fails(capsys, teacher.main, ["--task", "rte", "--data-dir", glue_dir, "--teacher-base", bad_base(tmp_path, teachers, base),
                                 "--epochs", "1", "--cache-dir", tmp_path / "cache", "--out", tmp_path / "out"],
          message, out=tmp_path / "out")
    assert not (tmp_path / "cache").exists()


def test_a_tokenizer_that_is_not_the_models_is_refused(tmp_path, teachers):
    from transformers import BertTokenizerFast

    import shutil
    folder = tmp_path / "teacher"
    shutil.copytree(teachers["rte-bert"], folder, ignore=shutil.ignore_patterns("tokenizer*"))
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"]))
    BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt")).save_pretrained(folder)
    with pytest.raises(RaykdError, match=r"has \d tokens for a model of 30522: it is not the model.s tokenizer"):
        models.load_teacher(folder, get_task("rte"))


@pytest.mark.parametrize("damage, message", [
    ("model.safetensors", "cannot load the teacher from .*no file named model.safetensors"),
    ("tokenizer.json", "cannot load the teacher from .*JSONDecodeError"),
    ("config.json", "cannot read .*config.json .*not a valid JSON file"),
])
def test_a_damaged_teacher_folder_is_one_line(tmp_path, teachers, damage, message):
    import shutil
    folder = shutil.copytree(teachers["rte-bert"], tmp_path / "teacher")
    if damage == "model.safetensors":
        (folder / damage).unlink()
    else:
        (folder / damage).write_text("{not json")
    with pytest.raises(RaykdError, match=message) as err:
        models.load_teacher(folder, get_task("rte"))
    assert "\n" not in str(err.value) and "; save" in str(err.value)


def _logits(model, tokenizer):
    batch = tokenizer(["A man sleeps.", "It rains."], ["A person rests.", "It is dry."], return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**batch).logits


@pytest.mark.parametrize("teacher, task, order", [("rte-swapped", "rte", [1, 0]), ("sst2-hub-swapped", "sst2", [1, 0]),
                                                  ("rte-bert", "rte", [0, 1]), ("bin01-bert", "sst2", [0, 1])])
def test_label_names_are_matched_by_name_and_the_outputs_reordered(teachers, task, teacher, order):
    loaded, tokenizer = models.load_teacher(teachers[teacher], get_task(task))
    raw = AutoModelForSequenceClassification.from_pretrained(teachers[teacher], attn_implementation="eager").eval()
    assert torch.allclose(_logits(loaded, tokenizer), _logits(raw, tokenizer)[:, order])
    names = [loaded.config.id2label[i].lower() for i in range(2)]
    assert names in ([v.lower() for v in vocabulary] for vocabulary in get_task(task).label_vocabularies)


def test_generic_label_names_are_accepted_with_a_warning(teachers, capsys):
    models.load_teacher(teachers["rte-generic"], get_task("rte"), verbose=True)
    err = capsys.readouterr().err
    assert "warning: teacher" in err and "LABEL_0, LABEL_1: taken as rte's labels in order" in err
    models.load_teacher(teachers["rte-swapped"], get_task("rte"), verbose=True)
    assert "its outputs are reordered to rte's label ids (entailment, not_entailment)" in capsys.readouterr().err


def test_a_model_with_one_token_type_gets_no_token_type_ids(teachers, glue_dir, tmp_path):
    from raykd.data import load_task_data

    teacher, tokenizer = models.load_teacher(teachers["rte-roberta"], get_task("rte"), max_seq_length=128)
    data = load_task_data(get_task("rte"), DataSource(data_dir=str(glue_dir)), tokenizer, 64, 0.02, 0, tmp_path)
    assert "token_type_ids" not in data["train"] and "token_type_ids" not in tokenizer("a", "b")
    batch = tokenizer.pad([{"input_ids": ids} for ids in data["train"]["input_ids"][:4]], return_tensors="pt")
    with torch.no_grad():
        assert teacher(**batch).logits.shape == (4, 2)  # the IndexError of the field case is gone
    _, bert_tokenizer = models.load_teacher(teachers["rte-bert"], get_task("rte"))
    assert "token_type_ids" in bert_tokenizer("a", "b")


# 3. Search spaces ---------------------------------------------------------------------------------------

def search_argv(tmp_path, teacher, glue_dir, space_source: str, *extra):
    (tmp_path / "space.py").write_text(space_source)
    return ["--task", "rte", "--space", tmp_path / "space.py", "--teacher", teacher, "--data-dir", glue_dir,
            "--train-fraction", "0.02", "--num-samples", "2", "--max-epochs", "1", "--workers-per-trial", "1",
            "--out", tmp_path / "results", "--cache-dir", tmp_path / "cache", *extra]


CASE_11 = '''"""A 12-layer-teacher habit ("4,8") applied to a 4-layer teacher."""
from ray import tune

fixed = {"algorithm": "all"}
space = {
    "layer_map": tune.choice(["2,4", "4,8"]),      # teacher layer 8 does not exist
    "w_attention": tune.loguniform(0.1, 10.0),
}
'''
CASE_11_DEPTH = '''"""student_layers larger than the teacher's 4 layers."""
from ray import tune

fixed = {"algorithm": "kd", "layer_map": "uniform"}
space = {"student_layers": tune.choice([2, 6])}
'''


@pytest.mark.parametrize("source, message", [
    (CASE_11, "space.py:6: layer_map='4,8' names teacher layer(s) [8] outside 1..4"),
    (CASE_11_DEPTH, "space.py:5: student_layers=6: a student of 6 layers is not possible from a 4-layer teacher"),
    # siblings: a combination of values, a define-by-run draw, a batch the workers cannot split, a metric
    ('from ray import tune\nfixed = {"layer_map": "2,4"}\nspace = {"student_layers": tune.choice([2, 3])}\n',
     "space.py:2: layer_map='2,4' has 2 entries for a 3-layer student (with student_layers=3)"),
    ('def space(trial):\n    a = trial.suggest_categorical("algorithm", ["kd", "all"])\n'
     '    if a == "all":\n        trial.suggest_categorical("layer_map", ["1,2", "3,5"])\n',
     "space.py:4: layer_map='3,5' names teacher layer(s) [5] outside 1..4"),
    ('from ray import tune\nspace = {"batch_size": tune.choice([1, 32])}\n',
     "space.py:2: batch_size=1 is smaller than the 2 workers"),
    ('from ray import tune\nmetric = "dev_f1"\nspace = {"temperature": tune.uniform(1, 2)}\n',
     "space.py:2: metric 'dev_f1' is not reported for rte; use one of dev_accuracy, train_loss"),
    ('from ray import tune\nspace = {"temperature": tune.choice([[1, 2], [3]])}\n',
     "space.py:2: hyperparameter temperature=[1, 2] is not a valid float"),
    ('from ray import tune\nspace = {"temperature": tune.grid_search([1, 2])}\n',
     "space.py:2: temperature: tune.grid_search is not supported by Optuna; use tune.choice([1, 2])"),
    ('from ray import tune\nspace = {"temperature": tune.sample_from(lambda spec: 2.0)}\n',
     "space.py:2: temperature: "),
    ('def space(trial):\n    return {"temperature": 1 / 0}\n', "the space function failed on a random draw (ZeroDivisionError"),
])
def test_every_value_a_space_can_produce_is_checked_against_the_teacher(tmp_path, teachers, glue_dir, capsys, source, message):
    workers = "2" if "batch_size" in source else "1"
    argv = search_argv(tmp_path, teachers["rte-bert"], glue_dir, source, "--workers-per-trial", workers)
    fails(capsys, search.main, argv, message, out=tmp_path / "results")


def test_10_list_valued_layer_maps_are_layer_maps(tmp_path, teachers):
    """Both forms of the field case are accepted: Optuna gets "2,4" texts, a define-by-run function
    still sees the lists it offered, and every value passes the teacher's check."""
    import optuna

    (tmp_path / "dict.py").write_text('from ray import tune\nfixed = {"algorithm": "all"}\n'
                                      'space = {"layer_map": tune.choice([[2, 4], [1, 3]]), "temperature": tune.uniform(1.0, 4.0)}\n')
    (tmp_path / "dbr.py").write_text('SEEN = []\n\ndef space(trial):\n    SEEN.append(trial.suggest_categorical("layer_map", [[2, 4], [3, 4]]))\n'
                                     '    trial.suggest_float("temperature", 1.0, 4.0)\n    return {"algorithm": "all"}\n')
    config = AutoConfig.from_pretrained(teachers["rte-bert"])
    as_dict = spaces.load_space(tmp_path / "dict.py")
    assert as_dict.space["layer_map"].categories == ["2,4", "1,3"]
    spaces.check_plans(as_dict, config, 1, {"epochs": 1})
    dbr = spaces.load_space(tmp_path / "dbr.py")
    spaces.check_plans(dbr, config, 1, {"epochs": 1})
    trial = optuna.create_study().ask()
    returned = dbr.space(trial)
    assert trial.params["layer_map"] in ("2,4", "3,4") and returned == {"algorithm": "all"}
    assert isinstance(__import__("raykd_space_dbr").SEEN[-1], list)
    assert models.layer_map("[2, 4]", 4, 2) == (2, 4)  # a list that reached DistillConfig as text


# 4. Arguments -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, message", [
    (["--reduction-factor", "1"], "--reduction-factor 1 must be > 1"),
    (["--reduction-factor", "0.5"], "--reduction-factor 0.5 must be > 1"),
    (["--grace-period", "0"], "--grace-period 0 must be in 1..--max-epochs (1)"),
    (["--grace-period", "2"], "--grace-period 2 must be in 1..--max-epochs (1)"),
    (["--max-epochs", "0", "--grace-period", "0"], "--max-epochs 0 must be at least 1"),
    (["--num-samples", "0"], "--num-samples 0 must be at least 1"),
    (["--max-concurrent-trials", "-1"], "--max-concurrent-trials -1 is negative"),
    (["--seed", "-1"], "--seed -1 must be in 0..2^32-1"),
    (["--cpus-per-worker", "0"], "--cpus-per-worker 0 must be > 0"),
    (["--max-failures", "-2"], "--max-failures -2 is negative"),
    (["--train-fraction", "1.5"], "--train-fraction 1.5 is out of range"),
    (["--max-seq-length", "4"], "--max-seq-length 4 is too short"),
    (["--teacher-cache-memory", "lots"], "--teacher-cache-memory 'lots' is not a size"),
    (["--teacher-cache-disk", "2 drives"], "--teacher-cache-disk '2 drives' is not a size"),
    (["--workers-per-trial", "0"], "--workers-per-trial 0 must be at least 1"),
])
def test_13_search_flags_are_checked_before_anything_runs(tmp_path, teachers, glue_dir, capsys, extra, message):
    source = 'from ray import tune\nfixed = {"algorithm": "kd"}\nspace = {"temperature": tune.uniform(1.0, 4.0)}\n'
    fails(capsys, search.main, search_argv(tmp_path, teachers["rte-bert"], glue_dir, source, *extra), message,
          out=tmp_path / "results")


@pytest.mark.parametrize("extra, message", [
    (["--batch-size", "1", "--workers", "2"], "batch_size=1 is smaller than the 2 workers"),
    (["--gpus-per-worker", "-1"], "--gpus-per-worker -1 is negative"),
    (["--data-seed", "-3"], "--data-seed -3 is negative"),
])
def test_distill_flags_are_checked_before_anything_runs(tmp_path, teachers, glue_dir, capsys, extra, message):
    fails(capsys, distill.main, distill_argv(tmp_path, "rte", teachers["rte-bert"], "--data-dir", glue_dir, extra=extra),
          message, out=tmp_path / "out")


# 5. Resume ----------------------------------------------------------------------------------------------

SPACE_14 = 'from ray import tune\n\nfixed = {"algorithm": "kd"}\nspace = {"temperature": tune.uniform(1.0, 4.0)}\n'


def stored_experiment(tmp_path, teacher, glue_dir) -> tuple[Path, list]:
    """An experiment folder as a search started with --num-samples 4 --max-epochs 1 leaves it."""
    argv = search_argv(tmp_path, teacher, glue_dir, SPACE_14, "--num-samples", "4", "--name", "r1")
    args = search.parse_args([str(a) for a in argv])
    exp_dir = tmp_path / "results" / "rte" / "r1"
    (exp_dir / "ray" / "tune").mkdir(parents=True)
    keep_space(exp_dir, args.space)
    (exp_dir / EXPERIMENT).write_text(json.dumps({"task": "rte", "teacher_dir": str(teacher),
                                                          "settings": search_settings(args)}))
    resume = ["--task", "rte", "--space", tmp_path / "space.py", "--out", tmp_path / "results", "--resume", "--name", "r1"]
    return exp_dir, [str(a) for a in resume]


def test_14_resume_uses_the_settings_the_experiment_started_with(tmp_path, teachers, glue_dir):
    exp_dir, resume = stored_experiment(tmp_path, teachers["rte-bert"], glue_dir)
    args = search.parse_args(resume)
    assert (args.num_samples, args.max_epochs, args.data_dir) == (12, 3, None)  # the defaults, before
    resume_settings(exp_dir, args, resume)
    assert (args.num_samples, args.max_epochs, args.grace_period, args.reduction_factor, args.seed) == (4, 1, 1, 2, 0)
    assert (args.workers, args.train_fraction, args.data_dir) == (1, 0.02, str(glue_dir))
    same = [*resume, "--max-epochs", "1", "--num-s", "4"]  # the same values, even abbreviated, are fine
    resume_settings(exp_dir, search.parse_args(same), same)


@pytest.mark.parametrize("extra, message", [
    (["--max-epochs", "3"], "--max-epochs 3 contradicts experiment r1, which started with --max-epochs 1"),
    (["--num-samples=8"], "--num-samples 8 contradicts experiment r1"),
    (["--workers-per-trial", "2"], "--workers-per-trial 2 contradicts experiment r1"),
])
def test_14_a_flag_that_contradicts_the_experiment_is_an_error(tmp_path, teachers, glue_dir, capsys, extra, message):
    exp_dir, resume = stored_experiment(tmp_path, teachers["rte-bert"], glue_dir)
    fails(capsys, search.main, [*resume, *extra], message, "drop the flag to resume with")
    assert sorted(p.name for p in exp_dir.iterdir()) == ["experiment.json", "ray", "space.py"]


def test_14_a_changed_space_file_is_refused_saying_what_changed(tmp_path, teachers, glue_dir, capsys):
    _, resume = stored_experiment(tmp_path, teachers["rte-bert"], glue_dir)
    (tmp_path / "space.py").write_text(SPACE_14.replace("4.0", "8.0"))
    fails(capsys, search.main, resume, "space.py changed since experiment r1 started (line 4 was 'space = {\"temperature\": "
                                       "tune.uniform(1.0, 4.0)}', is now", "resume with the space it started with")


def test_14_a_low_data_experiment_whose_validation_rows_raykd_no_longer_makes_is_refused(tmp_path, teachers, glue_dir, capsys):
    """Before raykd.splits.split_train, a low-data search held its validation rows out of its own subset; those
    rows are not made any more, so continuing its trials on other rows would mix two selections."""
    exp_dir, resume = stored_experiment(tmp_path, teachers["rte-bert"], glue_dir)
    info = json.loads((exp_dir / EXPERIMENT).read_text())
    (exp_dir / EXPERIMENT).write_text(json.dumps({**info, "selection": {"select_on": "validation"}}))
    fails(capsys, search.main, resume, "experiment r1 held its validation rows out of its --train-fraction 0.02 subset",
          "start a new experiment with another --name")
    assert sorted(p.name for p in exp_dir.iterdir()) == ["experiment.json", "ray", "space.py"]
    selection = {"select_on": "validation", "teacher_held_out": None}  # one made since: resumed as before
    (exp_dir / EXPERIMENT).write_text(json.dumps({**info, "selection": selection}))
    resume_settings(exp_dir, search.parse_args(resume), resume)


# 6. Outcomes --------------------------------------------------------------------------------------------

def test_22_a_constant_dev_set_for_a_correlation_is_rejected_up_front(tmp_path, teachers, capsys):
    rows = [("A plane takes off.", "A jet departs.", v) for v in ("4.8", "1.6", "3.8", "0.4")]
    for name, labels in (("train.jsonl", [r[2] for r in rows]), ("dev.jsonl", ["2.5"] * 4)):
        (tmp_path / name).write_text("\n".join(json.dumps({"sentence1": a, "sentence2": b, "label": v})
                                               for (a, b, _), v in zip(rows, labels)))
    fails(capsys, distill.main, distill_argv(tmp_path, "stsb", teachers["stsb-bert"], "--train-file", tmp_path / "train.jsonl",
                                             "--dev-file", tmp_path / "dev.jsonl", "--text-columns", "sentence1,sentence2"),
          "the dev set's labels are all 2.5 (4 rows): pearson, a correlation, is undefined", out=tmp_path / "out")


@pytest.mark.parametrize("task, teacher, labels, message", [
    ("cola", "cola-bert", ["1", "1", "1"], "matthews, a correlation, is undefined"),
    ("mrpc", "mrpc-bert", ["0", "0", "0"], "the dev set has no positive label (1) in its 3 rows: f1 is undefined"),
])
def test_other_undefined_metrics_are_rejected_up_front(tmp_path, teachers, capsys, task, teacher, labels, message):
    columns = ("sentence",) if task == "cola" else ("sentence1", "sentence2")
    rows = [(*(f"text {i}" for _ in columns), v) for i, v in enumerate(labels)]
    train = write_csv(tmp_path / "train.csv", [(*r[:-1], str(i % 2)) for i, r in enumerate(rows)], header=(*columns, "label"))
    dev = write_csv(tmp_path / "dev.csv", rows, header=(*columns, "label"))
    fails(capsys, distill.main, distill_argv(tmp_path, task, teachers[teacher], "--train-file", train, "--dev-file", dev,
                                             "--text-columns", ",".join(columns)), message, out=tmp_path / "out")


class FakeTrial:
    def __init__(self, trial_id, status="TERMINATED", error_file=None):
        self.trial_id, self.status, self.error_file, self.config = trial_id, status, error_file, {"algorithm": "kd"}


def test_a_nan_or_infinite_metric_is_never_best(tmp_path, monkeypatch):
    for name in "abc":
        (tmp_path / name).mkdir()
    frame = lambda values, ckpt: pd.DataFrame({"epoch": range(1, len(values) + 1), "cls_epoch": range(1, len(values) + 1),
                                               "dev_accuracy": values, "score": values,
                                               "checkpoint_path": [str(tmp_path / ckpt)] * len(values)})
    rows = [(FakeTrial("nan"), frame([np.nan, np.nan], "a")), (FakeTrial("inf"), frame([np.inf], "b")),
            (FakeTrial("ok"), frame([0.4, 0.6], "c"))]
    monkeypatch.setattr(tune_trials, "trial_rows", lambda exp_dir: rows)
    trial, metrics, checkpoint, _ = best_checkpoint(tmp_path)
    assert (trial, metrics["dev_accuracy"], checkpoint) == ("ok", 0.6, str(tmp_path / "c"))
    monkeypatch.setattr(tune_trials, "trial_rows", lambda exp_dir: rows[:2])
    with pytest.raises(RuntimeError, match="saved a classification checkpoint"):
        best_checkpoint(tmp_path)


def test_a_search_whose_trials_all_failed_says_so_in_its_summary(tmp_path, monkeypatch):
    error = tmp_path / "error.txt"
    error.write_text("Traceback (most recent call last):\n  ...\nraykd.errors.RaykdError: layer map broke; fix it\n")
    failed = lambda exp_dir: [(FakeTrial("t1", "ERROR", str(error)), pd.DataFrame()), (FakeTrial("t2", "ERROR", None), pd.DataFrame())]
    monkeypatch.setattr(tune_trials, "trial_rows", failed)  # Tune's tables (trials_table, best_checkpoint)
    monkeypatch.setattr(results, "trial_rows", failed)  # and the plot's
    (tmp_path / EXPERIMENT).write_text(json.dumps({
        "task": "rte", "metric": "dev_accuracy", "mode": "max", "max_epochs": 1, "teacher_dir": str(tmp_path),
        "command": "python -m raykd.search", "teacher_info": {"layers": 4, "teacher_params_total": 1, "teacher_params_non_embedding": 1},
        "sizes": {"student_layers": 2, "student_params_total": 1, "student_params_non_embedding": 1}}))
    summary = results.write(tmp_path, 1.0)
    assert summary["all_failed"] and summary["first_error"] == "raykd.errors.RaykdError: layer map broke; fix it"
    text = (tmp_path / "summary.md").read_text()
    assert "**every trial failed** (2 of 2 ended in ERROR), so there is no best student" in text
    assert "continue with --resume" not in text


def test_export_never_overwrites_a_folder_of_the_users_nor_reads_a_damaged_record(tmp_path, capsys):
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / EXPERIMENT).write_text(json.dumps({"task": "rte"}))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    fails(capsys, export.main, [exp, "--out", tmp_path / "mine"], "already exists and is not empty")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"
    (exp / EXPERIMENT).write_text("{")
    fails(capsys, export.main, [exp], "experiment.json is damaged (JSONDecodeError")


# With a Ray cluster: the cases that must run, and the one that needs the cluster's size ---------------------

def test_17_more_workers_than_the_cluster_has_fails_in_seconds(ray_cluster, tmp_path, teachers, glue_dir, capsys):
    argv = distill_argv(tmp_path, "rte", teachers["rte-bert"], "--data-dir", glue_dir, "--train-fraction", "0.02")
    fails(capsys, distill.main, [*argv, "--workers", "4", "--batch-size", "8"],
          "the run asks for 4 workers x (1 CPU) = 4 CPUs in all, but the cluster's 1 node(s) have 2 CPUs", out=tmp_path / "out")


def test_02_and_roberta_a_run_on_words_like_null_with_a_one_type_teacher(ray_cluster, tmp_path, teachers):
    """Field cases 02 and rte-roberta together: the texts `null`, `NA`... train as words, and a teacher
    with one token type trains and exports (it was an IndexError)."""
    rows = [("A man sleeps.", w, "entailment" if i % 2 else "not_entailment")
            for i, w in enumerate(["null", "NA", "None", "nan", "N/A", "a dog", "rain", "sun"])]
    train = write_csv(tmp_path / "train.csv", rows, header=("premise", "hypothesis", "label"))
    record = distill.main([str(a) for a in distill_argv(tmp_path, "rte", teachers["rte-roberta"], "--train-file", train,
                                                        "--dev-file", train, "--text-columns", "premise,hypothesis")])
    assert record["train_examples"] == 8 and (tmp_path / "out" / "student" / "model.safetensors").is_file()


# Round 2 (issue 52) -------------------------------------------------------------------------------------

def saved_as(source: Path, out: Path, **changes) -> Path:
    """`source` saved again as a user would: in another dtype (`dtype=torch.float16`) or with config changes."""
    from transformers import AutoTokenizer
    dtype = changes.pop("dtype", None)
    model = AutoModelForSequenceClassification.from_pretrained(source, **changes)
    (model.to(dtype) if dtype else model).save_pretrained(out)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)
    return out


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_23_the_dtype_a_teacher_was_saved_in_never_decides_the_students(tmp_path, teachers, capsys, dtype):
    """model.half().save_pretrained(): the student was built in fp16 and its loss went NaN. Loaded in fp32, said
    in a note; the student built from it, its config (what an export says) and a loss step are fp32 and finite."""
    folder = saved_as(teachers["rte-bert"], tmp_path / "half", dtype=dtype)
    assert json.loads((folder / "config.json").read_text())["dtype"] == str(dtype).removeprefix("torch.")
    model, _ = models.load_teacher(folder, get_task("rte"), verbose=True)
    assert f"was saved in {str(dtype).removeprefix('torch.')}; it is loaded in float32" in capsys.readouterr().err
    student = models.build_student(model, 2, (2, 4), "mapped")
    assert {p.dtype for p in [*model.parameters(), *student.parameters()]} == {torch.float32}
    assert student.config.dtype == torch.float32
    ids = torch.randint(1000, 2000, (4, 12))
    loss = torch.nn.functional.kl_div(student(input_ids=ids).logits.log_softmax(-1),
                                      model(input_ids=ids).logits.softmax(-1), reduction="batchmean")
    loss.backward()
    assert torch.isfinite(loss)


@pytest.mark.parametrize("task, teacher, problem, trained", [
    ("rte", "rte-bert", "multi_label_classification", "multi_label_classification"),  # the field case
    ("mrpc", "mrpc-bert", "multi_label_classification", "multi_label_classification"),
    ("sst2", "bin01-bert", "regression", "regression"),
])
def test_24_a_teacher_trained_for_another_problem_type_is_refused(tmp_path, teachers, glue_dir, capsys, task, teacher,
                                                                  problem, trained):
    folder = saved_as(teachers[teacher], tmp_path / "other", problem_type=problem)
    fails(capsys, distill.main, distill_argv(tmp_path, task, folder, "--data-dir", glue_dir),
          f"was trained for {trained} but {task} is", "use a teacher fine-tuned on", out=tmp_path / "out")


def test_24_the_student_is_exported_for_the_tasks_problem_type(teachers):
    """A teacher whose config leaves problem_type unset (as many Hub checkpoints do) gives a student whose config,
    and so its export and any pipeline serving it, says the task's."""
    model, _ = models.load_teacher(teachers["rte-bert"], get_task("rte"))
    assert models.build_student(model, 2, (2, 4), "mapped").config.problem_type == "single_label_classification"
    model, _ = models.load_teacher(teachers["stsb-bert"], get_task("stsb"))
    assert models.build_student(model, 2, (2, 4), "mapped").config.problem_type == "regression"


def test_25_a_class_with_no_training_row_is_an_error_before_any_compute(tmp_path, teachers, capsys):
    train = write_csv(tmp_path / "train.csv", [("a warm film", "1"), ("a small gem", "1"), ("sharp", "1")])
    dev = write_csv(tmp_path / "dev.csv", GOOD_SST2)
    fails(capsys, distill.main, distill_argv(tmp_path, "sst2", teachers["bin01-bert"], "--train-file", train,
                                             "--dev-file", dev, "--text-columns", "sentence"),
          f"the training set ({train}) has no row of sst2's class(es) '0' (3 rows, all of '1')", "add rows of every class",
          out=tmp_path / "out")


def test_25_a_glue_folder_and_a_three_class_task_are_checked_too(tmp_path):
    folder = tmp_path / "glue" / "RTE"
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tc\td\tentailment\n")
    with pytest.raises(RaykdError, match="has no row of rte's class.es. 'not_entailment'"):
        load_checked(get_task("rte"), DataSource(data_dir=str(tmp_path / "glue")))


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".json", ".jsonl"])
def test_25_labels_written_as_floats_are_the_class_ids_they_are(tmp_path, suffix):
    rows = [("a warm film", "1.0"), ("dull", "0.0"), ("sharp", "1"), ("flat", "0")]
    path = tmp_path / f"train{suffix}"
    if suffix in (".csv", ".tsv"):
        pd.DataFrame(rows, columns=["sentence", "label"]).to_csv(path, index=False, sep="," if suffix == ".csv" else "\t")
    else:  # numbers as JSON numbers: 1.0 and 0.0 as floats
        records = [{"sentence": s, "label": float(y)} for s, y in rows]
        path.write_text(json.dumps(records) if suffix == ".json" else "\n".join(map(json.dumps, records)))
    source = DataSource(train_file=str(path), dev_file=str(path), text_columns=("sentence",))
    assert list(load_split(get_task("sst2"), "train", source)["label"]) == [1, 0, 1, 0]


def test_26_an_experiment_in_use_is_refused_at_once_and_a_dead_holder_frees_it(tmp_path, teachers, glue_dir, capsys):
    """Two searches on one --name wrote into one folder. The first holds a lock beside the folder; the second start
    is refused before it reads anything. A holder killed with SIGKILL leaves the lock file but frees the lock."""
    import subprocess
    import sys
    import time

    (tmp_path / "space.py").write_text('from ray import tune\nfixed = {"algorithm": "kd"}\nspace = {"temperature": tune.uniform(1, 4)}\n')
    from raykd.launch import cli
    lock = cli.lock_file(tmp_path / "results" / "rte" / "same")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from filelock import FileLock; "
                               f"held = FileLock({str(lock)!r}); held.acquire(); print('held', flush=True); time.sleep(600)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        argv = ["--task", "rte", "--space", tmp_path / "space.py", "--data-dir", glue_dir, "--teacher", teachers["rte-bert"],
                "--out", tmp_path / "results", "--name", "same", "--cache-dir", tmp_path / "cache"]
        started = time.perf_counter()
        fails(capsys, search.main, argv, f"{tmp_path / 'results' / 'rte' / 'same'} is in use by another raykd process",
              "wait for it to end, or choose another --name", out=tmp_path / "results" / "rte" / "same")
        assert time.perf_counter() - started < 10  # refused at once: no teacher, data or Ray
    finally:
        holder.kill()
        holder.wait()
    assert cli.claim(tmp_path / "results" / "rte" / "same") == (tmp_path / "results" / "rte" / "same").resolve()


def test_26_a_folder_left_by_an_interrupted_start_is_replaced_and_a_finished_one_kept(tmp_path, capsys):
    from raykd.launch import cli
    left = cli.fresh_output_dir(tmp_path / "left")
    (left / "ray-workers.log").write_text("started")
    assert cli.check_output_dir(left) == left and not left.exists()
    assert "replacing" in capsys.readouterr().out
    done = cli.fresh_output_dir(tmp_path / "done")
    (done / "result.json").write_text("{}")
    cli.finished(done)
    with pytest.raises(RaykdError, match="already exists"):
        cli.check_output_dir(done)
    assert (done / "result.json").is_file()


def test_disk_a_cache_dir_that_is_a_file_is_refused_in_seconds(tmp_path, teachers, glue_dir, capsys):
    (tmp_path / "file").write_text("not a folder")
    argv = distill_argv(tmp_path, "rte", teachers["rte-bert"], "--data-dir", glue_dir)
    argv[argv.index("--cache-dir") + 1] = tmp_path / "file"
    fails(capsys, distill.main, argv, f"the cache folder {tmp_path / 'file'} is a file", "pass a folder as --cache-dir",
          out=tmp_path / "out")


def tmpfs(tmp_path: Path, size: str) -> list[str]:
    """`unshare -m sh -c "mount -t tmpfs -o size=<size> tmpfs <tmp_path>/small && ..."`: a small disk of its own
    for one command, as root; skipped where mounting is not allowed (the reason is printed)."""
    import os
    import shutil
    import subprocess
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("a full disk needs a tmpfs mount: root and unshare (CI runs as root)")
    (tmp_path / "small").mkdir()
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {tmp_path / 'small'}"],
                           capture_output=True, text=True)
    if probe.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {probe.stderr.strip()}")
    return ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size={size} tmpfs {tmp_path / 'small'} && exec \"$@\"", "sh"]


@pytest.mark.slow  # its command starts Ray
def test_disk_a_cache_on_a_disk_too_small_for_the_plan_is_one_line(tmp_path, teachers, glue_dir):
    """Field case 19: the plan printed 105 MiB and the writes died of SIGBUS (exit 135). Now the plan's size is
    checked against the free space before the first write: exit 2, the folder, the space needed and free."""
    import subprocess
    import sys
    command = [*tmpfs(tmp_path, "20m"), sys.executable, "-m", "raykd.distill", "--task", "rte", "--data-dir", str(glue_dir),
               "--teacher", str(teachers["rte-bert"]), "--algorithm", "sid", "--epochs", "1", "--stage-epochs", "1",
               "--workers", "1", "--batch-size", "8", "--cache-dir", str(tmp_path / "small"), "--out", str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert last.startswith("error: the teacher outputs need 105 MiB in") and "MiB free" in last, last
    assert not (tmp_path / "out").exists()


def test_disk_a_write_that_fails_anyway_leaves_nothing_trusted(tmp_path, teachers):
    """Past the plan's check (another process filled the disk): the blocks are reserved before the memory-mapped
    writes, so a full disk is ENOSPC and one line, never SIGBUS; no partial array is left for a later run."""
    import subprocess
    import sys
    script = f"""
from raykd import models
from raykd.errors import RaykdError
from raykd.tasks import get_task
from raykd.teacher_outputs.disk_cache import DiskCache, ensure
teacher, tok = models.load_teacher({str(teachers['rte-bert'])!r}, get_task("rte"))
cache = DiskCache({str(tmp_path / 'small')!r}, "k")
try:
    ensure(cache, teacher, {{"input_ids": [tok("a sentence of some length " * 8)["input_ids"]] * 2000}}, ["attentions", "logits"])
except RaykdError as err:
    print("error:", err)
print(sorted(p.name for p in cache.dir.iterdir()), sorted(cache.missing(["attentions", "logits"])))
"""
    done = subprocess.run([*tmpfs(tmp_path, "5m"), sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    error, files_left = done.stdout.strip().splitlines()[-2:]
    assert error.startswith("error: no space left in") and "for the teacher outputs (attentions, logits): they needed at least" in error
    assert files_left == "['.lock', 'manifest.json'] ['attentions', 'logits']", files_left  # no .npy: nothing to trust
