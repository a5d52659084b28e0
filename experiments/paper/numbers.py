"""A finished cell's numbers, read from its folder's records (confirm.json, experiment.json, summary.json,
best/deploy.json) and its teacher's (teacher.json or its copy under `<root>/teachers/`), and what always
answering one class scores on GLUE dev: what the tables and README.md of experiments.paper are made of."""

from __future__ import annotations

import functools
import json
import statistics
from pathlib import Path

from experiments.paper.cells import Cell, Settings, TeacherSeed
from raykd.data import DataSource, load_split
from raykd.errors import RaykdError
from raykd.metrics import constant_scores
from raykd.tasks import get_task
from raykd.training.finetune import find_record


def result(cell: Cell, s: Settings) -> dict | None:
    """A finished cell's numbers; None when not done. A teacher: the dev metric's mean, std (ddof 1) and
    count over its own run (its first record, never a refit's) and its teacher-seed+K runs so far, and its own
    run's (`teacher_value`: the teacher its students distill from unless a refit's, which the table marks),
    with the `base` its own run was fine-tuned from. A student: the chosen configuration's dev mean, std and
    seed count, with its selection mean, the student's and teacher's sizes and depths (`student_layers`,
    `teacher_layers`: experiment.json's), what it was selected on (`select_on`: validation or dev) and the
    teacher it was distilled from (its folder and dev score). Values are fractions (0.8122, not 81.22);
    a depth or `select_on` a record lacks is None. Raises OSError or KeyError for a done cell whose records
    are unreadable or lack a field every raykd version writes."""
    if not cell.done(s):
        return None
    task = get_task(cell.task)
    if cell.method == "teacher":
        metric = f"dev_{task.main_metric}"
        record = find_record(cell.teacher_dir(s), s.root, first=True)  # not a refit's: same on every machine
        own = record.get(metric)
        runs = [v for v in [own, *(TeacherSeed(cell.task, k).record(s).get(metric) for k in range(1, s.seeds))]
                if v is not None]
        return {"dev_mean": statistics.mean(runs) if runs else None, "n": len(runs), "dev_runs": runs,
                "dev_std": statistics.stdev(runs) if len(runs) > 1 else None, "teacher_value": own,
                "base": record.get("base")}
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
            "student_layers": experiment["sizes"].get("student_layers"), "teacher_layers": experiment["teacher_info"].get("layers"),
            "select_on": experiment.get("selection", {}).get("select_on"),
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
