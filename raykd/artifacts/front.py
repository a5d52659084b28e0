"""A student search's accuracy-latency front: pareto.csv, pareto.png and every front student under front/<trial>/.

A trial is on the front when no other trial is at least as accurate and at least as fast, and strictly better in
one of the two (non-dominated, maximising the selection metric, minimising the batch-1 latency of its shape,
raykd.student.cost). The metric is the trial's best epoch's, as trials.csv has it; the latency is its shape's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from raykd.artifacts.results import dev_columns, plus_minus
from raykd.files import atomic_savefig, atomic_write, publish_dir
from raykd.selection import CONFIRM, NOT_ELIGIBLE
from raykd.student.pareto import non_dominated
from raykd.student.shape import PARAMETER, Shape
from raykd.training.driver import export_checkpoint
from raykd.tuning.settings import experiment_info
from raykd.tuning.trials import trial_rows


PARETO_CSV, PARETO_PNG, FRONT_DIR = "pareto.csv", "pareto.png", "front"


def front_table(table: pd.DataFrame, offer: dict) -> pd.DataFrame:
    """One row per trial of a trials table (raykd.artifacts.results.trials_table) with a `student_shape`: trial,
    shape and its sizes, the recipe's algorithm, best_value (the selection metric) and best_score (what the front is
    computed on: raykd.selection.selection_score), latency_ms (the offer's
    backend), pytorch_p50_ms, onnx_p50_ms, onnx_examples_per_s (batch 32), params, flops, on_front."""
    rows = []
    for r in table.to_dict("records"):
        name = r.get(PARAMETER)
        if not isinstance(name, str):
            continue
        c, shape = offer["costs"][name], Shape.parse(name)
        rows.append({"trial": r["trial"], "student_shape": name, "layers": shape.layers, "hidden": shape.hidden,
                     "ffn": shape.ffn, "algorithm": r.get("algorithm"), "best_value": r.get("best_value", np.nan),
                     "best_score": r.get("best_score", np.nan),
                     "stop_reason": r.get("stop_reason"), "latency_ms": round(c[offer["backend"]]["p50_ms"], 3),
                     "pytorch_p50_ms": round(c["pytorch"]["p50_ms"], 3), "onnx_p50_ms": round(c["onnx"]["p50_ms"], 3),
                     "onnx_examples_per_s": round(c["onnx"]["examples_per_s"], 1), "params": c["params"],
                     "flops": c["flops"]})
    frame = pd.DataFrame(rows)
    if not frame.empty:
        # On the score, the one rule Tune, ASHA and the confirmation rank by (a one-class student counts 3 lower).
        frame["on_front"] = non_dominated(pd.to_numeric(frame["best_score"], errors="coerce"), frame["latency_ms"])
    return frame


def with_confirmation(frame: pd.DataFrame, exp_dir: Path) -> pd.DataFrame:
    """`frame` with each confirmed trial's seeds (confirm.json, raykd.tuning.confirm): confirmed_n, the mean and
    sample std of the selection metric and of the dev metric over its seeds, and confirmed_constant (its seeds whose
    student predicts one class for every row: raykd.selection.is_constant) (NaN for trials not confirmed)."""
    path = Path(exp_dir) / CONFIRM
    if frame.empty or not path.is_file():
        return frame
    done = json.loads(path.read_text())
    sel, dev = done["selection_metric"], done["dev_metric"]
    stats = {c["search_trial"]: {"confirmed_n": c["n"], "confirmed_mean": c[f"{sel}_mean"], "confirmed_std": c[f"{sel}_std"],
                                 "confirmed_dev_mean": c[f"{dev}_mean"], "confirmed_dev_std": c[f"{dev}_std"],
                                 "confirmed_constant": c.get("constant_runs", 0)}
             for c in done["configs"]}
    extra = pd.DataFrame([stats.get(t, {}) for t in frame["trial"]], index=frame.index)
    return frame.join(extra.reindex(columns=["confirmed_n", "confirmed_mean", "confirmed_std", "confirmed_dev_mean",
                                             "confirmed_dev_std", "confirmed_constant"]))


def all_constant(row: dict) -> bool:
    """Whether every confirmation seed of a front row gave a constant student (one class for every row): its
    metric is the majority class's, so it says nothing about its shape."""
    n, constant = row.get("confirmed_n"), row.get("confirmed_constant")
    return bool(n == n and n and constant == constant and constant is not None and constant >= n)


def plot(frame: pd.DataFrame, offer: dict, metric: str, teacher_value: float | None, path: Path):
    """pareto.png: every trial's metric against its latency, the front as a step line, the teacher, and the paper's
    half-depth student's latency (a vertical line: its metric is a trial's when the search ran that shape)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    done = frame.dropna(subset=["best_value"]) if not frame.empty else frame
    if not done.empty:
        ax.scatter(done["latency_ms"], done["best_value"], c="lightgray", edgecolors="gray", label="trial")
        front = done[done["on_front"]].sort_values("latency_ms")
        ax.step(front["latency_ms"], front["best_value"], where="post", color="C0", marker="o", label="front")
        confirmed_points = front.dropna(subset=["confirmed_mean"]) if "confirmed_mean" in front else front.iloc[0:0]
        if not confirmed_points.empty:
            ax.errorbar(confirmed_points["latency_ms"], confirmed_points["confirmed_mean"],
                        yerr=confirmed_points["confirmed_std"].fillna(0), fmt="s", color="C1", capsize=3,
                        label="front, confirmed mean +- std")
        for r in front.itertuples():
            ax.annotate(r.student_shape, (r.latency_ms, r.best_value), fontsize=7, xytext=(3, -9), textcoords="offset points")
    backend = offer["backend"]
    teacher_ms = offer["costs"][offer["teacher"]][backend]["p50_ms"]
    if teacher_value is not None:
        ax.scatter([teacher_ms], [teacher_value], marker="*", s=160, color="C3", label=f"teacher {offer['teacher']} (dev)")
    ax.axvline(offer["costs"][offer["paper"]][backend]["p50_ms"], color="C2", ls="--",
               label=f"paper's student {offer['paper']}")
    ax.set_xlabel(f"batch-1 latency, {backend} p50 (ms; {offer['seq_length']} tokens, {offer['threads']} threads)")
    ax.set_ylabel(metric)
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)


def _best_checkpoints(exp_dir: Path) -> dict[str, tuple[str, dict]]:
    """{trial id: (checkpoint folder, its metrics)} of each trial's best eligible epoch by `score`."""
    best = {}
    for trial, frame in trial_rows(exp_dir):
        if frame.empty or "checkpoint_path" not in frame:
            continue
        score = pd.to_numeric(frame["score"], errors="coerce")
        eligible = frame[(score > NOT_ELIGIBLE) & np.isfinite(score)].dropna(subset=["checkpoint_path"])
        if not eligible.empty:
            row = eligible.loc[pd.to_numeric(eligible["score"]).idxmax()]
            if Path(row["checkpoint_path"]).is_dir():
                best[trial.trial_id] = (row["checkpoint_path"], row.to_dict())
    return best


def confirmed(row: dict, prefix: str) -> str:
    """'mean +- std' of a front row's confirmation columns `<prefix>_mean`/`_std`, or '-' when not confirmed."""
    value = lambda k: None if row.get(k) is None or row[k] != row[k] else row[k]  # noqa: E731 (NaN: absent)
    return plus_minus(value(f"{prefix}_mean"), value(f"{prefix}_std")) if value("confirmed_n") else "-"


def card(task, row: dict, offer: dict, metrics: dict, checks: dict | None) -> str:
    """A front student's model card: its shape, cost and metric, as a Hub README."""
    dev = f"dev_{task.main_metric}"
    lines = ["---", "library_name: transformers", "pipeline_tag: text-classification", "tags: [raykd, distillation]", "---",
             f"# raykd {task.name} student {row['student_shape']} (trial {row['trial']})", "",
             f"A point of a raykd student search's accuracy-latency front: {row['layers']} layers, hidden {row['hidden']}, "
             f"FFN {row['ffn']}, {row['params']:,} parameters, distilled with `{row['algorithm']}`.", "",
             f"| {offer['backend']} batch-1 p50 (ms) | PyTorch p50 (ms) | ONNX batch 32 (ex/s) | GFLOPs | selection metric | {dev} |",
             "|---|---|---|---|---|---|",
             f"| {row['latency_ms']:.2f} | {row['pytorch_p50_ms']:.2f} | {row['onnx_examples_per_s']:.0f} | "
             f"{row['flops'] / 1e9:.2f} | {row['best_value']:.4f} | {metrics.get(dev, float('nan')):.4f} |", "",
             *([f"Confirmed over {int(row['confirmed_n'])} seeds: selection metric {confirmed(row, 'confirmed')}, {dev} "
                f"{confirmed(row, 'confirmed_dev')}.", ""] if confirmed(row, "confirmed") != "-" else []),
             f"Latency measured on {offer['costs'][row['student_shape']]['machine']}, {offer['seq_length']} tokens, "
             f"{offer['threads']} threads, before training (raykd.student.cost).",
             *(["", f"ONNX check on the dev set: {checks['onnx']['value']:.4f} against PyTorch "
                    f"{checks['hf']['value']:.4f}, largest logit difference {checks['onnx']['max_logit_diff']:.2g}."]
               if checks and "onnx" in checks else [])]
    return "\n".join(lines) + "\n"


def export_front(exp_dir: Path, frame: pd.DataFrame, task, formats: tuple[str, ...], offer: dict) -> list[str]:
    """Each front trial's best checkpoint to front/<trial>/ (Hugging Face folder, the ONNX `formats` checked on the
    dev set, a model card); returns the folders written. A front student that fails an ONNX check keeps its HF
    folder (a warning says so)."""
    from raykd.artifacts import deploy
    from raykd.errors import RaykdError
    from transformers import AutoTokenizer

    info, best, written = experiment_info(exp_dir), _best_checkpoints(exp_dir), []
    columns = None
    for row in frame[frame["on_front"]].to_dict("records"):
        if row["trial"] not in best:
            continue
        checkpoint, _ = best[row["trial"]]
        out = Path(exp_dir) / FRONT_DIR / row["trial"]
        with publish_dir(out) as tmp:
            metrics = export_checkpoint(Path(checkpoint), tmp)
            deploy.set_label_names(tmp, task)
            checks = None
            if formats and set(formats) - {"hf"}:
                columns = columns or dev_columns(info, AutoTokenizer.from_pretrained(tmp))
                try:
                    checks = deploy.export(tmp, task, tuple(f for f in formats if f != "onnx-int8"), columns)
                except RaykdError as err:
                    print(f"warning: front student {row['trial']}: {err}; front/{row['trial']} holds its HF folder only")
            atomic_write(tmp / "README.md", card(task, row, offer, metrics, checks))
        written.append(str(out))
    return written


def write(exp_dir: Path, table: pd.DataFrame, offer: dict, task, formats: tuple[str, ...] | None) -> pd.DataFrame:
    """pareto.csv, pareto.png and (with `formats`) front/<trial>/ of a student search; returns the front table."""
    frame = with_confirmation(front_table(table, offer), exp_dir)
    atomic_write(Path(exp_dir) / PARETO_CSV, frame.to_csv(index=False))
    info = experiment_info(exp_dir)
    teacher_json = Path(info["teacher_dir"]) / "teacher.json"
    teacher_value = json.loads(teacher_json.read_text()).get(f"dev_{task.main_metric}") if teacher_json.is_file() else None
    plot(frame, offer, info["metric"], teacher_value, Path(exp_dir) / PARETO_PNG)
    if formats and not frame.empty:
        export_front(exp_dir, frame, task, formats, offer)
    return frame


def append_summary(exp_dir: Path, lines: list[str]):
    """Insert `lines` into summary.md before its "Best trial of the search" section (at the end when it has none)."""
    path = Path(exp_dir) / "summary.md"
    text = path.read_text()
    marker = "Best trial of the search:"
    block = "\n".join(lines) + "\n"
    text = text.replace(marker, block + marker, 1) if marker in text else text + "\n" + block
    atomic_write(path, text)


def summary_lines(frame: pd.DataFrame, offer: dict, budget: float | None, max_params: int | None,
                  best_trial: str | None) -> list[str]:
    """summary.md's section on the student shapes: the budget and the student of `best_trial` (the search's best,
    within the budget since only shapes within it were offered), and the front."""
    if frame.empty:
        return []
    backend = offer["backend"]
    lines = ["## Student shapes", "",
             f"Latency: {backend} batch-1 p50 at {offer['seq_length']} tokens, {offer['threads']} threads, measured on this "
             f"machine before the search (`pareto.csv`, `pareto.png`). Offered: {', '.join(offer['offered'])}."]
    done = frame.dropna(subset=["best_value"])
    if budget is not None or max_params is not None:
        limit = ", ".join(x for x in (budget is not None and f"{budget:g} ms", max_params is not None and f"{max_params:,} parameters") if x)
        chosen = done[done["trial"] == best_trial]
        if chosen.empty:
            lines.append(f"Budget {limit}: no trial finished a classification epoch.")
        else:
            top = chosen.iloc[0]
            lines.append(f"Budget {limit}: the search's best student within it is trial {top['trial']}, "
                         f"{top['student_shape']}, {top['best_value']:.4f} at {top['latency_ms']:.2f} ms, "
                         f"{int(top['params']):,} parameters (only shapes within the budget were offered).")
    front = done[done["on_front"]].sort_values("latency_ms")
    if not front.empty:
        lines += ["", "The front (search metric: the trial's best epoch, one seed; confirmed: mean +- std over the "
                  "confirmation's seeds, selection metric / dev, where the front was confirmed):", "",
                  "| trial | shape | algorithm | search metric | confirmed | confirmed dev | latency (ms) | parameters | folder |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in front.to_dict("records"):
            mean, dev = confirmed(r, "confirmed"), confirmed(r, "confirmed_dev") + (" (constant)" if all_constant(r) else "")
            lines.append(f"| {r['trial']} | {r['student_shape']} | {r['algorithm']} | {r['best_value']:.4f} | {mean} | {dev} "
                         f"| {r['latency_ms']:.2f} | {int(r['params']):,} | `front/{r['trial']}` |")
    return lines + ["", *against_paper(frame, offer), ""]


def against_paper(frame: pd.DataFrame, offer: dict) -> list[str]:
    """Each confirmed shape against the paper's half-depth student confirmed over the same seeds, on the dev
    metric: latency ratio, difference of means, and the one-std rule (a difference within the larger std is no
    difference). A shape whose every seed is constant (one class for every row) gets no verdict: its metric is the
    majority class's. Empty when the paper's student was not confirmed."""
    if frame.empty or "confirmed_dev_mean" not in frame:
        return []
    rows = frame.dropna(subset=["confirmed_dev_mean"])
    paper = rows[rows["student_shape"] == offer["paper"]]
    if paper.empty:
        return []
    p = paper.loc[paper["confirmed_dev_mean"].idxmax()]
    lines = [f"Against the paper's half-depth student {offer['paper']} (trial {p['trial']}, dev "
             f"{confirmed(p.to_dict(), 'confirmed_dev')} at {p['latency_ms']:.2f} ms), same teacher, data and seeds:", "",
             "| trial | shape | dev (mean +- std) | latency x paper | dev - paper | verdict (one-std rule) |", "|---|---|---|---|---|---|"]
    for r in rows[rows["trial"] != p["trial"]].sort_values("latency_ms").to_dict("records"):
        diff = r["confirmed_dev_mean"] - p["confirmed_dev_mean"]
        stds = [x for x in (r.get("confirmed_dev_std"), p.get("confirmed_dev_std")) if x == x and x is not None]
        std = max(stds) if len(stds) == 2 else None
        verdict = ("constant on every seed (predicts one class): not comparable" if all_constant(r) or all_constant(p.to_dict())
                   else "no std (one seed)" if std is None else "no difference" if abs(diff) <= std
                   else "better by more than one std" if diff > 0 else "worse by more than one std")
        lines.append(f"| {r['trial']} | {r['student_shape']} | {confirmed(r, 'confirmed_dev')} | "
                     f"{r['latency_ms'] / p['latency_ms']:.2f} | {diff:+.4f} | {verdict} |")
    return lines


def write_search(exp_dir: Path, shapes, task, args, interim: bool, best_trial: str | None):
    """A shape search's pareto.csv, pareto.png, front/ (not for an `interim` write: the serving formats wait for the
    finished search, as best/'s do) and summary.md's "Student shapes" section; `shapes` is its
    raykd.student.offer.Offer, `best_trial` the search's best trial."""
    frame = write(exp_dir, pd.read_csv(Path(exp_dir) / "trials.csv", dtype={"trial": str}), shapes.to_dict(), task,
                  None if interim else args.export_formats)
    append_summary(exp_dir, summary_lines(frame, shapes.to_dict(), args.latency_budget_ms, args.max_params, best_trial))
