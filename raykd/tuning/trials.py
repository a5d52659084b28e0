"""Tune's tables of an experiment: each trial's epochs (Tune's results, completed by the epoch log where a stop
cut Tune's short), its stop reason, and trials.csv's table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from ray.tune import ExperimentAnalysis

from raykd.selection import NOT_ELIGIBLE, is_constant
from raykd.training.epochs import epoch_log, history


def trials_dir(exp_dir: Path) -> Path:
    """`<exp_dir>/ray/trials`: where each search trial's Ray Train run keeps its checkpoints and epoch log."""
    return Path(exp_dir) / "ray" / "trials"


def run_name(trial_id: str) -> str:
    """The Ray Train run name of a search trial, `trial-<id>`: deterministic, so a restored trial finds its
    checkpoints and its epoch log again."""
    return f"trial-{trial_id}"


def trial_rows(exp_dir: Path) -> list[tuple]:
    """(trial, its per-epoch dataframe) for every trial Tune knows of, one row per epoch in order.

    Tune's rows are completed from the trial's own epoch log (raykd.training.epochs.EpochLog, `ray/trials/trial-<id>.epochs.jsonl`):
    after a restore Tune restarts an unfinished trial's rows from its resumed epoch, and an epoch reported in
    the moment of a Ctrl-C never reaches Tune, and a search killed mid-write can lose Tune's record of a trial's
    last epochs; the log has every epoch, with its checkpoint_path. Rows from the log alone carry no
    time_total_s."""
    analysis = ExperimentAnalysis(str(exp_dir / "ray" / "tune"))
    frames = analysis.trial_dataframes
    rows = []
    for trial in analysis.trials:
        frame = frames.get(trial.trial_id, pd.DataFrame())
        logged = pd.DataFrame(history(epoch_log(trials_dir(exp_dir), run_name(trial.trial_id))))
        if not logged.empty:
            missing = logged if frame.empty else logged[~logged["epoch"].isin(frame["epoch"])]
            if not missing.empty:
                frame = pd.concat([frame, missing], ignore_index=True).sort_values("epoch", ignore_index=True)
        rows.append((trial, frame))
    return rows


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
    """One row per trial: its configuration, `metric` at every epoch (and, when the metric is measured
    on the validation split, `dev_<m>`, the same metric on GLUE dev), status, stop reason, seconds.
    Columns: trial, status, configuration, stop_reason, then `<metric>@<epoch>` (and `dev_<m>@<epoch>`)
    by epoch, then epochs_run, cls_epochs_run, best_score (the trial's best `score`: raykd.selection.selection_score,
    3 lower when its student predicted one class), best_value and best_constant (`metric` at that epoch, and
    whether it was a constant student), seconds, seconds_to_first_step, and the start-up's phases
    (`startup_<phase>_s`, raykd.training.startup)."""
    dev = "dev_" + metric[len("val_"):] if metric.startswith("val_") else None
    rows = []
    for trial, frame in trial_rows(exp_dir):
        planned = min(int(trial.config.get("epochs", max_epochs)), max_epochs)
        row = {"trial": trial.trial_id, "status": trial.status, **trial.config,
               "stop_reason": stop_reason(trial, frame, planned)}
        if not frame.empty:
            for _, epoch in frame.iterrows():
                row[f"{metric}@{int(epoch['epoch'])}"] = round(float(epoch[metric]), 4)
                if dev and dev in epoch:
                    row[f"{dev}@{int(epoch['epoch'])}"] = round(float(epoch[dev]), 4)
            row["epochs_run"] = int(frame["epoch"].max())
            row["cls_epochs_run"] = int(frame["cls_epoch"].max())
            best = frame.loc[pd.to_numeric(frame["score"], errors="coerce").idxmax()]
            row["best_score"] = float(best["score"])  # what Tune ranked the trial by (raykd.selection.selection_score)
            if best["score"] > NOT_ELIGIBLE:  # that epoch's metric, and whether its student predicted one class
                row["best_value"], row["best_constant"] = round(float(best[metric]), 4), is_constant(best, metric)
            if "time_total_s" in frame:  # Tune's clock: absent when only the epoch log saw the trial
                row["seconds"] = round(float(frame["time_total_s"].max()), 1)
            if "seconds_to_first_step" in frame:  # start-up: worker group, model, teacher outputs
                row["seconds_to_first_step"] = round(float(frame["seconds_to_first_step"].dropna().iloc[0]), 1)
            for column in (c for c in frame.columns if c.startswith("startup_")):  # raykd.training.startup's phases
                row[column] = float(frame[column].dropna().iloc[0])
        rows.append(row)
    table = pd.DataFrame(rows)
    for column in ("epochs_run", "cls_epochs_run"):  # counts stay integers beside a trial not started yet
        if column in table:
            table[column] = table[column].astype("Int64")
    return in_column_order(table, metric)


def in_column_order(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """`table` (a trials table) with its columns in a fixed order: those that are neither per-epoch nor
    totals as they come, then `<m>@<epoch>` by epoch (`metric` before the others of an epoch), then
    the totals. Trials that run at once finish in any order, and the table must not change with it."""
    per_epoch = sorted((c for c in table.columns if "@" in c),
                       key=lambda c: (int(c.rsplit("@", 1)[1]), not c.startswith(metric + "@")))
    totals = [c for c in ("epochs_run", "cls_epochs_run", "best_score", "best_value", "best_constant", "seconds",
                          "seconds_to_first_step") if c in table] + [c for c in table.columns if c.startswith("startup_")]
    first = [c for c in table.columns if c not in per_epoch and c not in totals]
    return table[first + per_epoch + totals]
