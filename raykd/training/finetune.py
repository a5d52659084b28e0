"""Fine-tuning a teacher on Ray Train, and where fine-tuned teachers live.

A teacher folder holds the weights (`save_pretrained`), the tokenizer and `teacher.json`, the record
of the run that made it. The record is written last, so a folder counts as a usable teacher only when
it has all three (`is_usable`); a folder left by a kill, or whose weights were deleted, is never
mistaken for one.

Teachers that raykd fine-tunes on its own (`python -m raykd.teacher` without `--out`, or a search
without `--teacher`) live in the cache, `<cache-dir>/teachers/<task>-<base>-<recipe key>/`, keyed by
everything that decides the weights: base model, hyperparameters, and the tokenized train and dev
sets. A second search with the same recipe reuses the teacher; a changed recipe gets its own. The
results folder receives only a copy of the record (`<results>/teachers/<name>.json`): records are
committed, weights are not, and no committed file can make a folder look like a teacher.

By default a teacher is fine-tuned without the validation split a search holds out to select its students
on (the same fraction, data seed and rows: raykd.splits.split_train), and its best epoch is chosen on that split.
A teacher that trained on those rows scores far higher there than on dev (CoLA: 61.8 against 29.0
Matthews, results/paper/notes.md), so students that copy it most win the selection whatever they score on
dev.
"""

from __future__ import annotations

import json
import shlex
import shutil
import time
from pathlib import Path

from datasets.fingerprint import Hasher

from raykd import files, models
from raykd.errors import RaykdError
from raykd.method.config import DistillConfig
from raykd.tasks import Task
from raykd.training.driver import Scaling, fit_and_export
from raykd.training.epochs import epoch_log, history
from raykd.training.job import Job
from raykd.training.progress import EpochProgress

RECORD = "teacher.json"
# The teacher's recipe: the hyperparameters `python -m raykd.teacher` takes as flags, and their defaults.
FIELDS = ("epochs", "learning_rate", "warmup_ratio", "weight_decay", "batch_size", "seed", "precision",
          "group_by_length")
# Teachers stay fp32 by default: bf16 matched fp32 for distilled students (results/parity.md), but no
# teacher was measured both ways, and the teacher bounds every student. `--precision auto` is one flag away.
DEFAULTS = DistillConfig(algorithm="finetune", epochs=6, learning_rate=5e-5, precision="fp32")


def is_usable(folder: Path) -> bool:
    """True when `folder` holds a finished teacher: config, weights and the run record."""
    folder = Path(folder)
    has_weights = any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))
    return (folder / "config.json").is_file() and has_weights and (folder / RECORD).is_file()


def recipe_dir(cache_dir: Path, task: Task, base: str, cfg: DistillConfig, data: dict, max_seq_length: int) -> Path:
    """`<cache-dir>/teachers/<task>-<base>-<key>`: the key hashes (with datasets' Hasher) the base,
    the hyperparameters, the tokenized train, dev and (when held out) validation sets and the max length."""
    held_out = [data["validation"]] if "validation" in data else []  # keys of teachers without one stay as they were
    key = Hasher.hash([base, cfg.to_dict(), data["train"], data["dev"], max_seq_length, *held_out])[:12]
    return Path(cache_dir).resolve() / "teachers" / f"{task.name}-{Path(base).name}-{key}"


def split_record(data: dict, train_fraction: float, validation_fraction: float, data_seed: int) -> dict:
    """The record fields that say which rows a teacher trained on and was chosen on: `train_examples` (rows
    it fine-tuned on) and `train_fraction`, and with a held-out split `validation_examples`,
    `validation_fraction`, `data_seed` (raykd.splits.split_train: these two decide the held-out rows)."""
    rows = {"train_examples": len(data["train"]["labels"]), "train_fraction": train_fraction}
    if "validation" in data:
        rows.update(validation_examples=len(data["validation"]["labels"]), validation_fraction=validation_fraction,
                    data_seed=data_seed)
    return rows


def scores(record: dict, task: Task) -> str:
    """`validation <metric> 0.6179, dev <metric> 0.2900`, or the dev score alone for a teacher chosen on
    dev (none held out), from a teacher's record."""
    shown = [f"{split} {task.main_metric} {record[key]:.4f}" for split, key in
             (("validation", f"val_{task.main_metric}"), ("dev", f"dev_{task.main_metric}")) if key in record]
    return ", ".join(shown) or "no dev score recorded"


def job(task: Task, base: str, cfg: DistillConfig, data_ref, tokenizer_dir) -> Job:
    """The worker loop's job (raykd.training.worker) that fine-tunes `base` on the task with recipe `cfg`;
    `data_ref` is the ObjectRef of load_task_data's dict, `tokenizer_dir` a folder all workers can read."""
    return Job(task=task.name, data=data_ref, tokenizer_dir=str(tokenizer_dir), recipe=cfg, base=models.resolve_base(base))


def finetune_teacher(task: Task, base: str, cfg: DistillConfig, data_ref, rows: dict, scaling: Scaling,
                     out: Path, tokenizer, command: str, max_failures: int = 1, replace: bool = False,
                     local: bool = False) -> dict:
    """Fine-tune `base` (a name for `models.resolve_base`) on the task with the worker loop of
    raykd.training.worker and save its best epoch to `out` with its record; returns the record. The best
    epoch is chosen on the data's validation split when it has one (raykd.splits.hold_out), else on dev;
    `rows` is split_record's, kept in the record.

    The run goes to `.<out>.partial` (raykd.files.publish_dir) and is renamed to `out` only when finished, so an interrupted run
    never leaves a folder that looks usable. `replace` lets it replace an unusable `out` (a cache
    entry whose weights were deleted). One worker on the local cluster (`local`) trains in this process
    (raykd.training.driver.fit_and_export). Prints one line per epoch.

    Raises RaykdError when the run fails or produces no usable epoch.
    """
    out = Path(out).resolve()
    name = f"teacher-{task.name}"
    try:
        with files.publish_dir(out, replace=replace, keep_on_error=True) as partial:
            tokenizer.save_pretrained(partial / "ray" / "tokenizer")
            spec = job(task, base, cfg, data_ref, partial / "ray" / "tokenizer")
            started = time.perf_counter()
            with EpochProgress(epoch_log(partial / "ray", name), f"teacher {task.name}", cfg.epochs, task.main_metric):
                best = fit_and_export(spec, scaling, partial / "ray", name, partial, local, max_failures,
                                      what="teacher fine-tuning")
            record = {"task": task.name, "base": base, "best_epoch": best["epoch"],
                      **{k: v for k, v in best.items() if k.startswith(("dev_", "val_"))},
                      "history": history(epoch_log(partial / "ray", name)), "config": cfg.to_dict(),
                      "selected_on": f"{'val' if 'validation_examples' in rows else 'dev'}_{task.main_metric}",
                      **rows, "seconds": round(time.perf_counter() - started, 1),
                      "command": command}
            shutil.rmtree(partial / "ray")  # checkpoints: the best one is exported, the rest are not needed
            files.atomic_json(partial / RECORD, record)
    except FileExistsError:
        raise RaykdError(f"{out} appeared while the teacher was fine-tuned; choose another --out") from None
    return record


def copy_record(record: dict, folder: Path, records_root: Path) -> Path:
    """Copy a teacher's record to `<records_root>/teachers/<folder name>-<time>.json` (never overwriting)."""
    target = Path(records_root) / "teachers" / f"{Path(folder).name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "x") as f:  # exclusive: an existing record is never replaced
        json.dump({**record, "folder": str(folder)}, f, indent=2, default=str)
    return target


def find_record(folder: Path, records_root: Path, first: bool = False) -> dict:
    """A teacher's record: its folder's teacher.json, else (the weights are never committed, so a clone has
    only the copies) the newest copy under `<records_root>/teachers/` (`<folder name>-<time>.json` from
    copy_record, or `<folder name>.json` from earlier versions); {} when there is none.

    `first`: the oldest copy before the folder's teacher.json: the teacher's own run, which a refit from its
    record (another machine's weights, sometimes another score) neither replaces nor hides. A table built
    from it reads the same on every machine."""
    name = Path(folder).name
    copies = sorted(Path(records_root).glob(f"teachers/{name}-*.json")) or \
        sorted(Path(records_root).glob(f"teachers/{name}.json"))
    if first and copies:
        path = copies[0]
    else:
        path = Path(folder) / RECORD if (Path(folder) / RECORD).is_file() else (copies[-1] if copies else None)
    return json.loads(path.read_text()) if path else {}


def _own_record(folder: Path, task: Task) -> dict:
    """The teacher.json in `folder` when it is a record of `task`, else {} (none, another task's, not a JSON
    object). Never raises."""
    try:
        record = json.loads((Path(folder) / RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) and record.get("task") == task.name else {}


def trained_rows(folder: Path, task: Task) -> int | None:
    """How many of `task`'s training rows the teacher in `folder` was fine-tuned on (its teacher.json's
    `train_examples`); None when unknown: no record (not raykd's teacher), a record of another task, or one
    that is not a readable JSON object. Never raises: it only decides a caution line in the summary."""
    rows = _own_record(folder, task).get("train_examples")
    return rows if isinstance(rows, int) else None


def held_out(folder: Path, task: Task) -> dict | None:
    """{"validation_fraction", "data_seed"}: the split the teacher in `folder` held out of its training set,
    which decides its held-out rows (raykd.splits.split_train), with `of_train_fraction` added for a teacher made
    before split_train with --train-fraction < 1 (it held its rows out of that share: other rows); None when it
    held out none or its record does not say. Never raises, like trained_rows."""
    record = _own_record(folder, task)
    if not record.get("validation_fraction") or not isinstance(record.get("data_seed"), int):
        return None
    split = {"validation_fraction": record["validation_fraction"], "data_seed": record["data_seed"]}
    # Records from before split_train lack `train_fraction`: such a teacher made with --train-fraction < 1 held
    # its rows out of that share, so they are other rows than split_train's; only its command says so.
    share = record["train_fraction"] if "train_fraction" in record else _command_fraction(record.get("command"))
    return split if "train_fraction" in record or share == 1.0 else {**split, "of_train_fraction": share}


def _command_fraction(command) -> float:
    """The --train-fraction of a recorded command line (1.0 when absent, unreadable or not a string)."""
    if not isinstance(command, str):  # shlex.split(None) would read stdin
        return 1.0
    try:
        words = shlex.split(command)
        value = next(w.split("=", 1)[1] if "=" in w else words[i + 1]
                     for i, w in enumerate(words) if w.split("=", 1)[0] == "--train-fraction")
        return float(value)
    except (ValueError, IndexError, StopIteration):
        return 1.0


def describe(folder: Path, task: Task) -> str:
    """One line naming a teacher folder and its dev score from its record."""
    record = json.loads((Path(folder) / RECORD).read_text())
    return f"{folder} ({record.get('base', '?')}, {scores(record, task)}, epoch {record.get('best_epoch', '?')})"
