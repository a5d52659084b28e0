"""The paper table's cells (experiments.paper explains them): what each one runs and when it is done, the
teacher re-runs (a refit from its record, its other seeds), and the teachers given with --teacher."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from ray import tune

from raykd.errors import RaykdError
from raykd.tasks import get_task
from raykd.training.finetune import FIELDS as RECIPE, RECORD, find_record, is_usable

METHODS = ("finetune", "kd", "all", "pid", "sid")
LOW_DATA_METHODS = ("kd", "sid", "search")
# Tokens per example: CoLA's and SST-2's longest training examples have 47 and 66 tokens (4 of SST-2's
# 67,349 are cut at 64); RTE, MRPC and STS-B need 128. SST-2 is subsampled (seeded) to about 10k rows.
TASK_FLAGS = {"rte": ["--max-seq-length", "128"], "mrpc": ["--max-seq-length", "128"],
              "stsb": ["--max-seq-length", "128"], "cola": ["--max-seq-length", "64"],
              "sst2": ["--max-seq-length", "64", "--train-fraction", "0.15"]}


@dataclass(frozen=True)
class Settings:
    """The paper run's settings (python -m experiments.paper's flags): the GLUE folder, the results root, where
    teachers' weights go, and seeds, trials and epochs per cell."""
    data_dir: str
    root: Path                 # results/paper
    teacher_cache: Path        # where teachers' weights go (never committed)
    seeds: int = 3
    trials: int = 4            # learning rates tried per fixed method
    search_trials: int = 12
    max_epochs: int = 3
    teacher_trials: int = 8
    precision: str = "auto"
    address: str | None = None  # a running Ray cluster every cell's command joins; None: each starts its own
    teachers: tuple[tuple[str, str], ...] = ()  # (task, folder) given with --teacher: used as they are, not searched


def task_flags(task: str, train_fraction: float | None = None) -> list[str]:
    """The task's TASK_FLAGS, with `--train-fraction train_fraction` in place of its own when given (none
    for 1.0: every row)."""
    flags = list(TASK_FLAGS.get(task, []))
    if train_fraction is None:
        return flags
    if "--train-fraction" in flags:
        del flags[flags.index("--train-fraction"):flags.index("--train-fraction") + 2]
    return flags + (["--train-fraction", f"{train_fraction:g}"] if train_fraction != 1.0 else [])


@dataclass(frozen=True)
class Cell:
    """One cell of the table: a task, a method (teacher, one of METHODS, or search) and a share of the
    training set."""
    task: str
    method: str                # teacher, one of METHODS, or search
    fraction: float = 1.0

    @property
    def name(self) -> str:
        """The cell's folder name: the method, with `-f<fraction>` for a share below the whole training set."""
        return self.method if self.fraction == 1.0 else f"{self.method}-f{self.fraction:g}"

    def folder(self, s: Settings) -> Path:
        """`<root>/<task>/<name>`: the cell's records."""
        return s.root / self.task / self.name

    def teacher_dir(self, s: Settings) -> Path:
        """The task's teacher folder (absolute), shared by the task's cells: the one given for the task with
        --teacher, else `<teacher_cache>/paper-<task>`, where the teacher cell's search puts its best."""
        return Path(dict(s.teachers).get(self.task) or s.teacher_cache / f"paper-{self.task}").resolve()

    def done(self, s: Settings) -> bool:
        """True when the cell has finished: a searched teacher cell's summary.md, a given teacher's record
        (its teacher.json, or a copy under `<root>/teachers/`), a student cell's confirm.json with `finished`
        and all its confirm_top x seeds runs."""
        if self.method == "teacher":
            if self.task in dict(s.teachers):  # given, not searched; its record, also where its weights are not
                return f"dev_{get_task(self.task).main_metric}" in find_record(self.teacher_dir(s), s.root)
            return (self.folder(s) / "summary.md").is_file()
        record = self.folder(s) / "confirm.json"
        if not record.is_file():
            return False
        record = json.loads(record.read_text())
        # Every planned run, counted here too: records written before raykd knew an interrupted confirmation
        # from a finished one (raykd.tuning.tuner.ended) say "finished" with runs missing.
        return record.get("finished", False) and len(record["runs"]) >= self.confirm_top * s.seeds

    def possible(self, s: Settings) -> bool:
        """Every table cell can run (TeacherSeed's can not always)."""
        return True

    @property
    def distills(self) -> bool:
        """A student cell: it needs the task's teacher weights on this machine."""
        return self.method != "teacher"

    @property
    def confirm_top(self) -> int:
        """Configurations the cell confirms: the search's top 3, a fixed method's best."""
        return 3 if self.method == "search" else 1

    def command(self, s: Settings) -> list[str]:
        """The argv that runs the cell: raykd.teacher's recipe search, or raykd.search with its confirmation
        (`--resume` when the cell has Tune state to restore: it started here and was interrupted)."""
        # A low-data cell's fraction replaces the task's own: a share of the whole training set.
        flags = task_flags(self.task, self.fraction if self.fraction != 1.0 else None)
        data = ["--task", self.task, "--data-dir", s.data_dir, *flags, *(["--address", s.address] if s.address else [])]
        resume = ["--resume"] if self.resumable(s) else []
        if self.method == "teacher":
            return [sys.executable, "-m", "raykd.teacher", *data, "--space", "search_spaces/teacher.py",
                    "--num-samples", str(s.teacher_trials), "--name", self.name, "--records", str(s.root),
                    "--out", str(self.teacher_dir(s)), *resume]
        space, trials, top = ((f"search_spaces/fixed/{self.method}.py", s.trials, self.confirm_top) if self.method in METHODS
                              else ("search_spaces/internal.py", s.search_trials, self.confirm_top))
        command = [sys.executable, "-m", "raykd.search", *data, "--teacher", str(self.teacher_dir(s)),
                   "--space", space, "--num-samples", str(trials), "--max-epochs", str(s.max_epochs),
                   "--confirm-top", str(top), "--confirm-seeds", str(s.seeds), "--precision", s.precision,
                   "--export-formats", "hf", "--out", str(s.root), "--name", self.name, *resume]
        return command

    def started(self, s: Settings) -> bool:
        """The cell's folder holds records (a run began, here or on another machine)."""
        return self.folder(s).is_dir() and any(self.folder(s).iterdir())

    def resumable(self, s: Settings) -> bool:
        """The cell began on this machine and Tune can restore it (`ray/` folders are never committed)."""
        # absolute: Tune reads a relative path as a URI without a scheme and raises (pyarrow ArrowInvalid)
        return tune.Tuner.can_restore(str((self.folder(s) / "ray" / "tune").resolve()))


def refit_command(task: str, s: Settings) -> list[str] | None:
    """The argv that fine-tunes `task`'s teacher again into its folder when the teacher cell is done but the
    weights are not on this machine (they are never committed): `raykd.teacher` with the recipe and seed of
    its record under `<root>/teachers/` (a searched teacher's best trial, or the run of a teacher given with
    --teacher, written into the given folder), and the task's flags. On the same kind of machine the run
    repeats the record's epochs exactly; on another CPU it does not (bf16 kernels and thread counts differ:
    results/paper/notes.md), so the runner prints both dev scores. None when there is nothing to refit from: the teacher cell not
    done, or no record with a recipe (a teacher given without one)."""
    cell = Cell(task, "teacher")
    record = find_record(cell.teacher_dir(s), s.root)
    if not cell.done(s) or "config" not in record:
        return None
    return recipe_command(task, s, record, cell.teacher_dir(s))


def recipe_command(task: str, s: Settings, record: dict, out: Path, seed: int | None = None) -> list[str]:
    """The argv of `raykd.teacher` that fine-tunes the recipe of a teacher's `record` on the same rows (its
    base, `config`, `train_fraction`, held-out share and `data_seed`, with `seed` in place of its own when
    given) into `out`, with the task's token length, copying its record to `<root>/teachers/`. The rows come
    from the record, not the students' TASK_FLAGS: SST-2's students use 15% of the rows, its given teacher
    all of them. A record without `train_fraction` (before raykd wrote it) is from a teacher the runner
    searched with the task's flags; one without `validation_fraction` trained on the whole training set
    (before raykd held the validation split out): so is its refit."""
    config = {**record["config"], **({} if seed is None else {"seed": seed})}
    recipe = []
    for field in RECIPE:
        flag, value = "--" + field.replace("_", "-"), config[field]
        recipe += [flag if value else f"--no-{flag[2:]}"] if isinstance(value, bool) else [flag, str(value)]
    flags = task_flags(task, record.get("train_fraction"))
    return [sys.executable, "-m", "raykd.teacher", "--task", task, "--data-dir", s.data_dir, *flags,
            *(["--address", s.address] if s.address else []), "--teacher-base", str(record["base"]), *recipe,
            "--validation-fraction", f"{record.get('validation_fraction', 0):g}",
            *(["--data-seed", str(record["data_seed"])] if "data_seed" in record else []),
            "--out", str(out), "--records", str(s.root)]


@dataclass(frozen=True)
class TeacherSeed:
    """The task's teacher recipe (searched, or given with a record that has one) fine-tuned once more with
    its seed + `offset`, into `<teacher_cache>/<teacher folder>.seed+<offset>`: with the teacher's own run,
    these give the teacher column its mean +- std over `seeds` seeds. Only the record counts (copied to
    `<root>/teachers/`); no student uses these weights."""
    task: str
    offset: int                # 1 .. seeds - 1
    method = "teacher-seed"    # not a dataclass field: no annotation
    distills = False           # needs no teacher weights

    @property
    def name(self) -> str:
        return f"teacher-seed+{self.offset}"

    def out(self, s: Settings) -> Path:
        """Where the run puts its weights: beside the cache's teachers, also for a teacher given elsewhere."""
        return (s.teacher_cache / f"{Cell(self.task, 'teacher').teacher_dir(s).name}.seed+{self.offset}").resolve()

    def record(self, s: Settings) -> dict:
        """The run's record (its teacher.json, or its copy under `<root>/teachers/`); {} before it ran."""
        return find_record(self.out(s), s.root)

    def done(self, s: Settings) -> bool:
        """True when the run's record has its dev score."""
        return f"dev_{get_task(self.task).main_metric}" in self.record(s)

    def started(self, s: Settings) -> bool:
        """Never resumed: an interrupted run starts again (raykd.teacher's partial folder is never usable)."""
        return False

    def possible(self, s: Settings) -> bool:
        """False when the task's teacher was given with --teacher and its record has no recipe (not written by
        raykd.teacher): there is nothing to run with another seed, now or later."""
        teacher = Cell(self.task, "teacher")
        return self.task not in dict(s.teachers) or "config" in find_record(teacher.teacher_dir(s), s.root)

    def command(self, s: Settings) -> list[str] | None:
        """`recipe_command` with the teacher's seed + offset; None while the teacher has no record with a
        recipe (its cell not done, or a teacher given without one)."""
        record = find_record(Cell(self.task, "teacher").teacher_dir(s), s.root)
        if "config" not in record:
            return None
        return recipe_command(self.task, s, record, self.out(s), seed=int(record["config"]["seed"]) + self.offset)


def cells(tasks: list[str], fractions: list[float], methods: tuple[str, ...] = (*METHODS, "search"),
          seeds: int = 1) -> list[Cell | TeacherSeed]:
    """Every cell of `methods`, teachers first (the students need them), then the table, then the
    low-data study (its methods that are among `methods`), then each teacher's `seeds - 1` other seeds
    (last: they only add the teacher column's spread)."""
    out = [Cell(t, "teacher") for t in tasks]
    out += [Cell(t, m) for t in tasks for m in methods]
    out += [Cell(t, m, f) for f in fractions if f != 1.0 for t in tasks for m in LOW_DATA_METHODS if m in methods]
    return out + [TeacherSeed(t, k) for t in tasks for k in range(1, seeds)]


def planned(tasks: list[str], fractions: list[float], s: Settings,
            methods: tuple[str, ...] = (*METHODS, "search")) -> list[Cell | TeacherSeed]:
    """`cells` with `s.seeds` teacher seeds, less the teacher seeds that can never run (`possible`)."""
    return [c for c in cells(tasks, fractions, methods, s.seeds) if c.possible(s)]


def given_teachers(pairs: list[str], tasks: list[str], records_root: Path) -> dict[str, str]:
    """{task: folder} from `--teacher TASK=FOLDER` values. A folder that does not exist is accepted when its
    record under `<records_root>/teachers/` (raykd.training.finetune.find_record) holds a recipe: the runner
    fine-tunes it again there (refit_command); weights are never committed, so this is every given teacher
    on a new machine. Raises RaykdError for a value without '=', a task not among `tasks`, or a folder that
    is not a finished teacher of that task (raykd.training.finetune.is_usable) and cannot be fine-tuned
    again from a record."""
    given = {}
    for pair in pairs:
        task, _, folder = pair.partition("=")
        if not folder or task not in tasks:
            raise RaykdError(f"--teacher {pair}: expected TASK=FOLDER with TASK among --tasks ({' '.join(tasks)})")
        if is_usable(Path(folder)):
            recorded = json.loads((Path(folder) / RECORD).read_text()).get("task")
        else:
            record = {} if Path(folder).exists() else find_record(Path(folder), records_root)
            if "config" not in record:
                raise RaykdError(f"--teacher {pair}: {folder} is not a finished teacher (config.json, weights and {RECORD}) "
                                 f"and {records_root}/teachers/ has no record of it to fine-tune it again from; "
                                 f"fine-tune one with python -m raykd.teacher --task {task}")
            recorded = record.get("task")
        if recorded != task:
            raise RaykdError(f"--teacher {pair}: {folder} was fine-tuned on {recorded}, not {task}; give a {task} teacher")
        given[task] = folder
    return given
