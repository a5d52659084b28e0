"""The tables of run records under results/ (teacher.json, result.json), as markdown: the teachers, the single
distillation runs, fp32 against bf16 students. `python -m raykd.report` writes them."""

from __future__ import annotations

import json
from pathlib import Path

from raykd.tasks import get_task


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def _recipe(r: dict) -> str:
    """A teacher record's recipe in one cell: learning rate, epochs, warm-up, batch, weight decay, seed,
    precision, and the base when it is another fine-tuned teacher (an intermediate task)."""
    c = r.get("config", {})
    parts = [f"lr {c['learning_rate']:.2g}" if "learning_rate" in c else None, f"{c['epochs']} epochs" if "epochs" in c else None,
             f"warm-up {c['warmup_ratio']:g}" if "warmup_ratio" in c else None,
             f"batch {c['batch_size']}" if "batch_size" in c else None,
             f"wd {c['weight_decay']:g}" if "weight_decay" in c else None, f"seed {c['seed']}" if "seed" in c else None,
             c.get("precision"), f"from {r['base']}" if "/" in str(r.get("base", "")) else None]
    found = r.get("search")
    how = f"searched ({found['trials']} recipes of {found['space']}, chosen on {found['selected_on']})" if found else "one run"
    return f"{how}: {', '.join(p for p in parts if p)}" if any(parts) else how


def _rows(r: dict, task) -> str:
    """A teacher's training rows, and the rows held out to choose its epoch with its score there."""
    held = r.get("validation_examples")
    return f"{r['train_examples']}" + (f" (+{held} held out, chosen on them: {task.main_metric} "
                                       f"{_pct(r.get('val_' + task.main_metric))})" if held else "")


def teachers_table(root: Path) -> str:
    """Markdown table of the teacher records under `root`, by task: the first single runs (teachers/*.json,
    teachers/*/teacher.json), the parity runs' (parity/teachers/*.json) and the paper table's teachers,
    searched or given (paper/teachers/*.json).
    Per record: dev metrics, best epoch, per-epoch main metric, the recipe, train rows (and held-out rows),
    minutes and command."""
    lines = ["# Teachers", "", "Fine-tuned with `python -m raykd.teacher` on 2 CPU cores (Ray Train, 2 DDP workers); "
             "scores on GLUE dev. The best epoch is kept on dev, or, where the train rows say so, on the rows held out from "
             "training (the students' validation split; dev then only reports). Each row's command is the one that produced it; a searched teacher's "
             "recipe is the one its search kept. MiniLM-L6-H384, for comparison, is published at RTE 68.8, MRPC 88.9 "
             "(F1), CoLA 47.5, SST-2 91.5 on GLUE dev.", "",
             "| task | base | metric(s) | best epoch / epochs | per-epoch main metric | recipe | train rows | minutes | command |",
             "|---|---|---|---|---|---|---|---|---|"]
    # Records: copies under results/teachers/*.json, or teacher.json inside a teacher folder saved there with
    # --out; the parity runs' and the paper runner's teachers keep their copies under <those>/teachers/.
    paths = [*root.glob("teachers/*.json"), *root.glob("teachers/*/teacher.json"), *root.glob("parity/teachers/*.json"),
             *root.glob("paper/teachers/*.json"), *root.glob("*/paper/teachers/*.json")]
    for r in sorted((json.loads(p.read_text()) for p in paths), key=lambda r: r["task"]):
        task = get_task(r["task"])
        scores = ", ".join(f"{task.metrics[i]} {_pct(r.get('dev_' + m))}" for i, m in enumerate(task.metrics))
        curve = " ".join(_pct(h.get(f"dev_{task.main_metric}")) for h in r.get("history", []))
        base = "another teacher" if "/" in str(r["base"]) else r["base"]
        lines.append(f"| {task.name} | {base} | {scores} | {r['best_epoch']} / {r['config']['epochs']} | {curve} | "
                     f"{_recipe(r)} | {_rows(r, task)} | {r['seconds'] / 60:.1f} | `{r['command']}` |")
    return "\n".join(lines) + "\n"


def students_table(root: Path) -> str:
    """Markdown table of the distillation runs under `root` (runs/*/result.json): dev metric, best epoch,
    the teacher's dev metric, student depth and layer map, parameters, minutes and command."""
    from raykd.training.finetune import find_record

    lines = ["# Single distillation runs", "", "`python -m raykd.distill` on 2 CPU cores (Ray Train, 2 DDP workers); "
             "GLUE dev set, the best classification epoch kept.", "",
             "| task | algorithm | dev metric | best epoch / epochs | teacher | student layers (map) | student params (non-emb.) | minutes | command |",
             "|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(root.glob("runs/*/result.json")):
        r = json.loads(path.read_text())
        task = get_task(r["task"])
        metric = f"dev_{task.main_metric}"
        teacher = find_record(Path(r["teacher"]), root).get(metric)
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
             "per task one teacher (results/parity/teacher-<task>), `raykd.distill` with 2 Ray Train workers, 2 classification epochs, lr 1e-4, "
             "length-grouped batches; the best epoch's dev metric per seed. Epoch seconds were measured while "
             "other jobs shared the 2 cores: they are not a speed comparison (see results/bench.md).", "",
             "| task | algorithm | precision | seeds | dev metric per seed | mean +- std | mean epoch seconds |",
             "|---|---|---|---|---|---|---|"]
    for (task, algorithm, precision), runs in sorted(groups.items()):
        scores = [s for _, s, _ in sorted(runs)]
        spread = f"{100 * statistics.mean(scores):.2f} +- {100 * statistics.stdev(scores):.2f}" if len(scores) > 1 else "n/a (1 seed)"
        lines.append(f"| {task} | {algorithm} | {precision} | {', '.join(str(k) for k, _, _ in sorted(runs))} | "
                     f"{' '.join(_pct(s) for s in scores)} | {spread} | {statistics.mean(t for _, _, t in runs):.0f} |")
    lines += ["", "bf16 against fp32 over the seeds both have (a difference within the larger std is no difference):", "",
              "| task | algorithm | seeds | fp32 | bf16 | bf16 - fp32 | verdict |", "|---|---|---|---|---|---|---|"]
    for task, algorithm in sorted({(t, a) for t, a, _ in groups}):
        fp32 = {k: v for k, v, _ in groups.get((task, algorithm, "fp32"), [])}
        bf16 = {k: v for k, v, _ in groups.get((task, algorithm, "bf16"), [])}
        both = sorted(set(fp32) & set(bf16))
        if not both:
            continue
        a, b = [fp32[k] for k in both], [bf16[k] for k in both]
        diff = statistics.mean(b) - statistics.mean(a)
        spread = max(statistics.stdev(a), statistics.stdev(b)) if len(both) > 1 else None
        verdict = ("n/a (1 seed)" if spread is None else "no difference" if abs(diff) <= spread
                   else "bf16 better" if diff > 0 else "bf16 worse")
        lines.append(f"| {task} | {algorithm} | {len(both)} | {100 * statistics.mean(a):.2f} | {100 * statistics.mean(b):.2f} | "
                     f"{100 * diff:+.2f} | {verdict} |")
    return "\n".join(lines) + "\n"
