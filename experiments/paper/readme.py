"""The paper table's README.md (`<results>/paper/README.md`), with table.png and low-data.png beside it.

Every sentence about the runs is read from their records, never written in: the command lines from the
tasks and fractions run so far (table.json), the students' and teacher's depth from the student cells'
experiment.json, the teacher's base from its teacher.json, the one-class answer of each task from GLUE dev,
what the cells were selected on from their experiment.json. A teacher given with another --teacher, or
another depth, is named as it is.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from experiments.paper.cells import Settings, planned
from experiments.paper.numbers import one_class_scores
from experiments.paper.plots import plot, plot_low_data
from experiments.paper.runner import compute_record
from experiments.paper.tables import low_data, spread_note, table
from raykd.artifacts.card import HUB_IDS
from raykd.files import atomic_json, atomic_write
from raykd.tasks import get_task

SCOPE = "table.json"  # what README.md shows: the tasks, fractions and given teachers of every run so far
AN = re.compile(r"[aeiou]|8|1[18]\D", re.I)  # words said with a vowel first: an all-..., an 8-layer, an 11-layer


def widen_scope(root: Path, tasks: list[str], fractions: list[float],
                teachers: dict[str, str]) -> tuple[dict[str, list[float]], dict[str, str]]:
    """({task: its training-set fractions}, {task: given teacher folder}) that README.md shows: this run's
    added to those of every earlier run, which `<root>/table.json` keeps, so that a run for one task keeps
    the other tasks' rows and their low-data study. Tasks keep their first order; a teacher given now
    replaces an earlier one. Writes table.json (OSError when `root` is not writable)."""
    path = root / SCOPE
    old = json.loads(path.read_text()) if path.is_file() else {"tasks": {}, "teachers": {}}
    scope = {"tasks": {t: sorted({*old["tasks"].get(t, []), *(fractions if t in tasks else [])})
                       for t in dict.fromkeys([*old["tasks"], *tasks])},
             "teachers": {**old["teachers"], **teachers}}
    root.mkdir(parents=True, exist_ok=True)
    atomic_json(path, scope)
    return scope["tasks"], scope["teachers"]


def commands(fractions_of: dict[str, list[float]], results: Path, seeds: int) -> str:
    """The command lines that fill the README's table, as markdown code: one per set of fractions (the tasks
    of the low-data study, the others), with `--results` when it is not the default."""
    groups = {}
    for t, fractions in fractions_of.items():
        groups.setdefault(tuple(fractions), []).append(t)
    where = f" --results {results}" if Path(results) != Path("results") else ""
    return " and ".join(f"`python -m experiments.paper{where} --tasks {' '.join(ts)} --seeds {seeds}"
                        f"{' --fractions ' + ' '.join(f'{f:g}' for f in fr) if len(fr) > 1 else ''}`"
                        for fr, ts in groups.items())


def _a(phrase: str) -> str:
    """`phrase` with its indefinite article: "an 8-layer ...", "an all-MiniLM ...", "a 6-layer ..."."""
    return f"{'an' if AN.match(phrase) else 'a'} {phrase}"


def _students_of(students: list[int], depth: list[int], base: str | None) -> str:
    """"3-layer students of a 6-layer all-MiniLM-L6-v2 teacher" from the depths (layers) and base that are
    known; "an all-MiniLM-L6-v2 teacher (no student cell done yet)" before any student cell is done."""
    teacher = f"{' or '.join(map(str, depth))}-layer " if depth else ""
    hub = HUB_IDS.get(base or "")
    teacher += f"{hub.rsplit('/', 1)[-1]} teacher" if hub else f"teacher fine-tuned from `{base}`" if base else "teacher"
    if not students:
        return f"{_a(teacher)} (no student cell done yet)"
    return f"{' or '.join(map(str, students))}-layer students of {_a(teacher)}"


def who(tasks: list[str], numbers: dict) -> str:
    """The sentence naming each task's students and teacher: their depths (layers) from the finished student
    cells' experiment.json, the base the teacher was fine-tuned from from its record; one sentence when
    every task has the same, else one per group of tasks. `numbers` is {(task, ...): result or None}
    (experiments.paper.numbers.result), the teacher's under (task, "teacher")."""
    said = {}
    for t in tasks:
        students = [r for key, r in numbers.items() if key[0] == t and key[1] != "teacher" and r]
        teacher = numbers.get((t, "teacher")) or {}
        known = (sorted({r["student_layers"] for r in students if r.get("student_layers")}),
                 sorted({r["teacher_layers"] for r in students if r.get("teacher_layers")}), teacher.get("base"))
        if any(known):
            said.setdefault(_students_of(*known), []).append(t)
    if not said:
        return "The students and their teacher are named here once their cells are done."
    if len(said) == 1 and len(next(iter(said.values()))) == len(tasks):
        phrase = next(iter(said))
        return phrase[0].upper() + phrase[1:] + "."
    return " ".join(f"{', '.join(ts)}: {phrase}." for phrase, ts in said.items())


def one_class(tasks: list[str], data_dir: str) -> str:
    """What the "one class" column is, with each task's best one-class answer on GLUE dev (the class, or
    "any class" when every class scores the same; none for a regression; unknown without the dev rows)."""
    answers = []
    for t in tasks:
        task, floors = get_task(t), one_class_scores(t, data_dir)
        if task.is_regression:
            answers.append(f"{t}, a regression, has none")
            continue
        best = [c for c, v in floors.items() if abs(v - max(floors.values())) < 1e-12]
        names = task.label_names or task.labels
        answers.append(f"{t}: " + ("unknown without its dev rows" if not floors else "any class" if len(best) == len(floors)
                                   else "all " + " or ".join(names[c] for c in best)))
    return (f"'One class' is the best dev score of answering one class for every row ({'; '.join(answers)}); a cell "
            "marked '(one class)' chose such a student.")


def selected_on(results: list[dict]) -> str:
    """Where the finished student cells chose their configuration, from their experiment.json's `select_on`."""
    where = {r.get("select_on") for r in results if r.get("select_on")}
    if where <= {"validation"}:
        return "selected on a split held out from the training set"
    if where == {"dev"}:
        return "selected on GLUE dev itself (--select-on dev)"
    return "selected on a split held out from the training set, or on GLUE dev itself where a cell's experiment.json says so"


def write(s: Settings, tasks: list[str], fractions: list[float], results: Path) -> str:
    """Write `<s.root>/README.md`, table.png and low-data.png from the cells' records: every task and fraction
    run so far (widen_scope adds this run's `tasks` and `fractions`), the low-data study, the cells run
    (cells.jsonl) and the hand-written notes.md when there is one. `results` is the --results the command
    was given (shown in its command lines). Returns the table as markdown. Raises OSError when s.root is
    not writable."""
    fractions_of, teachers = widen_scope(s.root, tasks, fractions, dict(s.teachers))
    s = dataclasses.replace(s, teachers=tuple(teachers.items()))
    tasks = list(fractions_of)
    low_tasks = [t for t in tasks if len(fractions_of[t]) > 1] or tasks  # the low-data study's tasks
    fractions = sorted({f for t in low_tasks for f in fractions_of[t]})
    main_table, numbers = table(tasks, s)
    low, low_numbers = low_data(low_tasks, fractions, s)
    has_bars = plot(tasks, numbers, s.root / "table.png")
    has_curves = len(fractions) > 1 and plot_low_data(low_tasks, fractions, low_numbers, s.root / "low-data.png")
    record = compute_record(s)
    every = {**numbers, **low_numbers}
    students = [r for key, r in every.items() if key[1] != "teacher" and r]
    remaining = [f"{c.task}/{c.name}" for t in tasks for c in planned([t], fractions_of[t], s) if not c.done(s)]
    lines = ["# The paper's table, reproduced", "",
             f"{commands(fractions_of, results, s.seeds)} (experiments.paper explains the cells). GLUE dev, mean +- std over "
             f"the confirmation seeds of each cell's chosen configuration ({selected_on(students)}); a cell shows '-' until "
             f"it is done. {who(tasks, every)} The teacher column is its recipe's mean +- std over its "
             "own seed and the teacher-seed+K runs so far (n of them); the students distill from its own seed's teacher. "
             f"{one_class(tasks, s.data_dir)} 'Best fixed' is the fixed method with the best "
             "validation mean; 'gap closed' is (student - finetune) / (teacher - finetune) on the dev means; 'speed-up' is "
             "teacher / student latency at batch 1 (p50) and student / teacher throughput at batch 32, PyTorch fp32 on one "
             "CPU thread, both timed in one run by the first cell of the row that exported a student (its best/deploy.json)."
             + "".join(f" The {t} teacher was given, not searched: `--teacher {t}={folder}`." for t, folder in s.teachers), "",
             main_table, "", spread_note(numbers) or "No internal method has confirmed seeds beside kd yet.", "",
             *(["![the table](table.png)", ""] if has_bars else []),
             "## Low-data study", "", low, "", *(["![low data](low-data.png)", ""] if has_curves else []),
             "## Cells run", "",
             f"{len(record)} runs, {sum(r['seconds'] for r in record) / 3600:.1f} hours of compute in all.", "",
             "A cell run again (after a fix) keeps its earlier runs here as 'superseded'; the table shows the last run.", "",
             "| cell | started | done | hours | machine | command |", "|---|---|---|---|---|---|",
             *[f"| {r['cell']} | {r['start']} | {'superseded' if any(q['cell'] == r['cell'] for q in record[i + 1:]) else r['done']}"
               f" | {r['seconds'] / 3600:.2f} | {r['machine']} | `{r['command']}` |" for i, r in enumerate(record)],
             "", f"Remaining: {', '.join(remaining) or 'none'}.", ""]
    notes = s.root / "notes.md"  # hand-written: where the results disagree with the paper, with their numbers
    if notes.is_file():
        lines += ["## Notes", "", notes.read_text().strip(), ""]
    atomic_write(s.root / "README.md", "\n".join(lines))
    return main_table
