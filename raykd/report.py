"""Result tables from the run records under results/ (teacher.json, result.json).

    python -m raykd.report            # writes results/teachers.md and results/students.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from raykd.data import DEFAULT_CACHE
from raykd.errors import RaykdError, Unfinished, exits_cleanly
from raykd.files import atomic_write
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


def given_teachers(pairs: list[str], tasks: list[str], records_root: Path) -> dict[str, str]:
    """{task: folder} from `--teacher TASK=FOLDER` values. A folder that does not exist is accepted when its
    record under `<records_root>/teachers/` (raykd.training.finetune.find_record) holds a recipe: the runner
    fine-tunes it again there (raykd.artifacts.paper.refit_command); weights are never committed, so this is
    every given teacher on a new machine. Raises RaykdError for a value without '=', a task not among `tasks`,
    or a folder that is not a finished teacher of that task (raykd.training.finetune.is_usable) and cannot be
    fine-tuned again from a record."""
    from raykd.training.finetune import RECORD, find_record, is_usable

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


def paper(args) -> None:
    """Run the paper table's missing cells (unless --plan), then write results/paper/README.md and its plots.
    Raises Unfinished (exit 1), after writing them, when a cell it ran or skipped is still not done."""
    from raykd.artifacts import paper as table

    for name in args.tasks:
        get_task(name)
    s = table.Settings(args.data_dir, args.results / "paper", args.cache_dir / "teachers", args.seeds, args.trials,
                       args.search_trials, args.max_epochs, args.teacher_trials, address=args.address,
                       teachers=tuple(given_teachers(args.teacher, args.tasks, args.results / "paper").items()))
    fractions = sorted({*args.fractions, 1.0})
    every = table.planned(args.tasks, fractions, s, tuple(args.methods))
    remaining = [c for c in every if not c.done(s)]
    print(f"paper table: {len(every) - len(remaining)} of {len(every)} cells done; remaining: "
          f"{', '.join(f'{c.task}/{c.name}' for c in remaining) or 'none'}", flush=True)
    unfinished = table.run(remaining, s, lambda line: print(line, flush=True)) if not args.plan else []
    # The README shows every task and fraction run so far, not only this run's (paper.widen_scope).
    fractions_of, teachers = table.widen_scope(s.root, args.tasks, fractions, dict(s.teachers))
    s = dataclasses.replace(s, teachers=tuple(teachers.items()))
    tasks = list(fractions_of)
    low_tasks = [t for t in tasks if len(fractions_of[t]) > 1] or tasks  # the low-data study's tasks
    fractions = sorted({f for t in low_tasks for f in fractions_of[t]})
    main_table, numbers = table.table(tasks, s)
    low, low_numbers = table.low_data(low_tasks, fractions, s)
    has_bars = table.plot(tasks, numbers, s.root / "table.png")
    has_curves = len(fractions) > 1 and table.plot_low_data(low_tasks, fractions, low_numbers, s.root / "low-data.png")
    record = table.compute_record(s)
    groups = {}  # one command per set of fractions: the tasks of the low-data study, the others
    for t in tasks:
        groups.setdefault(tuple(fractions_of[t]), []).append(t)
    where = f" --results {args.results}" if args.results != Path("results") else ""
    commands = " and ".join(f"`python -m raykd.report paper{where} --tasks {' '.join(ts)} --seeds {args.seeds}"
                            f"{' --fractions ' + ' '.join(f'{f:g}' for f in fr) if len(fr) > 1 else ''}`"
                            for fr, ts in groups.items())
    lines = ["# The paper's table, reproduced", "",
             f"{commands} "
             "(raykd.artifacts.paper explains the cells). GLUE dev, mean +- std over the confirmation seeds of each cell's "
             "chosen configuration (selected on a split held out from the training set); a cell shows '-' until it is done. "
             "3-layer students of a 6-layer all-MiniLM-L6-v2 teacher. The teacher column is its recipe's mean +- std over its "
             "own seed and the teacher-seed+K runs so far (n of them); the students distill from its own seed's teacher. "
             "'One class' is the best dev score of answering one class for every row (MRPC: all-positive; STS-B, a regression, has none); a cell marked "
             "'(one class)' chose such a student. 'Best fixed' is the fixed method with the best "
             "validation mean; 'gap closed' is (student - finetune) / (teacher - finetune) on the dev means; 'speed-up' is "
             "teacher / student latency at batch 1 (p50) and student / teacher throughput at batch 32, PyTorch fp32 on one "
             "CPU thread, both timed in one run by the first cell of the row that exported a student (its best/deploy.json)."
             + "".join(f" The {t} teacher was given, not searched: `--teacher {t}={folder}`." for t, folder in s.teachers), "",
             main_table, "", table.spread_note(numbers) or "No internal method has confirmed seeds beside kd yet.", "",
             *(["![the table](table.png)", ""] if has_bars else []),
             "## Low-data study", "", low, "", *(["![low data](low-data.png)", ""] if has_curves else []),
             "## Cells run", "",
             f"{len(record)} runs, {sum(r['seconds'] for r in record) / 3600:.1f} hours of compute in all.", "",
             "A cell run again (after a fix) keeps its earlier runs here as 'superseded'; the table shows the last run.", "",
             "| cell | started | done | hours | machine | command |", "|---|---|---|---|---|---|",
             *[f"| {r['cell']} | {r['start']} | {'superseded' if any(q['cell'] == r['cell'] for q in record[i + 1:]) else r['done']}"
               f" | {r['seconds'] / 3600:.2f} | {r['machine']} | `{r['command']}` |" for i, r in enumerate(record)],
             "", f"Remaining: {', '.join(f'{c.task}/{c.name}' for t in tasks for c in table.planned([t], fractions_of[t], s) if not c.done(s)) or 'none'}.", ""]
    notes = s.root / "notes.md"  # hand-written: where the results disagree with the paper, with their numbers
    if notes.is_file():
        lines += ["## Notes", "", notes.read_text().strip(), ""]
    atomic_write(s.root / "README.md", "\n".join(lines))
    print(main_table)
    print(f"wrote {s.root / 'README.md'}")
    if unfinished:  # after the README, which shows what did finish
        raise Unfinished(f"{len(unfinished)} cell(s) of this run did not finish: {', '.join(unfinished)}; read the cell's "
                         "output above, then run the same command again (done cells are kept, a stopped search resumes)")


def parser() -> argparse.ArgumentParser:
    """The report command's argument parser: every option with its default (`--help`)."""
    p = argparse.ArgumentParser(prog="python -m raykd.report", description=__doc__.split("\n")[0])
    p.add_argument("table", nargs="?", choices=("records", "parity", "paper"), default="records",
                   help="records: teachers.md and students.md (default); parity: parity.md from results/parity/; "
                        "paper: runs the paper table's missing cells, then writes results/paper/README.md (raykd.artifacts.paper)")
    p.add_argument("--results", type=Path, default=Path("results"), help="results root (default: results)")
    g = p.add_argument_group("paper")
    g.add_argument("--data-dir", default="../shared/data/glue", help="GLUE TSV folders (default: ../shared/data/glue)")
    g.add_argument("--tasks", nargs="+", default=["rte", "mrpc", "cola", "sst2", "stsb"], help="tasks (default: all five)")
    g.add_argument("--methods", nargs="+", default=["finetune", "kd", "all", "pid", "sid", "search"],
                   choices=["finetune", "kd", "all", "pid", "sid", "search"],
                   help="which student cells to run (default: all six; the teacher cells always)")
    g.add_argument("--seeds", type=int, default=3, help="confirmation seeds per cell, and seeds of each teacher's recipe (default: 3)")
    g.add_argument("--fractions", nargs="*", type=float, default=[],
                   help="shares of the training set for the low-data study, e.g. 0.1 0.3 (default: none)")
    g.add_argument("--trials", type=int, default=4, help="learning rates tried per fixed method (default: 4)")
    g.add_argument("--search-trials", type=int, default=12, help="trials of the search cell (default: 12)")
    g.add_argument("--max-epochs", type=int, default=3, help="classification epochs per run (default: 3)")
    g.add_argument("--teacher-trials", type=int, default=8, help="recipes tried by each teacher search (default: 8)")
    g.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help=f"teachers' weights go to <cache-dir>/teachers (default: {DEFAULT_CACHE})")
    g.add_argument("--address", help="address of a running Ray cluster for every cell's command (default: each command "
                                      "starts a local cluster of its own)")
    g.add_argument("--teacher", action="append", default=[], metavar="TASK=FOLDER",
                   help="use this teacher (a folder written by raykd.teacher) for TASK instead of searching one; repeatable "
                        "(default: each task's teacher cell searches its recipe)")
    g.add_argument("--plan", action="store_true", help="print what is done and what remains, rebuild the table, run nothing")
    return p


def parse_args(argv=None):
    """The report's flags (argparse exits 2 on an unknown one)."""
    return parser().parse_args(argv)


@exits_cleanly
def main(argv=None):
    """`python -m raykd.report [records|parity|paper]`: write the chosen tables. Raises RaykdError, for
    `paper`, when --seeds is below 2 or a --fractions value is outside (0, 1]."""
    args = parse_args(argv)
    if args.table == "paper":
        if args.seeds < 2:
            raise RaykdError(f"--seeds {args.seeds}: a mean +- std needs at least 2 seeds")
        if any(not 0 < f <= 1 for f in args.fractions):
            raise RaykdError(f"--fractions {' '.join(map(str, args.fractions))}: each must be in (0, 1]")
        return paper(args)
    if args.table == "parity":
        atomic_write(args.results / "parity.md", parity_table(args.results))
        print(f"wrote {args.results / 'parity.md'}")
        return
    atomic_write(args.results / "teachers.md", teachers_table(args.results))
    atomic_write(args.results / "students.md", students_table(args.results))
    print(f"wrote {args.results / 'teachers.md'} and {args.results / 'students.md'}")


if __name__ == "__main__":
    main()
