"""The paper's table (Aguilar et al., AAAI 2020, Table 2) and the low-data study, filled cell by cell:

    python -m raykd.report paper --data-dir ../shared/data/glue --tasks rte mrpc cola sst2 stsb --seeds 3

A cell is one raykd command, run in a subprocess; its command line and its folder under
`results/paper/<task>/` are its record. A finished cell is never run again, an interrupted one is
resumed, and the table is rebuilt from the folders every time, so it fills over several runs of the
command; `--plan` prints what is done and what remains without running anything.

Per task:
- `teacher`: the teacher's recipe searched (`raykd.teacher --space search_spaces/teacher.py`), unless a
  fine-tuned teacher is given for the task (`--teacher TASK=FOLDER`, a folder written by raykd.teacher).
  Its weights stay in the cache, never in results/; on a machine without them, the teacher is
  fine-tuned again from its record (the recipe and seed of the search's best trial, or of the given
  teacher's run) before its task's next student cell.
- `finetune`, `kd`, `all`, `pid`, `sid`: `raykd.search` over `search_spaces/fixed/<method>.py` (the
  paper's settings, only the learning rate searched, the same number of trials for every method, so
  the baselines are tuned as much as the methods), its best configuration confirmed with `--seeds`
  seeds (`--confirm-top 1`): mean +- std on GLUE dev, selected on a split held out from training.
- `search`: `raykd.search --space search_spaces/internal.py` (algorithm, weights, temperature, layer
  map searched), its top 3 confirmed with `--seeds` seeds each.
- with `--fractions`: kd, sid and the search again on that share of the training set (the low-data study).
- `teacher-seed+K` (K = 1 .. seeds - 1), last: the teacher's recipe fine-tuned again with its seed + K, so
  that the teacher column is a mean +- std over `--seeds` seeds like every other cell. Only their records
  are kept; the students distill from the teacher itself (its own seed).
"""

from __future__ import annotations

import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from ray import tune

from raykd.data import DataSource, load_split
from raykd.errors import Interrupted, RaykdError
from raykd.files import atomic_json, atomic_savefig
from raykd.metrics import constant_scores
from raykd.tasks import get_task
from raykd.training.finetune import FIELDS as RECIPE, find_record

METHODS = ("finetune", "kd", "all", "pid", "sid")
LOW_DATA_METHODS = ("kd", "sid", "search")
SCOPE = "table.json"  # what README.md shows: the tasks, fractions and given teachers of every run so far
# Tokens per example: CoLA's and SST-2's longest training examples have 47 and 66 tokens (4 of SST-2's
# 67,349 are cut at 64); RTE, MRPC and STS-B need 128. SST-2 is subsampled (seeded) to about 10k rows.
TASK_FLAGS = {"rte": ["--max-seq-length", "128"], "mrpc": ["--max-seq-length", "128"],
              "stsb": ["--max-seq-length", "128"], "cola": ["--max-seq-length", "64"],
              "sst2": ["--max-seq-length", "64", "--train-fraction", "0.15"]}


@dataclass(frozen=True)
class Settings:
    """The paper run's settings (the `raykd.report paper` flags): the GLUE folder, the results root, where
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


def widen_scope(root: Path, tasks: list[str], fractions: list[float],
                teachers: dict[str, str]) -> tuple[dict[str, list[float]], dict[str, str]]:
    """({task: its training-set fractions}, {task: given teacher folder}) that README.md shows: this run's
    added to those of every earlier run, which `<root>/table.json` keeps, so that a run for one task keeps
    the other tasks' rows and their low-data study. Tasks keep their first order; a teacher given now
    replaces an earlier one."""
    path = root / SCOPE
    old = json.loads(path.read_text()) if path.is_file() else {"tasks": {}, "teachers": {}}
    scope = {"tasks": {t: sorted({*old["tasks"].get(t, []), *(fractions if t in tasks else [])})
                       for t in dict.fromkeys([*old["tasks"], *tasks])},
             "teachers": {**old["teachers"], **teachers}}
    root.mkdir(parents=True, exist_ok=True)
    atomic_json(path, scope)
    return scope["tasks"], scope["teachers"]


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


LOG = "cells.jsonl"


def set_aside_if_unresumable(cell: Cell, s: Settings, log) -> Path | None:
    """A cell started but unfinished whose Ray state is not on this machine (it ran elsewhere: `ray/`
    folders are never committed; or a teacher search whose weights were lost) cannot resume; its records are renamed to
    `<name>-unfinished-<time>` (kept, never deleted) so that the cell runs again from the start. Returns the
    new folder, or None when the cell was not set aside."""
    if not cell.started(s) or cell.resumable(s):
        return None
    folder = cell.folder(s)
    aside = folder.with_name(f"{cell.name}-unfinished-{time.strftime('%Y%m%d-%H%M%S')}")
    folder.rename(aside)
    log(f"{cell.task}/{cell.name}: started elsewhere, its Ray state is not here, so it cannot resume; its records "
        f"moved to {aside}; it runs again from the start")
    return aside


def run(todo: list[Cell], s: Settings, log) -> list[str]:
    """Run the cells that are not done, in order; a failed cell is reported and the next one runs.
    A student cell whose teacher is missing is skipped with the reason. Each run is appended to
    `<root>/cells.jsonl` (command, machine, start, seconds, exit code): the table's compute record.
    Returns the cells of `todo` still not done, each as 'task/name (why)': the caller's exit status must
    say so, or a script that runs the table takes a stopped or failed cell for a finished one.
    Raises Interrupted, once the cell has exited and its run is recorded, when Ctrl-C interrupted it."""
    unfinished = []
    refit_tried = set()  # once per task and run: a refit that failed is not tried again before every cell
    for cell in todo:
        if cell.done(s):
            continue
        teacher = Cell(cell.task, "teacher").teacher_dir(s) / "teacher.json"
        if (cell.distills and not teacher.is_file() and cell.task not in refit_tried
                and (refit := refit_command(cell.task, s))):
            refit_tried.add(cell.task)
            recorded = find_record(cell.teacher_dir(s), s.root)
            _run_and_record(f"{cell.task}/teacher-refit", refit, teacher.is_file, s, log)
            if teacher.is_file():
                metric = f"dev_{get_task(cell.task).main_metric}"
                log(f"{cell.task} teacher fine-tuned again from its record: {metric} {json.loads(teacher.read_text())[metric]:.4f} "
                    f"(its record's: {recorded[metric]:.4f})")
        if cell.distills and not teacher.is_file():
            log(f"skip {cell.task}/{cell.name}: its teacher {teacher.parent} is missing (the teacher cell runs first; "
                f"if it cannot be fine-tuned again from its record, move results/paper/{cell.task}/teacher away to search it again)")
            unfinished.append(f"{cell.task}/{cell.name} (skipped: no teacher)")
            continue
        command = cell.command(s)
        if command is None:  # a teacher seed without the teacher's recipe
            log(f"skip {cell.task}/{cell.name}: the {cell.task} teacher has no record with its recipe (its cell is not done, "
                "or it was given with --teacher without one), so there is no recipe to run with another seed")
            unfinished.append(f"{cell.task}/{cell.name} (skipped: no teacher recipe)")
            continue
        set_aside_if_unresumable(cell, s, log)
        code = _run_and_record(f"{cell.task}/{cell.name}", command, lambda: cell.done(s), s, log)
        if not cell.done(s):
            unfinished.append(f"{cell.task}/{cell.name} (exit {code})")
    return unfinished


def _run_and_record(name: str, command: list[str], done, s: Settings, log) -> int:
    """Run one cell's command (or a teacher's refit) and append it to `<root>/cells.jsonl`; `done()` says
    whether it finished. Returns the command's exit code. Raises Interrupted, once the command has exited and is recorded, when Ctrl-C
    interrupted it."""
    log(f"run {name}: {' '.join(command[1:])}")
    started, start_time = time.perf_counter(), time.strftime("%Y-%m-%dT%H:%M:%S")
    code, interrupted = wait_for_cell(subprocess.Popen(command))
    entry = {"cell": name, "command": " ".join(["python", *command[1:]]), "exit": code,
             "done": done(), "start": start_time, "seconds": round(time.perf_counter() - started, 1),
             "machine": f"{platform.node()}, {os.cpu_count()} CPUs, {'GPU' if torch.cuda.is_available() else 'no GPU'}"}
    s.root.mkdir(parents=True, exist_ok=True)
    with open(s.root / LOG, "a") as f:
        f.write(json.dumps(entry) + "\n")
    log(f"{'done' if entry['done'] else f'not finished (exit {code})'}: {name} in {entry['seconds'] / 60:.1f} min")
    if interrupted:
        raise Interrupted(f"interrupted (Ctrl-C) in cell {name}; run the same command again: done cells "
                         "are kept and this one resumes")
    return code


def wait_for_cell(proc: subprocess.Popen) -> tuple[int, bool]:
    """(exit code, whether Ctrl-C came) of a running cell. Ctrl-C in a terminal reaches the cell too (same
    process group), and Tune then saves its state and exits: so wait for it rather than kill it, which is
    what subprocess.call does and which would lose the state that --resume needs. A second Ctrl-C stops
    Tune at once (its own rule), and the cell is then killed."""
    try:
        return proc.wait(), False
    except KeyboardInterrupt:
        try:
            return proc.wait(), True
        except KeyboardInterrupt:
            proc.kill()
            return proc.wait(), True


def compute_record(s: Settings) -> list[dict]:
    """Every cell run so far (cells.jsonl), oldest first."""
    path = s.root / LOG
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def result(cell: Cell, s: Settings) -> dict | None:
    """A finished cell's numbers; None when not done. A teacher: the dev metric's mean, std (ddof 1) and
    count over its own run (its first record, never a refit's) and its teacher-seed+K runs so far, and its own
    run's (`teacher_value`: the teacher its students distill from unless a refit's, which the table marks). A student: the chosen configuration's dev mean, std and seed count,
    with its selection mean, the student's and teacher's sizes and the teacher it was distilled from (its
    folder and dev score)."""
    if not cell.done(s):
        return None
    task = get_task(cell.task)
    if cell.method == "teacher":
        metric = f"dev_{task.main_metric}"
        own = find_record(cell.teacher_dir(s), s.root, first=True).get(metric)  # not a refit's: same on every machine
        runs = [v for v in [own, *(TeacherSeed(cell.task, k).record(s).get(metric) for k in range(1, s.seeds))]
                if v is not None]
        return {"dev_mean": statistics.mean(runs) if runs else None, "n": len(runs), "dev_runs": runs,
                "dev_std": statistics.stdev(runs) if len(runs) > 1 else None, "teacher_value": own}
    confirmed = json.loads((cell.folder(s) / "confirm.json").read_text())
    winner = confirmed["chosen"] and next(c for c in confirmed["configs"]
                                          if c["candidate"] == confirmed["chosen"]["candidate"])
    if not winner:
        return None
    experiment = json.loads((cell.folder(s) / "experiment.json").read_text())
    summary_json = cell.folder(s) / "summary.json"
    summary = json.loads(summary_json.read_text()) if summary_json.is_file() else {}
    dev, sel = confirmed["dev_metric"], confirmed["selection_metric"]
    devs = [r[dev] for r in confirmed["runs"] if r["candidate"] == winner["candidate"] and r[dev] is not None]
    floors = one_class_scores(cell.task, s.data_dir).values()
    # One class for every dev row: the search said so (summary.json, since raykd.metrics' top_class_share), or,
    # for cells run before that, every seed scored exactly what a one-class answer scores on dev.
    one_class = bool(summary.get("one_class")) or bool(devs and all(any(abs(d - f) < 1e-9 for f in floors) for d in devs))
    return {"dev_mean": winner[f"{dev}_mean"], "dev_std": winner[f"{dev}_std"], "n": winner["n"], "dev_runs": devs,
            "one_class": one_class,
            "selection_mean": winner[f"{sel}_mean"], "config": winner["config"],
            "student_params": experiment["sizes"]["student_params_total"],
            "teacher_params": experiment["teacher_info"]["teacher_params_total"], "command": experiment["command"],
            "teacher_dir": experiment["teacher_dir"], "teacher_value": summary.get("teacher_value"),
            "speed_up": speed_up(cell.folder(s) / "best" / "deploy.json")}


@functools.cache
def one_class_scores(task_name: str, data_dir: str) -> dict[int, float]:
    """{class id: the task's main metric on GLUE dev of the answer that is always that class}
    (raykd.metrics.constant_scores); {} for regression, and when `data_dir` holds no readable dev file (the
    table is rebuilt where the data is not: its "one class" column then shows "-")."""
    task = get_task(task_name)
    try:
        labels = load_split(task, "dev", DataSource(data_dir=data_dir))["label"]
    except RaykdError:
        return {}
    return constant_scores(task, labels)


def speed_up(deploy_json: Path) -> tuple[float, float] | None:
    """How many times faster the exported student runs than its teacher, from the latency rows raykd.search
    measured on one machine in one run (best/deploy.json, raykd.artifacts.deploy.measure): (teacher p50 /
    student p50 at batch 1, student / teacher examples per second at batch 32), PyTorch fp32, 1 thread.
    None when the cell has no latency rows (`--latency-examples 0`)."""
    if not deploy_json.is_file():
        return None
    rows = {r["model"]: r for r in (json.loads(deploy_json.read_text()).get("latency") or {}).get("rows", [])
            if r["format"] == "PyTorch fp32" and r["threads"] == 1}
    if not {"student", "teacher"} <= rows.keys():
        return None
    student, teacher = rows["student"], rows["teacher"]
    return teacher["p50_ms"] / student["p50_ms"], student["examples_per_s"] / teacher["examples_per_s"]


def _cell_text(r: dict | None) -> str:
    if r is None or r["dev_mean"] is None:
        return "-"
    one_class = " (one class)" if r.get("one_class") else ""  # a constant student: its number is the floor's
    if r["dev_std"] is None:
        return f"{100 * r['dev_mean']:.2f} (n={r['n']}){one_class}"
    return f"{100 * r['dev_mean']:.2f} +- {100 * r['dev_std']:.2f}{one_class}"


class OtherTeachers:
    """Footnote marks for cells distilled from another teacher than the one in their row's teacher column
    (a teacher fine-tuned again since, or another --teacher): told apart by the teacher's dev score, which
    each cell's summary.json records (`teacher_value`), so that two clones of the results agree."""

    def __init__(self):
        self.notes: dict[float, tuple[str, str]] = {}

    def mark(self, r: dict | None, teacher: dict | None) -> str:
        """" [n]" when `r` (a result()) was distilled from a teacher whose dev score differs from that of
        `teacher` (the teacher cell's result(): its own run, not its mean over seeds), else ""."""
        used = r and r.get("teacher_value")
        if used is None or not teacher or teacher["teacher_value"] is None or abs(used - teacher["teacher_value"]) < 1e-9:
            return ""
        if used not in self.notes:
            self.notes[used] = (f"[{len(self.notes) + 1}]", f"distilled from the teacher in `{Path(r['teacher_dir']).name}` "
                                f"(dev {100 * used:.2f}), not the one in the teacher column")
        return " " + self.notes[used][0]

    def lines(self) -> list[str]:
        return [f"{mark} {text}" for mark, text in self.notes.values()]


def table(tasks: list[str], s: Settings) -> tuple[str, dict]:
    """The paper table as markdown, and every cell's numbers {(task, name): result}."""
    numbers = {(c.task, c.name): result(c, s) for c in cells(tasks, [])}
    head = ["task (metric)", "one class", "teacher", *METHODS, "best fixed", "search, confirmed", "gap closed by best fixed / search",
            "student / teacher params", "student speed-up, batch 1 / 32"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    other = OtherTeachers()
    for t in tasks:
        task = get_task(t)
        row = {m: numbers[(t, m)] for m in (*METHODS, "search")}
        fixed = {m: r for m, r in row.items() if m in METHODS and r and r["selection_mean"] is not None}
        best = max(fixed, key=lambda m: fixed[m]["selection_mean"]) if fixed else None  # chosen on validation
        teacher, base = numbers[(t, "teacher")], row["finetune"]

        def gap(r):
            """The share of the finetune-to-teacher gap that `r` closes, as "N%" of the dev means, against the
            teacher `r` was distilled from; "-" when undefined."""
            top = r and (r.get("teacher_value") or (teacher or {}).get("teacher_value"))
            if not (r and base and top is not None) or top == base["dev_mean"]:
                return "-"
            return f"{round(100 * (r['dev_mean'] - base['dev_mean']) / (top - base['dev_mean']))}%"  # an int: never "-0%"

        sizes = next((r for r in row.values() if r), None)
        speed = next((r["speed_up"] for r in row.values() if r and r.get("speed_up")), None)
        lines.append("| " + " | ".join([
            f"{t} ({task.main_metric})", "none (regression)" if task.is_regression  # no classes: no one-class floor
            else f"{100 * max(floor.values()):.2f}" if (floor := one_class_scores(t, s.data_dir)) else "-",
            _cell_text(teacher) + (f" (n={teacher['n']})" if teacher and teacher["n"] > 1 else ""),
            *[_cell_text(row[m]) + other.mark(row[m], teacher) for m in METHODS],
            f"{best}: {_cell_text(fixed[best])}" if best else "-", _cell_text(row["search"]) + other.mark(row["search"], teacher),
            f"{gap(fixed.get(best))} / {gap(row['search'])}",
            f"{sizes['student_params'] / 1e6:.1f}M / {sizes['teacher_params'] / 1e6:.1f}M" if sizes else "-",
            f"{speed[0]:.1f}x / {speed[1]:.1f}x" if speed else "-"]) + " |")
    return "\n".join(lines + ([""] + other.lines() if other.notes else [])), numbers


def plot(tasks: list[str], numbers: dict, path: Path) -> bool:
    """The table as one panel per task, saved as PNG at `path`: each method's dev mean (points) +- std over
    seeds (error bars), the teacher as a dashed line with its std as a band. Each panel has its own y-axis
    and no zero baseline, because the methods differ by 1-3 points on scales (Matthews ~20, F1 ~85) that bars
    from zero would flatten; an unfinished cell is left out, not drawn at zero. False when no cell is finished."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def done(r):
        return r and r["dev_mean"] is not None

    methods = [*METHODS, "search"]
    if not any(done(numbers.get((t, m))) for t in tasks for m in ["teacher", *methods]):
        return False
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks) + 0.5, 3.6), squeeze=False)
    for ax, t in zip(axes[0], tasks):
        for i, m in enumerate(methods):
            r = numbers.get((t, m))
            if done(r):
                ax.errorbar(i, 100 * r["dev_mean"], yerr=100 * (r["dev_std"] or 0), fmt="o", capsize=3, color=f"C{i + 1}")
        teacher = numbers.get((t, "teacher"))
        if done(teacher):
            mean, std = 100 * teacher["dev_mean"], 100 * (teacher["dev_std"] or 0)
            ax.axhline(mean, ls="--", color="C0", label=f"teacher (n={teacher.get('n', 1)})")
            ax.axhspan(mean - std, mean + std, color="C0", alpha=0.15)
            ax.legend(fontsize=7, loc="lower right")
        ax.set_xticks(range(len(methods)), methods, rotation=45)
        ax.set_xlim(-0.5, len(methods) - 0.5)
        ax.set_title(t)
        ax.set_ylabel(f"GLUE dev {get_task(t).main_metric}")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)
    return True


def low_data(tasks: list[str], fractions: list[float], s: Settings) -> tuple[str, dict]:
    """The low-data study: kd, sid and the search against the share of the training set."""
    numbers = {(t, m, f): result(Cell(t, m, f), s) for t in tasks for m in LOW_DATA_METHODS for f in fractions}
    lines = ["| task | method | " + " | ".join(f"{f:g} of train" for f in fractions) + " |",
             "|---|---|" + "---|" * len(fractions)]
    other = OtherTeachers()
    for t in tasks:
        teacher = result(Cell(t, "teacher"), s)
        for m in LOW_DATA_METHODS:
            lines.append(f"| {t} | {m} | " + " | ".join(_cell_text(numbers[(t, m, f)]) + other.mark(numbers[(t, m, f)], teacher)
                                                     for f in fractions) + " |")
    return "\n".join(lines + ([""] + other.lines() if other.notes else [])), numbers


def plot_low_data(tasks, fractions, numbers, path: Path) -> bool:
    """The low-data study as one panel per task (dev metric, mean +- std over seeds, against the share of the
    training set on a log axis), saved as PNG at `path`; False when no cell is finished yet."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any(numbers.values()):
        return False
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.5), squeeze=False)
    for ax, t in zip(axes[0], tasks):
        for m in LOW_DATA_METHODS:
            points = [(f, numbers[(t, m, f)]) for f in fractions if numbers[(t, m, f)]]
            if points:
                ax.errorbar([f for f, _ in points], [100 * r["dev_mean"] for _, r in points],
                            yerr=[100 * (r["dev_std"] or 0) for _, r in points], label=m, marker="o", capsize=3)
        ax.set_xscale("log")
        ax.set_title(t)
        ax.set_xlabel("share of the training set")
        ax.set_ylabel(f"dev {get_task(t).main_metric}")
        if ax.get_legend_handles_labels()[0]:  # a task with no finished cell yet has nothing to label
            ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)
    return True


def spread_note(numbers: dict) -> str:
    """Which differences exceed the seed-to-seed std, stated per task (internal methods against kd)."""
    notes = []
    for (t, m), r in numbers.items():
        kd = numbers.get((t, "kd"))
        if m in ("all", "pid", "sid") and r and kd and r["dev_std"] is not None and kd["dev_std"] is not None:
            diff, spread = r["dev_mean"] - kd["dev_mean"], max(r["dev_std"], kd["dev_std"])
            verdict = "better than" if diff > spread else "worse than" if diff < -spread else "no difference from"
            notes.append(f"- {t}: {m} is {verdict} kd ({100 * diff:+.2f} points, larger std {100 * spread:.2f})")
    return "\n".join(notes)
