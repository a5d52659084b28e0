"""Train and dev sets: loading (GLUE TSV folder, Hub, or the user's CSV/JSON), tokenization, batching.

Every source becomes a `datasets.Dataset` with columns `text_a`, optional `text_b` and `label`
(class id, or a float for regression), then is tokenized once with the teacher's tokenizer and cached.
"""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import datasets
from datasets.fingerprint import Hasher

from raykd.errors import RaykdError
from raykd.tasks import Task

DEFAULT_CACHE = Path(os.environ.get("RAYKD_CACHE", Path.home() / ".cache" / "raykd"))


@dataclass(frozen=True)
class DataSource:
    """Where a task's examples come from. No folder and no files means the Hugging Face Hub."""
    data_dir: str | None = None
    train_file: str | None = None
    dev_file: str | None = None
    text_columns: tuple[str, ...] = ()
    label_column: str = "label"


def load_split(task: Task, split: str, source: DataSource) -> datasets.Dataset:
    """`split` is "train" or "dev"."""
    custom = source.train_file if split == "train" else source.dev_file
    if custom:
        ds = _read_custom(task, Path(custom), source)
    elif source.data_dir:
        stem = "train" if split == "train" else task.dev_split
        ds = _read_glue_tsv(task, Path(source.data_dir) / task.tsv_dir / f"{stem}.tsv")
    else:
        ds = _read_hub(task, "train" if split == "train" else task.hub_dev_split)
    if len(ds) == 0:
        raise RaykdError(f"the {split} split of {task.name} has no rows; point --data-dir or --{split}-file at a labelled file")
    return ds


def _label_id(task: Task, value: str, where: str):
    if task.is_regression:
        try:
            return float(value)
        except ValueError:
            raise RaykdError(f"{where}: label {value!r} is not a number; {task.name} is a regression task") from None
    if value not in task.labels:
        raise RaykdError(f"{where}: label {value!r} is not one of {', '.join(task.labels)}; fix or remove the row")
    return task.labels.index(value)


def _rows_to_dataset(task: Task, rows: list[tuple[list[str], str, str]]) -> datasets.Dataset:
    """rows: (texts, label, where) with `where` naming the file and line for errors."""
    columns = {"text_a": [], "label": []}
    if rows and len(rows[0][0]) == 2:
        columns["text_b"] = []
    for texts, label, where in rows:
        for name, text in zip(("text_a", "text_b"), texts):
            if not text or not text.strip():
                raise RaykdError(f"{where}: empty text in {name}; fix or remove the row")
            columns[name].append(text)
        columns["label"].append(_label_id(task, label, where))
    return datasets.Dataset.from_dict(columns)


def _read_glue_tsv(task: Task, path: Path) -> datasets.Dataset:
    if not path.parent.is_dir():
        raise RaykdError(f"data folder {path.parent} does not exist; pass --data-dir pointing at GLUE's TSV folders (e.g. ../shared/data/glue)")
    if not path.is_file():
        raise RaykdError(f"missing file {path}; a GLUE task folder needs train.tsv and {task.dev_split}.tsv")
    # GLUE's TSVs are not quoted and contain stray '"'; MRPC starts with a BOM.
    with open(path, encoding="utf-8-sig", newline="") as f:
        lines = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = lines[0] if task.has_header else None
    body = lines[1:] if task.has_header else lines
    width = len(header) if header else 4
    where_text = task.tsv_text_columns
    where_label = task.tsv_label_column
    if header:
        missing = [c for c in (*where_text, where_label) if c not in header]
        if missing:
            raise RaykdError(f"{path}: header lacks column(s) {', '.join(missing)}; is this the {task.name} file with labels?")
        where_text = [header.index(c) for c in where_text]
        where_label = header.index(where_label)
    rows = []
    first_line = 2 if header else 1
    for number, fields in enumerate(body, start=first_line):
        where = f"{path}:{number}"
        if len(fields) != width:
            raise RaykdError(f"{where}: expected {width} tab-separated columns, found {len(fields)}; fix or remove the row")
        rows.append(([fields[i] for i in where_text], fields[where_label], where))
    return _rows_to_dataset(task, rows)


def _read_custom(task: Task, path: Path, source: DataSource) -> datasets.Dataset:
    if not path.is_file():
        raise RaykdError(f"missing file {path}; pass an existing CSV or JSON file")
    kind = {".csv": "csv", ".json": "json", ".jsonl": "json"}.get(path.suffix)
    if kind is None:
        raise RaykdError(f"{path}: unsupported file type {path.suffix!r}; use .csv, .json or .jsonl")
    raw = datasets.load_dataset(kind, data_files=str(path), split="train")
    text_columns = source.text_columns or task.hub_text_fields
    missing = [c for c in (*text_columns, source.label_column) if c not in raw.column_names]
    if missing:
        raise RaykdError(f"{path}: no column(s) {', '.join(missing)}; name them with --text-columns and --label-column")
    rows = [([str(r[c]) if r[c] is not None else "" for c in text_columns], str(r[source.label_column]), f"{path}:row {i + 1}")
            for i, r in enumerate(raw)]
    return _rows_to_dataset(task, rows)


def _read_hub(task: Task, split: str) -> datasets.Dataset:
    raw = datasets.load_dataset("nyu-mll/glue", task.name, split=split)
    columns = {"text_a": raw[task.hub_text_fields[0]], "label": raw["label"]}
    if len(task.hub_text_fields) == 2:
        columns["text_b"] = raw[task.hub_text_fields[1]]
    return datasets.Dataset.from_dict(columns)


def subsample(ds: datasets.Dataset, fraction: float, seed: int) -> datasets.Dataset:
    """A seeded random share of the rows, for low-data runs."""
    if not 0 < fraction <= 1:
        raise RaykdError(f"--train-fraction {fraction} is out of range; it must be in (0, 1]")
    if fraction == 1:
        return ds
    keep = max(1, round(len(ds) * fraction))
    return ds.shuffle(seed=seed).select(range(keep)).flatten_indices()


def writable_folder(path: Path) -> Path:
    """Create `path` and check that files can be written there (tokenized data, teacher outputs)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise RaykdError(f"cannot write the cache to {path} ({err.strerror}); pass a writable --cache-dir") from None
    return path


def tokenize(ds: datasets.Dataset, tokenizer, max_seq_length: int, cache_dir: Path = DEFAULT_CACHE) -> datasets.Dataset:
    """Token ids without padding (batches are padded on the fly), cached on disk by content."""
    cache_dir = writable_folder(Path(cache_dir) / "tokenized")
    key = Hasher.hash([Hasher.hash(ds.to_dict()), tokenizer, max_seq_length])
    pair = "text_b" in ds.column_names

    def encode(batch):
        args = (batch["text_a"], batch["text_b"]) if pair else (batch["text_a"],)
        return tokenizer(*args, truncation=True, max_length=max_seq_length)

    encoded = ds.map(encode, batched=True, remove_columns=[c for c in ds.column_names if c != "label"],
                     cache_file_name=str(cache_dir / f"{key}.arrow"), desc="tokenizing")
    return encoded.rename_column("label", "labels")


def as_columns(ds: datasets.Dataset) -> dict[str, list]:
    """Plain lists, cheap to ship to Ray workers through the object store."""
    return ds.with_format(None).to_dict()


def load_task_data(task: Task, source: DataSource, tokenizer, max_seq_length: int = 128,
                   train_fraction: float = 1.0, seed: int = 42, cache_dir: Path = DEFAULT_CACHE) -> dict:
    """{"train": columns, "dev": columns}, tokenized, ready for the workers."""
    if max_seq_length < 8:
        raise RaykdError(f"--max-seq-length {max_seq_length} is too short; use at least 8 (default 128)")
    train = subsample(load_split(task, "train", source), train_fraction, seed)
    dev = load_split(task, "dev", source)
    return {split: as_columns(tokenize(ds, tokenizer, max_seq_length, cache_dir))
            for split, ds in (("train", train), ("dev", dev))}
