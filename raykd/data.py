"""Train and dev sets: loading (GLUE TSV folder, Hub, or the user's CSV/JSON), tokenization, batching.

Every source becomes a `datasets.Dataset` with columns `text_a`, optional `text_b` and `label`
(class id, or a float for regression), then is tokenized once with the teacher's tokenizer and cached.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import datasets
import pandas as pd
from datasets.fingerprint import Hasher

from raykd.errors import RaykdError
from raykd.metrics import check_defined
from raykd.splits import check_classes, split_train
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
    """`split` is "train" or "dev". Every cell is read as text; rows are then checked one by one.

    Raises RaykdError naming the file, the row (or line) and the value for a missing or unreadable
    file, a file that is not UTF-8, a ragged row, a missing or empty cell, an unknown label, or a
    regression label that is not a finite number.
    """
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


def read_text(path: Path) -> str:
    """The file's text (a UTF-8 byte-order mark dropped).

    Raises RaykdError naming the line, column and byte where the file is not UTF-8, or why it cannot be read.
    """
    try:
        data = path.read_bytes()
    except OSError as err:
        raise RaykdError(f"cannot read {path} ({err.strerror}); check the path and its permissions") from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise RaykdError(f"{path} is UTF-16 (it starts with a UTF-16 byte-order mark); save the file as UTF-8")
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - data.rfind(b"\n", 0, err.start)
        raise RaykdError(f"{path}:{line}: byte 0x{data[err.start]:02x} at column {column} is not UTF-8 (perhaps the file is "
                         f"Windows-1252 or Latin-1); save the file as UTF-8") from None


def _label_id(task: Task, value: str | None, where: str):
    if value is None or not value.strip():
        raise RaykdError(f"{where}: no label; fill it in or remove the row")
    value = value.strip()
    if task.is_regression:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise RaykdError(f"{where}: label {value!r} is not a number; {task.name} is a regression task: "
                             "give scores such as 3.8, or remove the row")
        return number
    if value not in task.labels:
        value = _integral(value)  # "1.0" where the task's label is "1": the number it is, in every file format
    if value not in task.labels:
        raise RaykdError(f"{where}: label {value!r} is not one of {', '.join(task.labels)}; fix or remove the row")
    return task.labels.index(value)


def _integral(value: str) -> str:
    """"1.0" -> "1" (a class id written as a float by a spreadsheet or pandas); any other text unchanged."""
    try:
        number = float(value)
    except ValueError:
        return value
    return str(int(number)) if number.is_integer() else value


def _rows_to_dataset(task: Task, rows: list[tuple[list[str | None], str | None, str]],
                     names: tuple[str, ...] = ("text_a", "text_b")) -> datasets.Dataset:
    """rows: (texts, label, where) with `where` naming the file and row for errors; a text or label of
    None is a missing cell. `names` are the text columns as the user knows them. Raises RaykdError
    for a missing or empty text or a bad label (_label_id)."""
    columns = {"text_a": [], "label": []}
    if rows and len(rows[0][0]) == 2:
        columns["text_b"] = []
    for texts, label, where in rows:
        for column, name, text in zip(("text_a", "text_b"), names, texts):
            if text is None:
                raise RaykdError(f"{where}: no value in column {name!r}; fill it in or remove the row")
            if not text.strip():
                raise RaykdError(f"{where}: empty text in {name}; fix or remove the row")
            columns[column].append(text)
        columns["label"].append(_label_id(task, label, where))
    return datasets.Dataset.from_dict(columns)


def _read_glue_tsv(task: Task, path: Path) -> datasets.Dataset:
    if not path.parent.is_dir():
        raise RaykdError(f"data folder {path.parent} does not exist; pass --data-dir pointing at GLUE's TSV folders (e.g. ../shared/data/glue)")
    if not path.is_file():
        raise RaykdError(f"missing file {path}; a GLUE task folder needs train.tsv and {task.dev_split}.tsv")
    # GLUE's TSVs are not quoted and contain stray '"' (QUOTE_NONE keeps them as text); MRPC starts with a BOM.
    reader = csv.reader(io.StringIO(read_text(path), newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    try:
        lines = list(reader)
    except csv.Error as err:
        raise RaykdError(f"{path}:{reader.line_num}: {err}; fix or remove the row") from None
    if not lines:
        raise RaykdError(f"{path} is empty; a GLUE task folder needs train.tsv and {task.dev_split}.tsv with rows")
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


CUSTOM_KINDS = (".csv", ".tsv", ".json", ".jsonl")


def _read_custom(task: Task, path: Path, source: DataSource) -> datasets.Dataset:
    if not path.is_file():
        raise RaykdError(f"missing file {path}; pass an existing CSV, TSV, JSON or JSON-lines file")
    if path.suffix.lower() not in CUSTOM_KINDS:
        raise RaykdError(f"{path}: unsupported file type {path.suffix!r}; use {', '.join(CUSTOM_KINDS)}")
    text_columns = source.text_columns or task.hub_text_fields
    if len(text_columns) != len(task.hub_text_fields):
        kind = "sentence pairs" if len(task.hub_text_fields) == 2 else "single sentences"
        raise RaykdError(f"{task.name} takes {len(task.hub_text_fields)} text column(s) ({kind}) but --text-columns names "
                         f"{len(text_columns)} ({', '.join(text_columns)}); name {len(task.hub_text_fields)}, e.g. "
                         f"--text-columns {','.join(task.hub_text_fields)}")
    frame, where = _read_table(path)
    missing = [c for c in (*text_columns, source.label_column) if c not in frame.columns]
    if missing:
        raise RaykdError(f"{path}: no column(s) {', '.join(missing)} (it has {', '.join(map(str, frame.columns))}); "
                         "name them with --text-columns and --label-column")
    rows = []
    for i, record in enumerate(frame.to_dict("records")):
        here = f"{path}:{where[i]}"
        rows.append(([_cell(record[c], here, c) for c in text_columns],
                     _cell(record[source.label_column], here, source.label_column), here))
    return _rows_to_dataset(task, rows, tuple(text_columns))


def _read_table(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """The file as a table of text cells (CSV/TSV: pandas with dtype=str and no NA guessing, so `NA`,
    `null` or `None` stay words; JSON: the values as written), and where each row is, for errors.
    Raises RaykdError for an empty or unparsable file, or a JSON record that is not an object."""
    text = read_text(path)
    if path.suffix.lower() in (".csv", ".tsv"):
        tsv = path.suffix.lower() == ".tsv"
        try:
            frame = pd.read_csv(io.StringIO(text), sep="\t" if tsv else ",", dtype=str, keep_default_na=False,
                                skip_blank_lines=False, quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL)
        except pd.errors.EmptyDataError:
            raise RaykdError(f"{path} is empty; it needs a header line and labelled rows") from None
        except pd.errors.ParserError as err:
            found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
            if found:
                quote = "" if tsv else ' (quote a text that holds a comma: "a, b")'
                raise RaykdError(f"{path}:{found[2]}: expected {found[1]} columns, found {found[3]}{quote}; "
                                 "fix or remove the row") from None
            raise RaykdError(f"{path}: not a readable {'TSV' if tsv else 'CSV'} file ({str(err).strip()}); fix the file") from None
        frame = frame[(frame != "").any(axis=1)]  # blank lines; the index keeps the rows' real numbers
        return frame, [f"row {i + 1}" for i in frame.index]
    records, where = _json_records(path, text)
    bad = next((i for i, r in enumerate(records) if not isinstance(r, dict)), None)
    if bad is not None:
        raise RaykdError(f"{path}:{where[bad]}: expected an object with the columns, found {type(records[bad]).__name__}; "
                         "write one JSON object per example")
    return pd.DataFrame(records, dtype=object), where


def _json_records(path: Path, text: str) -> tuple[list, list[str]]:
    """A JSON array of objects, an object of columns, or JSON lines (one object per line), and where
    each record is. Raises RaykdError for invalid JSON, columns of different lengths, or a .json file
    that holds no list of records."""
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            if err.msg != "Extra data":  # "Extra data": several values, i.e. JSON lines
                raise RaykdError(f"{path}:{err.lineno}: not valid JSON ({err.msg}); fix the file") from None
        else:
            if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
                data = next(iter(data.values()))  # {"data": [...]}
            if isinstance(data, dict) and all(isinstance(v, list) for v in data.values()):
                try:
                    data = pd.DataFrame(data, dtype=object).to_dict("records")
                except ValueError:
                    raise RaykdError(f"{path}: its columns have different lengths; give every column a value per row") from None
            if not isinstance(data, list):
                raise RaykdError(f"{path}: expected a list of objects (one per example) or JSON lines; fix the file")
            return data, [f"row {i + 1}" for i in range(len(data))]
    records, where = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise RaykdError(f"{path}:{number}: not valid JSON ({err.msg}); write one JSON object per line") from None
            where.append(f"line {number}")
    return records, where


def _cell(value, where: str, column: str) -> str | None:
    """A cell as text; None for a missing one. JSON numbers become their text (1 -> "1", 1.0 -> "1").
    Raises RaykdError for any other value (a list, an object, a boolean)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise RaykdError(f"{where}: column {column!r} holds {json.dumps(value)}, not text or a number; fix or remove the row")


def _read_hub(task: Task, split: str) -> datasets.Dataset:
    try:
        raw = datasets.load_dataset("nyu-mll/glue", task.name, split=split)
    except Exception as err:  # offline, no such split, a network error: datasets raises many kinds
        line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise RaykdError(f"cannot load {task.name} ({split}) from the Hugging Face Hub's nyu-mll/glue ({line}); pass "
                         "--data-dir with GLUE's TSV folders, or both --train-file and --dev-file") from None
    columns = {"text_a": raw[task.hub_text_fields[0]], "label": raw["label"]}
    if len(task.hub_text_fields) == 2:
        columns["text_b"] = raw[task.hub_text_fields[1]]
    return datasets.Dataset.from_dict(columns)


def writable_folder(path: Path) -> Path:
    """Create `path` and check that files can be written there (tokenized data, teacher outputs).
    Raises RaykdError when they cannot."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise RaykdError(f"cannot write the cache to {path} ({err.strerror}); pass a writable --cache-dir "
                         "(or RAYKD_CACHE)") from None
    return path


def tokenize(ds: datasets.Dataset, tokenizer, max_seq_length: int, cache_dir: Path = DEFAULT_CACHE) -> datasets.Dataset:
    """Token ids without padding (batches are padded on the fly), cached on disk by content under
    `<cache_dir>/tokenized`: the tokenizer's columns and `labels`. Raises RaykdError when that folder
    is not writable."""
    cache_dir = writable_folder(Path(cache_dir) / "tokenized")
    key = Hasher.hash([Hasher.hash(ds.to_dict()), tokenizer, max_seq_length])
    pair = "text_b" in ds.column_names

    def encode(batch):
        """Tokenize a batch of rows (as pairs when there is text_b), truncated to `max_seq_length` tokens."""
        args = (batch["text_a"], batch["text_b"]) if pair else (batch["text_a"],)
        return tokenizer(*args, truncation=True, max_length=max_seq_length)

    encoded = ds.map(encode, batched=True, remove_columns=[c for c in ds.column_names if c != "label"],
                     cache_file_name=str(cache_dir / f"{key}.arrow"), desc="tokenizing")
    return encoded.rename_column("label", "labels")


def as_columns(ds: datasets.Dataset) -> dict[str, list]:
    """Plain lists, cheap to ship to Ray workers through the object store."""
    return ds.with_format(None).to_dict()


def check_arguments(max_seq_length: int, train_fraction: float, seed: int):
    """The data flags alone. Raises RaykdError for --max-seq-length < 8, --train-fraction outside
    (0, 1] or a negative --data-seed."""
    if max_seq_length < 8:
        raise RaykdError(f"--max-seq-length {max_seq_length} is too short; use at least 8 (default 128)")
    if not 0 < train_fraction <= 1:
        raise RaykdError(f"--train-fraction {train_fraction} is out of range; it must be in (0, 1]")
    if seed < 0:
        raise RaykdError(f"--data-seed {seed} is negative; use a seed >= 0")


def load_checked(task: Task, source: DataSource) -> tuple[datasets.Dataset, datasets.Dataset]:
    """(train, dev) read and checked row by row, the dev labels checked to give the task's metrics a value
    (raykd.metrics.check_defined). Raises RaykdError on bad data."""
    train = load_split(task, "train", source)
    check_classes(task, train["label"], f"the training set ({source.train_file or 'GLUE train'})",
                  "add rows of every class, or use the task whose labels the file has")
    dev = load_split(task, "dev", source)
    check_defined(task, dev["label"])
    return train, dev


def load_task_data(task: Task, source: DataSource, tokenizer, max_seq_length: int = 128,
                   train_fraction: float = 1.0, seed: int = 42, cache_dir: Path = DEFAULT_CACHE,
                   validation_fraction: float = 0.0) -> dict:
    """{"train": columns, "dev": columns}, tokenized, ready for the workers. With `validation_fraction`
    > 0 also "validation": that share of the training set held out (`split_train`: before `train_fraction`
    cuts both sides), and "train" is the rest. Raises RaykdError on bad flags or data (see
    check_arguments, load_checked and split_train)."""
    check_arguments(max_seq_length, train_fraction, seed)
    train, dev = load_checked(task, source)
    train, validation = split_train(task, train, train_fraction, validation_fraction, seed)
    splits = {"train": train, "dev": dev}
    if validation is not None:
        splits["validation"] = validation
    return {split: as_columns(tokenize(ds, tokenizer, max_seq_length, cache_dir)) for split, ds in splits.items()}
