"""The paper table and the low-data study as markdown, from each cell's numbers (experiments.paper.numbers):
dev means +- std in points, footnotes for cells distilled from another teacher than their row's, and which
differences exceed the seed-to-seed std."""

from __future__ import annotations

from pathlib import Path

from experiments.paper.cells import LOW_DATA_METHODS, METHODS, Cell, Settings, cells
from experiments.paper.numbers import one_class_scores, result
from raykd.tasks import get_task


def _cell_text(r: dict | None) -> str:
    """A cell as the table shows it: "mean +- std" in points, "mean (n=1)" for one seed, "-" until done."""
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
        """The footnotes marked so far, in order: "[n] distilled from the teacher in `<folder>` (dev <points>) ..."."""
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
