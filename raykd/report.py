"""Result tables from the run records under results/ (teacher.json, result.json).

    python -m raykd.report            # writes results/teachers.md and results/students.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from raykd.results import atomic_write
from raykd.tasks import get_task


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def teachers_table(root: Path) -> str:
    lines = ["# Teachers", "", "Fine-tuned with `python -m raykd.teacher` on 2 CPU cores (Ray Train, 2 DDP workers); "
             "GLUE dev set, the best epoch kept. Each row's command is the one that produced it.", "",
             "| task | base | metric(s) | best epoch / epochs | per-epoch main metric | train rows | minutes | command |",
             "|---|---|---|---|---|---|---|---|"]
    # Records: copies under results/teachers/*.json, or teacher.json inside a teacher folder saved there with --out.
    for path in sorted([*root.glob("teachers/*.json"), *root.glob("teachers/*/teacher.json")]):
        r = json.loads(path.read_text())
        task = get_task(r["task"])
        scores = ", ".join(f"{task.metrics[i]} {_pct(r.get('dev_' + m))}" for i, m in enumerate(task.metrics))
        curve = " ".join(_pct(h.get(f"dev_{task.main_metric}")) for h in r.get("history", []))
        lines.append(f"| {task.name} | {r['base']} | {scores} | {r['best_epoch']} / {r['config']['epochs']} | {curve} | "
                     f"{r['train_examples']} | {r['seconds'] / 60:.1f} | `{r['command']}` |")
    return "\n".join(lines) + "\n"


def students_table(root: Path) -> str:
    lines = ["# Single distillation runs", "", "`python -m raykd.distill` on 2 CPU cores (Ray Train, 2 DDP workers); "
             "GLUE dev set, the best classification epoch kept.", "",
             "| task | algorithm | dev metric | best epoch / epochs | teacher | student layers (map) | student params (non-emb.) | minutes | command |",
             "|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(root.glob("runs/*/result.json")):
        r = json.loads(path.read_text())
        task = get_task(r["task"])
        metric = f"dev_{task.main_metric}"
        teacher_json = Path(r["teacher"]) / "teacher.json"
        teacher = json.loads(teacher_json.read_text()).get(metric) if teacher_json.is_file() else None
        lines.append(f"| {task.name} | {r['config']['algorithm']} | {task.main_metric} {_pct(r['best'][metric])} | "
                     f"{r['best']['epoch']} / {len(r['history'])} | {_pct(teacher)} | {r['student_layers']} {r['layer_map']} | "
                     f"{r['student_params_total']:,} ({r['student_params_non_embedding']:,}) | {r['seconds'] / 60:.1f} | "
                     f"`{r['command']}` |")
    return "\n".join(lines) + "\n"


def parity_table(root: Path) -> str:
    """fp32 against bf16 students (results/parity/<task>-<algorithm>-<precision>-s<seed>/result.json):
    the best dev metric of each seed, and mean +- sample std per (task, algorithm, precision)."""
    import statistics
    from collections import defaultdict

    groups = defaultdict(list)
    for path in sorted(root.glob("parity/*/result.json")):
        r = json.loads(path.read_text())
        metric = f"dev_{get_task(r['task']).main_metric}"
        c = r["config"]
        groups[(r["task"], c["algorithm"], c["precision"])].append(
            (c["seed"], r["best"][metric], statistics.mean(h["epoch_seconds"] for h in r["history"])))
    lines = ["# fp32 against bf16 students", "", "`bash results/parity/run.sh` (each run's command is in its result.json): "
             "the same RTE teacher, `raykd.distill` with 2 Ray Train workers, 2 classification epochs, lr 1e-4, "
             "length-grouped batches; the best epoch's dev metric per seed. Epoch seconds were measured while "
             "other jobs shared the 2 cores: they are not a speed comparison (see results/bench.md).", "",
             "| task | algorithm | precision | seeds | dev metric per seed | mean +- std | mean epoch seconds |",
             "|---|---|---|---|---|---|---|"]
    for (task, algorithm, precision), runs in sorted(groups.items()):
        scores = [s for _, s, _ in sorted(runs)]
        spread = f"{100 * statistics.mean(scores):.2f} +- {100 * statistics.stdev(scores):.2f}" if len(scores) > 1 else "n/a (1 seed)"
        lines.append(f"| {task} | {algorithm} | {precision} | {', '.join(str(k) for k, _, _ in sorted(runs))} | "
                     f"{' '.join(_pct(s) for s in scores)} | {spread} | {statistics.mean(t for _, _, t in runs):.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m raykd.report", description=__doc__.split("\n")[0])
    p.add_argument("table", nargs="?", choices=("records", "parity"), default="records",
                   help="records: teachers.md and students.md (default); parity: parity.md from results/parity/")
    p.add_argument("--results", type=Path, default=Path("results"), help="results root (default: results)")
    args = p.parse_args(argv)
    if args.table == "parity":
        atomic_write(args.results / "parity.md", parity_table(args.results))
        print(f"wrote {args.results / 'parity.md'}")
        return
    atomic_write(args.results / "teachers.md", teachers_table(args.results))
    atomic_write(args.results / "students.md", students_table(args.results))
    print(f"wrote {args.results / 'teachers.md'} and {args.results / 'students.md'}")


if __name__ == "__main__":
    main()
