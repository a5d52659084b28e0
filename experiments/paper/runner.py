"""Running the paper table's cells (experiments.paper.cells), each a subprocess, in order: a teacher whose
weights are missing is fine-tuned again from its record first, an unresumable started cell is set aside,
and every run is appended to `<root>/cells.jsonl`, the table's compute record."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

from experiments.paper.cells import Cell, Settings, refit_command
from raykd.errors import Interrupted
from raykd.tasks import get_task
from raykd.training.finetune import find_record

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
