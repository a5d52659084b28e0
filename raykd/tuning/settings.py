"""An experiment's settings (experiment.json) and --resume: the flags a search started with, the copy of its
space file, and the check that a resumed run contradicts neither."""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from pathlib import Path

from raykd import files
from raykd.errors import RaykdError
from raykd.tasks import get_task


EXPERIMENT = "experiment.json"


# The flags a search starts with, kept in experiment.json: --resume uses them (ASHA's max_t, the trials'
# epochs, the data...) and refuses a flag that says otherwise.
SETTINGS = ("num_samples", "max_epochs", "grace_period", "reduction_factor", "seed", "max_concurrent_trials",
            "workers", "cpus_per_worker", "gpus_per_worker", "max_failures", "precision", "data_dir", "train_file",
            "dev_file", "text_columns", "label_column", "max_seq_length", "train_fraction", "data_seed",
            "teacher_cache_memory", "teacher_cache_disk", "live_teacher", "cache_dir", "select_on", "validation_fraction",
            "confirm_top", "confirm_seeds", "objective", "latency_budget_ms", "max_params", "latency_backend",
            "serving_threads", "latency_seq_length", "latency_bands")


# What an experiment started before a setting existed did, for --resume (it selected on GLUE dev).
LEGACY = {"select_on": "dev"}


FLAGS = {"workers": "--workers-per-trial"}


SPACE_COPY = "space.py"


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def search_settings(args, names: tuple[str, ...] = SETTINGS) -> dict:
    """The settings to store in experiment.json: the flags in `names` (the search's SETTINGS, or the teacher
    search's) and the space file's SHA-256."""
    settings = {n: getattr(args, n) for n in names if hasattr(args, n)}
    return {**{n: str(v) if isinstance(v, Path) else v for n, v in settings.items()}, "space_sha256": _sha256(args.space)}


def keep_space(exp_dir: Path, space: Path):
    """A copy of the space file in the experiment, to say what changed when a resume finds another."""
    shutil.copyfile(space, Path(exp_dir) / SPACE_COPY)


def keep(exp_dir: Path, args, record: dict, names: tuple[str, ...] = SETTINGS) -> None:
    """Start an experiment's records: a copy of its space file (`args.space`) and `<exp_dir>/experiment.json`,
    `record` (task, command, metric, teacher...) with the flags of `names` under "settings": what --resume
    restores and checks (resume_settings)."""
    keep_space(exp_dir, args.space)
    files.atomic_json(Path(exp_dir) / EXPERIMENT, {**record, "settings": search_settings(args, names)})


def resume_settings(exp_dir: Path, args, argv: list[str], names: tuple[str, ...] = SETTINGS, flags: dict = FLAGS):
    """For --resume: set `args` to the settings the experiment started with (experiment.json): those of
    `names`, typed as `flags` says (default: "--" and the name with dashes).

    Raises RaykdError when a flag typed in `argv` contradicts one of them, when --teacher is another
    teacher, or when the space file is not the one the experiment started with (saying which line
    changed), or when it is a low-data experiment whose validation rows raykd no longer makes (split_train).
    An experiment from before settings were stored is resumed with the flags as given.
    """
    info = experiment_info(exp_dir)
    stored = info.get("settings")
    if not stored:
        return
    selection = info.get("selection") or {}
    # Until `teacher_held_out` came, with raykd.splits.split_train, a low-data run held its validation rows out
    # of its own subset: those rows cannot be made again, so its trials cannot continue on them.
    if stored.get("train_fraction", 1) < 1 and selection.get("select_on") == "validation" and \
            "teacher_held_out" not in selection:
        raise RaykdError(f"experiment {exp_dir.name} held its validation rows out of its --train-fraction "
                         f"{stored['train_fraction']} subset, as raykd did before it took them from the whole training "
                         "set; its trials cannot continue on other rows: start a new experiment with another --name")
    typed = {t.split("=")[0] for t in argv if t.startswith("--") and t != "--"}
    for name, value in stored.items():
        if name not in names:
            continue
        flag = flags.get(name, "--" + name.replace("_", "-"))
        value = Path(value) if isinstance(getattr(args, name), Path) else value
        if any(flag.startswith(t) for t in typed) and getattr(args, name) != value:  # argparse takes prefixes
            raise RaykdError(f"{flag} {getattr(args, name)} contradicts experiment {exp_dir.name}, which started with "
                             f"{flag} {value}; drop the flag to resume with {value}, or start a new experiment with another --name")
        setattr(args, name, value)
    for name, value in LEGACY.items():
        if name not in stored:
            setattr(args, name, value)
    if getattr(args, "teacher", None) and str(Path(args.teacher).resolve()) != info["teacher_dir"]:
        raise RaykdError(f"--teacher {args.teacher} is not the teacher experiment {exp_dir.name} started with "
                         f"({info['teacher_dir']}); drop --teacher to resume with it, or start a new experiment")
    if Path(args.space).is_file() and _sha256(args.space) != stored["space_sha256"]:
        raise RaykdError(f"the space file {args.space} changed since experiment {exp_dir.name} started "
                         f"({_first_change(Path(exp_dir) / SPACE_COPY, Path(args.space))}); resume with the space it "
                         f"started with (a copy: {Path(exp_dir) / SPACE_COPY}), or start a new experiment with another --name")


def _first_change(old: Path, new: Path) -> str:
    """The first line that differs between two versions of a file, as a phrase."""
    def shown(line: str | None) -> str:
        return "nothing" if line is None else repr(line.strip()[:80])

    if old.is_file():
        before, after = old.read_text().splitlines(), new.read_text().splitlines()
        for number, (a, b) in enumerate(itertools.zip_longest(before, after), start=1):
            if a != b:
                return f"line {number} was {shown(a)}, is now {shown(b)}"
    return "its SHA-256 differs"


def experiment_info(exp_dir: Path) -> dict:
    """What the search wrote at its start (experiment.json): task, metric, mode, teacher, sizes, command,
    settings. Raises RaykdError when the file is missing or damaged."""
    path = Path(exp_dir) / EXPERIMENT
    if not path.is_file():
        raise RaykdError(f"{exp_dir} is not a raykd experiment (no {EXPERIMENT}); pass the folder a search created")
    try:
        info = json.loads(path.read_text())
        info["task"] = get_task(info["task"])
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise RaykdError(f"{path} is damaged ({type(err).__name__}: {err}); restore it, or run the search again "
                         "under another --name") from None
    return info
