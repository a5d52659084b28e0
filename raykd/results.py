"""An experiment's results, read from Tune's experiment folder: trials.csv, summary.md, a plot of every
trial's metric over epochs, and the best student exported to best/ with a model card.

Every file is written to a temporary name and renamed, so an interrupted write never leaves half a file.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from ray.tune import ExperimentAnalysis

from raykd.errors import RaykdError
from raykd.tasks import Task, get_task
from raykd.train import NOT_ELIGIBLE
from raykd.trainer import export_checkpoint


EXPERIMENT = "experiment.json"


def atomic_write(path: Path, text: str):
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def trial_rows(exp_dir: Path) -> list[tuple]:
    """(trial, its per-epoch dataframe) for every trial Tune knows of."""
    analysis = ExperimentAnalysis(str(exp_dir / "ray" / "tune"))
    frames = analysis.trial_dataframes
    return [(trial, frames.get(trial.trial_id, pd.DataFrame())) for trial in analysis.trials]


def stop_reason(trial, frame: pd.DataFrame, planned_epochs: int) -> str:
    if trial.status == "ERROR":
        return "error"
    if frame.empty:
        return "not started" if trial.status == "PENDING" else "no report"
    last = frame.iloc[-1]
    if isinstance(last.get("stop_reason"), str):
        return last["stop_reason"]
    if last.get("cls_epoch", 0) >= planned_epochs:
        return "completed"
    return "stopped by ASHA" if trial.status == "TERMINATED" else "interrupted"


def trials_table(exp_dir: Path, metric: str, max_epochs: int) -> pd.DataFrame:
    rows = []
    for trial, frame in trial_rows(exp_dir):
        planned = min(int(trial.config.get("epochs", max_epochs)), max_epochs)
        row = {"trial": trial.trial_id, "status": trial.status, **trial.config,
               "stop_reason": stop_reason(trial, frame, planned)}
        if not frame.empty:
            for _, epoch in frame.iterrows():
                row[f"{metric}@{int(epoch['epoch'])}"] = round(float(epoch[metric]), 4)
            row["epochs_run"] = int(frame["epoch"].max())
            row["cls_epochs_run"] = int(frame["cls_epoch"].max())
            row["best_score"] = float(frame["score"].max())
            row["seconds"] = round(float(frame["time_total_s"].max()), 1)
            if "seconds_to_first_step" in frame:  # start-up: worker group, model, teacher outputs
                row["seconds_to_first_step"] = round(float(frame["seconds_to_first_step"].dropna().iloc[0]), 1)
        rows.append(row)
    return pd.DataFrame(rows)


def best_checkpoint(exp_dir: Path, metric: str, mode: str = "max") -> tuple[str, dict, str, dict]:
    """(trial id, metrics, checkpoint folder, configuration) of the best classification epoch of any
    trial by the experiment's metric; internal-stage epochs are never chosen."""
    best, sign = None, 1 if mode == "max" else -1
    for trial, frame in trial_rows(exp_dir):
        if frame.empty or "checkpoint_path" not in frame:
            continue
        eligible = frame[frame["score"] > NOT_ELIGIBLE].dropna(subset=["checkpoint_path", metric])
        eligible = eligible[np.isfinite(eligible[metric].astype(float))]  # a NaN or infinite metric is never best
        for _, row in eligible.iterrows():
            if (best is None or sign * row[metric] > sign * best[1][metric]) and Path(row["checkpoint_path"]).is_dir():
                best = (trial.trial_id, row.to_dict(), row["checkpoint_path"], dict(trial.config))
    if best is None:
        raise RuntimeError(f"no trial of {exp_dir} saved a classification checkpoint yet")
    return best


def model_card(task: Task, metric: str, value: float, teacher_dir: str, config: dict, sizes: dict) -> str:
    lines = [f"# raykd student for {task.name}", "",
             f"Distilled by raykd (Aguilar et al., AAAI 2020) from the teacher `{teacher_dir}`.", "",
             f"- task: {task.name}; dev {metric}: {value:.4f}",
             f"- layers: {sizes.get('student_layers')} (layer map {sizes.get('layer_map')}); parameters: "
             f"{sizes.get('student_params_total', 0):,} ({sizes.get('student_params_non_embedding', 0):,} non-embedding)",
             "", "## Configuration", "", "```json", json.dumps(config, indent=2, default=str), "```", "",
             "Load with `AutoModelForSequenceClassification.from_pretrained(folder)`."]
    return "\n".join(lines) + "\n"


def export_best(exp_dir: Path, out: Path, task: Task, metric: str, teacher_dir: str, sizes: dict, mode: str = "max") -> dict:
    """Copy the best student to `out` (replaced as a whole, via a temporary folder) with a model card."""
    trial_id, _, checkpoint, config = best_checkpoint(exp_dir, metric, mode)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    metrics = export_checkpoint(Path(checkpoint), tmp)
    (tmp / "README.md").write_text(model_card(task, metric, metrics[metric], teacher_dir, config, sizes))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return {"trial": trial_id, **metrics, "config": config}


def plot(table_frames: list[tuple], metric: str, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for trial, frame in table_frames:
        if not frame.empty:
            ax.plot(frame["epoch"], frame[metric], marker="o", label=f"{trial.trial_id} {trial.config.get('algorithm', '')}")
    ax.set_xlabel("epoch (internal stages included)")
    ax.set_ylabel(metric)
    if ax.lines:  # no trial reported (all failed, say): an empty plot, no legend warning
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def experiment_info(exp_dir: Path) -> dict:
    """What the search wrote at its start (experiment.json): task, metric, mode, teacher, sizes, command,
    settings. Raises RaykdError when the file is missing or damaged."""
    path = Path(exp_dir) / EXPERIMENT
    if not path.is_file():
        raise RaykdError(f"{exp_dir} is not a raykd experiment (no {EXPERIMENT}); pass the folder a search created")
    try:
        info = json.loads(path.read_text())
        info["task"] = get_task(info["task"])
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise RaykdError(f"{path} is damaged ({type(err).__name__}: {err}); restore it, or run the search again "
                         "under another --name") from None
    return info


def _best_line(best: dict | None, metric: str, teacher_value) -> str:
    teacher = "unknown" if teacher_value is None else f"{teacher_value:.4f}"
    if best is None:
        return f"- no trial has finished a classification epoch yet (continue with --resume); teacher: {teacher}"
    return f"- best {metric}: **{best[metric]:.4f}** (trial {best['trial']}, epoch {best['epoch']}); teacher: {teacher}"


def first_error(exp_dir: Path) -> str | None:
    """The last line of the first errored trial's error (its exception and message), or None."""
    for trial, _ in trial_rows(exp_dir):
        if trial.status == "ERROR":
            text = Path(trial.error_file).read_text() if trial.error_file and Path(trial.error_file).is_file() else ""
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            return lines[-1] if lines else "no message"
    return None


def write(exp_dir: Path, seconds: float) -> dict:
    """trials.csv, best/, trials.png, summary.md and summary.json of an experiment, finished or not."""
    info = experiment_info(exp_dir)
    task, metric, mode, max_epochs = info["task"], info["metric"], info["mode"], info["max_epochs"]
    teacher_info, sizes = info["teacher_info"], info["sizes"]
    table = trials_table(exp_dir, metric, max_epochs)
    atomic_write(exp_dir / "trials.csv", table.to_csv(index=False))
    try:
        best = export_best(exp_dir, exp_dir / "best", task, metric, info["teacher_dir"], sizes, mode)
    except RuntimeError:  # interrupted before any classification epoch
        best = None
    plot(trial_rows(exp_dir), metric, exp_dir / "trials.png")
    teacher_json = Path(info["teacher_dir"]) / "teacher.json"
    teacher_value = json.loads(teacher_json.read_text()).get(metric) if teacher_json.is_file() else None
    per_algorithm = table.groupby("algorithm")["best_score"].max() if "best_score" in table and "algorithm" in table else {}
    summary = {"best_trial": best and best["trial"], "best_value": best and best[metric],
               "best_epoch": best and best["epoch"], "teacher_value": teacher_value, "trials": len(table),
               "seconds": round(seconds, 1), "stopped_by_asha": int((table["stop_reason"] == "stopped by ASHA").sum())}
    summary["failed_trials"] = int((table["status"] == "ERROR").sum()) if "status" in table else 0
    summary["all_failed"] = bool(len(table)) and summary["failed_trials"] == len(table)
    summary["first_error"] = first_error(exp_dir) if summary["failed_trials"] else None
    if summary["all_failed"]:
        best_line = (f"- **every trial failed** ({len(table)} of {len(table)} ended in ERROR), so there is no best "
                     f"student; the first error: `{summary['first_error']}`")
    else:
        best_line = _best_line(best, metric, teacher_value)
        if summary["failed_trials"]:
            best_line += f"\n- failed trials: {summary['failed_trials']}; the first error: `{summary['first_error']}`"
    main = f"dev_{task.main_metric}"
    lines = [f"# {task.name}: {exp_dir.name}", "", f"Command: `{info['command']}`", "",
             best_line,
             f"- trials: {len(table)}, stopped by ASHA: {summary['stopped_by_asha']}, wall time of this command: {seconds / 60:.1f} min",
             f"- teacher: {teacher_info['layers']} layers, {teacher_info['teacher_params_total']:,} parameters "
             f"({teacher_info['teacher_params_non_embedding']:,} non-embedding); student: {sizes['student_layers']} layers, "
             f"{sizes['student_params_total']:,} ({sizes['student_params_non_embedding']:,} non-embedding)", "",
             "Best per algorithm (the soft-label baseline is `kd`, plain fine-tuning `finetune`):", "",
             f"| algorithm | best {main} |", "|---|---|",
             *[f"| {a} | {v:.4f} |" for a, v in dict(per_algorithm).items()], "",
             "Best trial:", "", "```json", json.dumps(best, indent=2, default=str), "```", "",
             "Files: `trials.csv` (every trial, metric per epoch, stop reason), `trials.png`, `best/` (the student), "
             "`optuna.db` (optuna-dashboard sqlite:///optuna.db)."]
    atomic_write(exp_dir / "summary.md", "\n".join(lines) + "\n")
    atomic_write(exp_dir / "summary.json", json.dumps(summary, indent=2, default=str))
    return summary


# The flags a search starts with, kept in experiment.json: --resume uses them (ASHA's max_t, the trials'
# epochs, the data...) and refuses a flag that says otherwise.
SETTINGS = ("num_samples", "max_epochs", "grace_period", "reduction_factor", "seed", "max_concurrent_trials",
            "workers", "cpus_per_worker", "gpus_per_worker", "max_failures", "precision", "data_dir", "train_file",
            "dev_file", "text_columns", "label_column", "max_seq_length", "train_fraction", "data_seed",
            "teacher_cache_memory", "teacher_cache_disk", "live_teacher", "cache_dir")
FLAGS = {"workers": "--workers-per-trial"}
SPACE_COPY = "space.py"


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def search_settings(args) -> dict:
    """The settings to store in experiment.json: the flags in SETTINGS and the space file's SHA-256."""
    settings = {n: getattr(args, n) for n in SETTINGS if hasattr(args, n)}
    return {**{n: str(v) if isinstance(v, Path) else v for n, v in settings.items()}, "space_sha256": _sha256(args.space)}


def keep_space(exp_dir: Path, space: Path):
    """A copy of the space file in the experiment, to say what changed when a resume finds another."""
    shutil.copyfile(space, Path(exp_dir) / SPACE_COPY)


def resume_settings(exp_dir: Path, args, argv: list[str]):
    """For --resume: set `args` to the settings the experiment started with (experiment.json).

    Raises RaykdError when a flag typed in `argv` contradicts one of them, when --teacher is another
    teacher, or when the space file is not the one the experiment started with (saying which line
    changed). An experiment from before settings were stored is resumed with the flags as given.
    """
    info = experiment_info(exp_dir)
    stored = info.get("settings")
    if not stored:
        return
    typed = {t.split("=")[0] for t in argv if t.startswith("--") and t != "--"}
    for name, value in stored.items():
        if name not in SETTINGS:
            continue
        flag = FLAGS.get(name, "--" + name.replace("_", "-"))
        value = Path(value) if isinstance(getattr(args, name), Path) else value
        if any(flag.startswith(t) for t in typed) and getattr(args, name) != value:  # argparse takes prefixes
            raise RaykdError(f"{flag} {getattr(args, name)} contradicts experiment {exp_dir.name}, which started with "
                             f"{flag} {value}; drop the flag to resume with {value}, or start a new experiment with another --name")
        setattr(args, name, value)
    if args.teacher and str(Path(args.teacher).resolve()) != info["teacher_dir"]:
        raise RaykdError(f"--teacher {args.teacher} is not the teacher experiment {exp_dir.name} started with "
                         f"({info['teacher_dir']}); drop --teacher to resume with it, or start a new experiment")
    if Path(args.space).is_file() and _sha256(args.space) != stored["space_sha256"]:
        raise RaykdError(f"the space file {args.space} changed since experiment {exp_dir.name} started "
                         f"({_first_change(Path(exp_dir) / SPACE_COPY, Path(args.space))}); resume with the space it "
                         f"started with (a copy: {Path(exp_dir) / SPACE_COPY}), or start a new experiment with another --name")


def _first_change(old: Path, new: Path) -> str:
    """The first line that differs between two versions of a file, as a phrase."""
    def shown(line: str | None) -> str:
        return "nothing" if line is None else repr(line.strip()[:80])

    if old.is_file():
        before, after = old.read_text().splitlines(), new.read_text().splitlines()
        for number, (a, b) in enumerate(itertools.zip_longest(before, after), start=1):
            if a != b:
                return f"line {number} was {shown(a)}, is now {shown(b)}"
    return "its SHA-256 differs"
