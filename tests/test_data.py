"""Loading GLUE TSVs (with their quirks), user CSV/JSON files, bad rows, tokenization."""

import json
import shutil

import numpy as np
import pytest

from raykd.data import DataSource, load_split, load_task_data, tokenize
from raykd.splits import subsample
from raykd.errors import RaykdError
from raykd.tasks import TASKS, get_task


@pytest.mark.parametrize("task, train_rows, dev_rows", [
    ("rte", 2490, 277), ("mrpc", 3668, 408), ("cola", 8551, 1043), ("sst2", 67349, 872), ("stsb", 5749, 1500)])
def test_glue_tsvs_load_with_all_rows(glue_dir, task, train_rows, dev_rows):
    source = DataSource(data_dir=str(glue_dir))
    train, dev = load_split(get_task(task), "train", source), load_split(get_task(task), "dev", source)
    assert (len(train), len(dev)) == (train_rows, dev_rows)


def test_label_ids_follow_the_hub_order(glue_dir):
    dev = load_split(get_task("rte"), "dev", DataSource(data_dir=str(glue_dir)))
    assert np.bincount(dev["label"]).tolist() == [146, 131]  # entailment = 0, as in nyu-mll/glue
    mrpc = load_split(get_task("mrpc"), "dev", DataSource(data_dir=str(glue_dir)))
    assert sum(mrpc["label"]) == 279 and not mrpc["text_a"][0].startswith("\ufeff")
    stsb = load_split(get_task("stsb"), "train", DataSource(data_dir=str(glue_dir)))
    assert isinstance(stsb["label"][0], float) and 0 <= min(stsb["label"]) and max(stsb["label"]) <= 5
    cola = load_split(get_task("cola"), "train", DataSource(data_dir=str(glue_dir)))
    assert "text_b" not in cola.column_names and sum(cola["label"]) == 6023


def test_task_table_covers_glue():
    assert set(TASKS) == {"cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli"}
    assert get_task("SST-2").name == "sst2" and get_task("stsb").is_regression
    with pytest.raises(RaykdError, match="unknown task 'nope'; choose one of cola"):
        get_task("nope")


def copy_rte(glue_dir, tmp_path):
    shutil.copytree(glue_dir / "RTE", tmp_path / "RTE")
    return tmp_path


def corrupt(path, line_number, new_line):
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[line_number - 1] = new_line
    path.write_text("\n".join(lines), encoding="utf-8")


@pytest.mark.parametrize("bad_line, message", [
    ("7\tonly one sentence", r"train.tsv:5: expected 4 tab-separated columns, found 2"),
    ("7\tA man.\tA person.\tmaybe", r"train.tsv:5: label 'maybe' is not one of entailment, not_entailment"),
    ("7\t \tA person.\tentailment", r"train.tsv:5: empty text in text_a"),
])
def test_bad_rows_name_file_and_line(glue_dir, tmp_path, bad_line, message):
    root = copy_rte(glue_dir, tmp_path)
    corrupt(root / "RTE" / "train.tsv", 5, bad_line)
    with pytest.raises(RaykdError, match=message):
        load_split(get_task("rte"), "train", DataSource(data_dir=str(root)))


def test_missing_folder_file_and_empty_split(glue_dir, tmp_path):
    with pytest.raises(RaykdError, match="does not exist; pass --data-dir"):
        load_split(get_task("rte"), "train", DataSource(data_dir=str(tmp_path / "nowhere")))
    root = copy_rte(glue_dir, tmp_path)
    (root / "RTE" / "dev.tsv").unlink()
    with pytest.raises(RaykdError, match="missing file .*dev.tsv"):
        load_split(get_task("rte"), "dev", DataSource(data_dir=str(root)))
    (root / "RTE" / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n")
    with pytest.raises(RaykdError, match="the dev split of rte has no rows"):
        load_split(get_task("rte"), "dev", DataSource(data_dir=str(root)))


def test_user_csv_and_json_files(tmp_path):
    csv_path = tmp_path / "train.csv"
    csv_path.write_text("premise,hypothesis,gold\nA cat sat.,An animal sat.,entailment\nIt rained.,It was dry.,not_entailment\n")
    json_path = tmp_path / "dev.jsonl"
    json_path.write_text("\n".join(json.dumps({"premise": p, "hypothesis": h, "gold": g})
                                   for p, h, g in [("x y", "y", "entailment")]))
    source = DataSource(train_file=str(csv_path), dev_file=str(json_path),
                        text_columns=("premise", "hypothesis"), label_column="gold")
    train = load_split(get_task("rte"), "train", source)
    assert train["label"] == [0, 1] and train["text_b"][1] == "It was dry."
    assert load_split(get_task("rte"), "dev", source)["text_a"] == ["x y"]
    with pytest.raises(RaykdError, match="no column.*name them with --text-columns"):
        load_split(get_task("rte"), "train", DataSource(train_file=str(csv_path)))


def test_train_fraction_is_seeded_and_stratified(glue_dir):
    rte = get_task("rte")
    train = load_split(rte, "train", DataSource(data_dir=str(glue_dir)))
    a, b = subsample(rte, train, 0.1, seed=1), subsample(rte, train, 0.1, seed=1)
    assert len(a) == 249 and a["text_a"] == b["text_a"]
    assert subsample(rte, train, 0.1, seed=2)["text_a"] != a["text_a"]
    assert abs(sum(a["label"]) / len(a) - sum(train["label"]) / len(train)) < 1 / len(a)  # each class keeps its share
    assert subsample(rte, train, 1.0, seed=1) is train
    with pytest.raises(RaykdError, match="--train-fraction 0 is out of range"):
        subsample(rte, train, 0, seed=1)
    with pytest.raises(RaykdError, match=r"cannot keep 0.01 of the 100 training rows .*; raise --train-fraction"):
        subsample(rte, train.select(range(100)), 0.01, seed=1)  # 1 row cannot hold both classes


def test_tokenize_truncates_without_padding_and_caches(glue_dir, tokenizer, tmp_path):
    dev = load_split(get_task("rte"), "dev", DataSource(data_dir=str(glue_dir)))
    first = tokenize(dev, tokenizer, 64, tmp_path)
    lengths = [len(x) for x in first["input_ids"]]
    assert max(lengths) == 64 and min(lengths) < 64
    assert first["input_ids"][0][0] == tokenizer.cls_token_id and "token_type_ids" in first.column_names
    cached = list((tmp_path / "tokenized").glob("*.arrow"))
    assert len(cached) == 1
    again = tokenize(dev, tokenizer, 64, tmp_path)
    assert again["input_ids"] == first["input_ids"] and again.cache_files[0]["filename"] == str(cached[0])
    data = load_task_data(get_task("rte"), DataSource(data_dir=str(glue_dir)), tokenizer, 64, 0.05, 0, tmp_path)
    assert len(data["train"]["labels"]) == 124 and len(data["dev"]["labels"]) == 277
