"""An experiment's results, read from Tune's experiment folder: trials.csv, summary.md, a plot of every
trial's metric over epochs, and the best student exported to best/ with a model card.

Every file is written to a temporary name and renamed, so an interrupted write never leaves half a file.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd

from raykd.errors import RaykdError
from raykd.files import atomic_savefig, atomic_write, publish_dir
from raykd.method.plan import FILE as PLAN_FILE
from raykd.selection import CONFIRM, best_checkpoint, one_class_caution, selection_cautions
from raykd.tasks import Task
from raykd.training.driver import export_checkpoint
from raykd.tuning.settings import experiment_info
from raykd.tuning.trial import own_values
from raykd.tuning.trials import trial_rows, trials_table


def read_plan(checkpoint: Path) -> dict:
    """The plan a checkpoint's run trained with (`plan.json`, raykd.method.plan.RunPlan.to_dict: "config", the
    sizes, the layer map, the stages). Raises RaykdError for a checkpoint without one (written before
    raykd recorded plans: run the search again)."""
    path = Path(checkpoint) / PLAN_FILE
    if not path.is_file():
        raise RaykdError(f"checkpoint {checkpoint} has no {PLAN_FILE} (an older raykd wrote it); run the search again")
    return json.loads(path.read_text())


def dev_columns(info: dict, tokenizer, data_dir: str | None = None) -> dict:
    """The experiment's dev set (its settings' data source, or `data_dir` instead), tokenized with
    `tokenizer` at its max length: raykd.data.as_columns. Raises RaykdError when the data cannot be read."""
    from raykd.data import DEFAULT_CACHE, DataSource, as_columns, load_split, tokenize

    settings = info.get("settings") or {}
    source = DataSource(data_dir=data_dir or settings.get("data_dir"), dev_file=None if data_dir else settings.get("dev_file"),
                        text_columns=tuple(c for c in (settings.get("text_columns") or "").split(",") if c),
                        label_column=settings.get("label_column") or "label")
    dev = load_split(info["task"], "dev", source)
    return as_columns(tokenize(dev, tokenizer, settings.get("max_seq_length") or 128,
                               Path(settings.get("cache_dir") or DEFAULT_CACHE)))


def check_data(info: dict, data_dir: str | None = None) -> None:
    """Before any compute: the dev data an export checks on exists. Raises RaykdError naming the fix."""
    settings = info.get("settings") or {}
    task = info["task"]
    if data_dir or settings.get("data_dir"):
        path = Path(data_dir or settings["data_dir"]) / task.tsv_dir / f"{task.dev_split}.tsv"
        if not path.is_file():
            raise RaykdError(f"the dev set {path} is not there (the search's --data-dir is taken from the folder it ran "
                             "in); pass --data-dir with the GLUE folder")
    elif settings.get("dev_file") and not Path(settings["dev_file"]).is_file():
        raise RaykdError(f"the dev file {settings['dev_file']} is not there; pass --data-dir with the GLUE folder")


def export_best(exp_dir: Path, out: Path, task: Task, teacher_dir: str, formats: tuple[str, ...] | None = None,
                data_dir: str | None = None, latency_examples: int = 100) -> dict:
    """Copy the best student to `out` (replaced as a whole, via a temporary folder, only once every format
    passed its check) with its label names and a Hub model card (raykd.artifacts.card).

    `formats` (raykd.artifacts.deploy.FORMATS): the ONNX files to add, each checked on the dev set against the PyTorch
    model (raykd.artifacts.deploy.check_exports), and, with `latency_examples` > 0, the teacher's and the student's
    latency in each format; None exports the Hugging Face folder alone, unchecked. Returns {"trial", the
    epoch's metrics, "config", "recipe", "layer_map", "checks", "latency"}. Raises RuntimeError when no
    trial saved a classification checkpoint, RaykdError when a format fails its check.
    """
    from raykd.artifacts import card, deploy

    info = experiment_info(exp_dir)
    trial_id, _, checkpoint, config = best_checkpoint(exp_dir)
    plan = read_plan(Path(checkpoint))  # the model card is rendered from the run's own plan
    recipe = plan["config"]
    with publish_dir(out) as tmp:
        metrics = export_checkpoint(Path(checkpoint), tmp)
        deploy.set_label_names(tmp, task)
        checks = measured = None
        if formats:
            from transformers import AutoTokenizer

            columns = dev_columns(info, AutoTokenizer.from_pretrained(tmp), data_dir)
            checks = deploy.export(tmp, task, formats, columns)
            main = f"dev_{task.main_metric}"
            if metrics.get(main) is not None and \
                    abs(checks["hf"]["value"] - metrics[main]) > deploy.METRIC_TOLERANCE:
                raise RaykdError(f"the exported student's {main} recomputed in PyTorch is {checks['hf']['value']:.4f}, but "
                                 f"the trial reported {metrics[main]:.4f}; check that --data-dir is the data the search ran on")
            if latency_examples:
                with tempfile.TemporaryDirectory(dir=out.parent, prefix=".latency.") as scratch:
                    models = {"student": tmp}
                    if (Path(teacher_dir) / "config.json").is_file():
                        models = {"teacher": deploy.teacher_copy(Path(teacher_dir), Path(scratch) / "teacher", formats),
                                  **models}
                    measured = deploy.measure(models, columns, examples=latency_examples)
        confirmation = None
        confirm_path = Path(exp_dir) / CONFIRM
        if confirm_path.is_file():
            done = json.loads(confirm_path.read_text())
            chosen = done.get("chosen")
            stats = chosen and next((c for c in done.get("configs", []) if c.get("candidate") == chosen.get("candidate")), None)
            if stats:
                dev = done.get("dev_metric", f"dev_{task.main_metric}")
                confirmation = {"seeds": stats.get("seeds", []), "metric": dev, "mean": stats.get(f"{dev}_mean"),
                                "std": stats.get(f"{dev}_std")}
        best = {"trial": trial_id, **metrics, "searched": own_values(config)}
        text = card.model_card(task, f"raykd-{task.name}-{Path(exp_dir).name}", best, recipe, plan,
                               card.teacher_record(teacher_dir), info, checks,
                               deploy.latency_table(measured) if measured else None, confirmation)
        atomic_write(tmp / "README.md", text)
        record = {"task": task.name, "formats": list(formats or ("hf",)), "checks": checks, "latency": measured,
                  "recipe": recipe, "layer_map": plan["layer_map"], "trial": trial_id}
        deploy.write_record(tmp, record)
    return {"trial": trial_id, **metrics, "config": config, "recipe": recipe, "layer_map": plan["layer_map"],
            "checks": checks, "latency": measured}


def deploy_lines(best: dict | None) -> list[str]:
    """summary.md's section on the exported formats: their dev check and the latency table."""
    from raykd.artifacts import deploy

    if not best or not best.get("checks"):
        return []
    checks = best["checks"]
    lines = ["## Exported formats (`best/`)", "", f"| format | {checks['metric']} on {checks['examples']} dev examples "
             "| against PyTorch fp32 | largest logit difference |", "|---|---|---|---|"]
    for fmt in deploy.FORMATS:
        if fmt in checks:
            c = checks[fmt]
            lines.append(f"| {deploy.FORMAT_NAMES[fmt]} | {c['value']:.4f} | {-c['drop']:+.4f} | {c['max_logit_diff']:.2g} |")
    if best.get("latency"):
        lines += ["", *deploy.latency_table(best["latency"])]
    return lines + [""]


def plot(table_frames: list[tuple], table: pd.DataFrame, metric: str, path: Path):
    """The search as PNG at `path`, two panels. Left: `metric` against epoch, one line per trial, an x where
    ASHA stopped one. Right: each trial's best score against its trial number (Tune's start order), o for a
    trial that ran its epochs, x for one ASHA stopped, so the rungs' cuts show at a glance. `table` is
    trials_table's (trial, stop_reason, best_score columns)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stopped = set(table.loc[table["stop_reason"] == "stopped by ASHA", "trial"]) if "stop_reason" in table else set()
    colors = plt.get_cmap("tab20").colors  # 12+ trials: tab10's colours would repeat
    fig, (curves, per_trial) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    for k, (trial, frame) in enumerate(table_frames):
        if frame.empty:
            continue
        color = colors[k % len(colors)]
        curves.plot(frame["epoch"], frame[metric], marker="o", ms=3, color=color,
                    label=f"{trial.trial_id} {trial.config.get('algorithm', '')}")
        if trial.trial_id in stopped:
            curves.plot(frame["epoch"].iloc[-1], frame[metric].iloc[-1], "x", color="black", ms=9, mew=2)
    curves.set_xlabel("epoch (internal stages included)")
    curves.set_ylabel(metric)
    if curves.lines:  # no trial reported (all failed, say): an empty plot, no legend warning
        curves.legend(fontsize=6, ncol=2)
    if "best_score" in table:
        for k, row in enumerate(table.itertuples()):
            if row.best_score == row.best_score:  # NaN: the trial never finished an epoch
                asha = row.trial in stopped
                per_trial.plot(k + 1, row.best_score, "x" if asha else "o", ms=8, mew=2,
                               color="black" if asha else "C0", label="stopped by ASHA" if asha else "ran its epochs")
        handles = dict(zip(*reversed(per_trial.get_legend_handles_labels())))
        if handles:
            per_trial.legend(handles.values(), handles.keys(), fontsize=7)
    per_trial.set_xlabel("trial (start order)")
    per_trial.set_ylabel(f"best score ({metric})")
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)


def _best_line(best: dict | None, metric: str, teacher_value, dev_metric: str | None = None) -> str:
    """The search's best; with `dev_metric` (selection on the validation split) its GLUE dev number too."""
    teacher = "unknown" if teacher_value is None else f"{teacher_value:.4f}"
    if best is None:
        return f"- no trial has finished a classification epoch yet (continue with --resume); teacher: {teacher}"
    dev = ""
    if dev_metric and best.get(dev_metric) is not None:
        dev = f"; the same student on GLUE dev: {dev_metric} **{best[dev_metric]:.4f}** (reported only, never used to select)"
    return f"- best {metric}: **{best[metric]:.4f}** (trial {best['trial']}, epoch {best['epoch']}){dev}; teacher (dev): {teacher}"


def selection_info(info: dict) -> dict:
    """How the experiment selects (experiment.json's "selection"): {"select_on": "validation" or "dev",
    "validation_fraction", "validation_rows", "train_rows", "data_seed"}; an experiment from before
    held-out selection existed selected on dev."""
    return info.get("selection") or {"select_on": "dev"}


def _selection_line(selection: dict, trials: int, task: Task) -> str:
    if selection["select_on"] == "validation":
        line = (f"- selection: on a validation split held out from the training set ({selection['validation_fraction']:g}, "
                f"{selection['validation_rows']} rows, seed {selection['data_seed']}; the trials trained on the other "
                f"{selection['train_rows']} rows); GLUE dev is used only to report the chosen student")
        return line + "".join(f"\n- {c.markdown}" for c in selection_cautions(selection, task))
    return (f"- selection: **GLUE dev was used for selection** (`--select-on dev`), so the best dev number is the best of "
            f"{trials} trials on the very set it is reported on and is optimistically biased (the winner's curse); "
            "the default, a validation split held out from the training set, avoids it")


def plus_minus(mean, std) -> str:
    """'0.5415 +- 0.0123'; 'n/a' without a mean; a single seed has no std."""
    if mean is None:
        return "n/a"
    return f"{mean:.4f} +- {std:.4f}" if std is not None else f"{mean:.4f} (one seed)"


def _confirmation_lines(confirm: dict, exp_name: str) -> list[str]:
    sel, dev = confirm["selection_metric"], confirm["dev_metric"]
    same = sel == dev
    lines = ["## Multi-seed confirmation", "",
             f"The top {len(confirm['configs'])} configurations of the search by {sel}, each run again with fresh seeds "
             "(the searched seed + 1, + 2, ...) at its full epoch budget, no early stopping (Tune grid in `ray/confirm`); "
             "each run counts with its best classification epoch; mean +- sample std over the seeds "
             "(`confirm.json`, `confirm.csv`). The search score is the trial's selection score: its "
             f"{sel}, 3 lower for a student that predicted one class (negated when lower is better).", "",
             f"| # | search trial | search score | seeds (n) | {sel} |" + ("" if same else f" {dev} |") + " configuration |",
             "|---|---|---|---|---|" + ("" if same else "---|") + "---|"]
    for c in confirm["configs"]:
        score = "" if c.get("search_score") is None else f"{c['search_score']:.4f}"
        constant = f"; {c['constant_runs']} predicted one class" if c.get("constant_runs") else ""
        row = (f"| {c['candidate']} | {c.get('search_trial') or ''} | {score} | {', '.join(map(str, c['seeds']))} ({c['n']}{constant}) | "
               f"{plus_minus(c[f'{sel}_mean'], c[f'{sel}_std'])} |")
        if not same:
            row += f" {plus_minus(c[f'{dev}_mean'], c[f'{dev}_std'])} |"
        lines.append(row + f" `{json.dumps(c['config'], default=str)}` |")
    chosen = confirm.get("chosen")
    lines.append("")
    if chosen:
        dev_part = "" if same else f", {dev} {chosen[dev]:.4f}"
        lines.append(f"Chosen: configuration #{chosen['candidate']} (the best mean {sel}, a seed that predicted one class counting 3 lower). Exported to `best/`: its seed "
                     f"{chosen['seed']} (trial {chosen['trial']}, epoch {chosen['epoch']}), the seed whose {sel} is closest to "
                     f"the mean ({chosen[sel]:.4f} against {chosen['mean']:.4f}){dev_part}: a typical run, not the luckiest.")
        margin = confirm.get("lead")  # raykd.tuning.confirm.lead
        if margin:
            said = f"It leads #{margin['runner_up']}, the runner-up, by {margin['lead']:.4f} in mean {sel}"
            if margin["std"] is None:
                said += "; with one seed a configuration there is no spread to weigh that against."
            elif margin["separated"]:
                said += f", more than the larger seed-to-seed std ({margin['std']:.4f})."
            else:
                said += (f", under the larger seed-to-seed std ({margin['std']:.4f}): no difference the seeds can show; "
                         "the mean decides all the same.")
            lines += ["", said]
    elif not confirm["finished"]:
        done = sum(r["status"] != "error" and r["epoch"] is not None for r in confirm["runs"])
        lines.append(f"The confirmation is unfinished ({done} of {confirm.get('planned_runs') or len(confirm['runs'])} runs have a result): continue with "
                     f"`--resume --name {exp_name}`; until then `best/` holds the search's best trial.")
    else:
        lines.append("No confirmation run reached a usable classification epoch; `best/` holds the search's best trial.")
    return lines


def first_error(exp_dir: Path) -> str | None:
    """The last line of the first errored trial's error (its exception and message), or None."""
    for trial, _ in trial_rows(exp_dir):
        if trial.status == "ERROR":
            text = Path(trial.error_file).read_text() if trial.error_file and Path(trial.error_file).is_file() else ""
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            return lines[-1] if lines else "no message"
    return None


def export_fallbacks(formats: tuple[str, ...] | None) -> list[tuple[str, ...] | None]:
    """The formats results.write tries in turn: all of `formats`; then without onnx-int8 (ONNX Runtime's
    quantizer is the most fragile step: on the H200 image's onnxruntime 1.30 it failed where the fp32 ONNX
    passed its check, results/gpu.md); then the Hugging Face folder alone (None: no check, no latency)."""
    tries = [formats] if formats else []
    if formats and "onnx-int8" in formats:
        tries.append(tuple(f for f in formats if f != "onnx-int8"))
    return [*tries, None]


def write(exp_dir: Path, seconds: float, formats: tuple[str, ...] | None = None, latency_examples: int = 100) -> dict:
    """trials.csv, best/, trials.png, summary.md and summary.json of an experiment, finished or not.
    `formats` and `latency_examples`: export_best's; when a format fails (or fails its check), best/ gets
    the formats that work (export_fallbacks), and summary.md the first failure ("export_error")."""
    info = experiment_info(exp_dir)
    task, metric, max_epochs = info["task"], info["metric"], info["max_epochs"]
    teacher_info, sizes = info["teacher_info"], info["sizes"]
    selection = selection_info(info)
    dev_metric = f"dev_{task.main_metric}" if selection["select_on"] == "validation" else None
    table = trials_table(exp_dir, metric, max_epochs)
    atomic_write(exp_dir / "trials.csv", table.to_csv(index=False))
    export_error = None
    try:
        search_trial, search_metrics, _, search_config = best_checkpoint(exp_dir, confirmed=False)
        search_best = {"trial": search_trial, **search_metrics, "config": search_config}
        tries = export_fallbacks(formats)
        for i, fallback in enumerate(tries):
            try:
                best = export_best(exp_dir, exp_dir / "best", task, info["teacher_dir"], fallback,
                                   latency_examples=latency_examples if fallback else 0)
                break
            except RaykdError as err:  # a format failed (or failed its check): the search's student still ships
                if i == len(tries) - 1:
                    raise
                export_error = export_error or str(err)
                print(f"warning: {err}; best/ holds the formats {','.join(tries[i + 1] or ('hf',))} only", flush=True)
    except RuntimeError:  # interrupted before any classification epoch
        search_best = best = None
    confirm = json.loads((exp_dir / CONFIRM).read_text()) if (exp_dir / CONFIRM).is_file() else None
    plot(trial_rows(exp_dir), table, metric, exp_dir / "trials.png")
    teacher_json = Path(info["teacher_dir"]) / "teacher.json"
    teacher_metric = "dev_" + metric[len("val_"):] if metric.startswith("val_") else metric  # the teacher's dev number
    teacher_value = json.loads(teacher_json.read_text()).get(teacher_metric) if teacher_json.is_file() else None
    per_algorithm = {}  # each algorithm's best trial by score: its metric, "(one class)" when that student was constant
    if "best_value" in table and "algorithm" in table:
        for algorithm, rows in table.dropna(subset=["best_value"]).groupby("algorithm"):
            top = rows.loc[rows["best_score"].idxmax()]
            per_algorithm[algorithm] = f"{top['best_value']:.4f}" + (" (one class)" if bool(top["best_constant"]) else "")
    main_dev = f"dev_{task.main_metric}"
    summary = {"best_trial": best and best["trial"], "best_value": best and best.get(metric),
               "best_epoch": best and best["epoch"], "best_dev_value": best and best.get(main_dev),
               "search_best": search_best and {k: search_best.get(k) for k in ("trial", "epoch", metric, main_dev)},
               "selection": selection, "confirmation": confirm and {k: v for k, v in confirm.items() if k != "runs"},
               "teacher_value": teacher_value, "trials": len(table),
               "seconds": round(seconds, 1), "stopped_by_asha": int((table["stop_reason"] == "stopped by ASHA").sum())}
    summary["failed_trials"] = int((table["status"] == "ERROR").sum()) if "status" in table else 0
    summary["all_failed"] = bool(len(table)) and summary["failed_trials"] == len(table)
    summary["first_error"] = first_error(exp_dir) if summary["failed_trials"] else None
    summary["one_class"] = one_class_caution(best)
    if summary["all_failed"]:
        best_line = (f"- **every trial failed** ({len(table)} of {len(table)} ended in ERROR), so there is no best "
                     f"student; the first error: `{summary['first_error']}`")
    else:
        best_line = _best_line(search_best, metric, teacher_value, dev_metric) + "\n" + _selection_line(selection, len(table), task)
        chosen = confirm and confirm.get("chosen")
        if chosen:
            stats = next(c for c in confirm["configs"] if c["candidate"] == chosen["candidate"])
            sel, dev = confirm["selection_metric"], confirm["dev_metric"]
            means = plus_minus(stats[f"{sel}_mean"], stats[f"{sel}_std"]) + (
                "" if sel == dev else f", {dev} {plus_minus(stats[f'{dev}_mean'], stats[f'{dev}_std'])}")
            best_line += (f"\n- exported student (`best/`): confirmed configuration #{chosen['candidate']}, seed {chosen['seed']}: "
                          f"{sel} **{chosen[sel]:.4f}**" + ("" if sel == dev else f", {dev} **{chosen[dev]:.4f}**") +
                          f"; over its {stats['n']} seeds {sel} {means} (below)")
        if summary["one_class"]:
            best_line += f"\n- **caution: {summary['one_class']}.**"
        if summary["failed_trials"]:
            best_line += f"\n- failed trials: {summary['failed_trials']}; the first error: `{summary['first_error']}`"
    main = f"val_{task.main_metric}" if dev_metric else main_dev
    lines = [f"# {task.name}: {exp_dir.name}", "", f"Command: `{info['command']}`", "",
             best_line,
             f"- trials: {len(table)}, stopped by ASHA: {summary['stopped_by_asha']}, wall time of this command: {seconds / 60:.1f} min",
             f"- teacher: {teacher_info['layers']} layers, {teacher_info['teacher_params_total']:,} parameters "
             f"({teacher_info['teacher_params_non_embedding']:,} non-embedding); student: {sizes['student_layers']} layers, "
             f"{sizes['student_params_total']:,} ({sizes['student_params_non_embedding']:,} non-embedding)", "",
             *(["Best per algorithm (the soft-label baseline is `kd`, plain fine-tuning `finetune`):", "",
                f"| algorithm | best {main} |", "|---|---|", *[f"| {a} | {v} |" for a, v in per_algorithm.items()]]
               if len(per_algorithm) else  # the space fixes the algorithm: no table of one row, say which
               [f"Algorithm: `{best['recipe'].get('algorithm')}` in every trial (fixed by the space)." if best else ""]), "",
             *(_confirmation_lines(confirm, exp_dir.name) + [""] if confirm else []),
             *deploy_lines(best), *([f"Export of the other formats failed: `{export_error}`", ""] if export_error else []),
             "Best trial of the search:", "", "```json", json.dumps(search_best, indent=2, default=str), "```", "",
             "Files: `trials.csv` (every trial, metric per epoch, stop reason), `trials.png`, `best/` (the student), "
             + ("`confirm.json`/`confirm.csv` (the confirmation runs), " if confirm else "") +
             "`optuna.db` (optuna-dashboard sqlite:///optuna.db)."]
    atomic_write(exp_dir / "summary.md", "\n".join(lines) + "\n")
    atomic_write(exp_dir / "summary.json", json.dumps(summary, indent=2, default=str))
    return summary


