"""Multi-seed confirmation of a search's best configurations (`--confirm-top K --confirm-seeds S`).

After the search, the K best distinct configurations by the selection score (each trial's best
classification epoch's `score`: the metric on the validation split held out from the training set, or on
dev with `--select-on dev`) run again with S fresh seeds each at their full epoch budget. The K x S runs
are one Ray Tune experiment, `<exp>/ray/confirm`: a grid through the search's own trainable with no search
algorithm and a FIFO scheduler (no run is stopped early), so they run in parallel on a cluster and show in
the dashboard, and `--resume` restores it like the search (a finished run is never run again).

The configuration with the best mean selection score is chosen (each run's `score`, raykd.selection.selection_score:
a seed whose student predicts one class for every selection row counts 3 lower, so a configuration that is
constant on its seeds never wins); the student exported to `best/` is its run whose selection metric is
closest to the configuration's mean (a typical seed, not the luckiest one; ties go to the lower seed), among
its runs that are not constant when it has any. `confirm.json` and `confirm.csv` hold every run and mean +- sample std (ddof 1) per configuration.

The seeds: a configuration searched with seed s (DistillConfig's `seed`, 42 unless the space sets it) is
confirmed with seeds s+1 .. s+S, never s itself, so the luck that made it win the search does not count twice.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from ray import tune
from ray.tune import ResultGrid
from ray.tune.schedulers import FIFOScheduler

from raykd.files import atomic_write
from raykd.selection import CONFIRM, NOT_ELIGIBLE, config_key, is_constant, rank
from raykd.student.pareto import non_dominated, spread
from raykd.student.shape import PARAMETER
from raykd.training.driver import Scaling
from raykd.tuning import tuner

TUNE_NAME = "confirm"
CSV = "confirm.csv"


def _eligible(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows whose score is a classification epoch's finite metric (internal stages and NaN never count)."""
    if frame.empty or "score" not in frame:
        return frame.iloc[0:0]
    score = pd.to_numeric(frame["score"], errors="coerce")
    return frame[(score > NOT_ELIGIBLE) & np.isfinite(score)]


def front_configs(grid: ResultGrid, k: int, reference_shape: str | None = None) -> list[dict]:
    """For --objective pareto: the configurations on the search's accuracy-latency front (each trial's best
    classification epoch's `score` against its `latency_ms`, raykd.student.pareto), at most k of them evenly
    spaced along it from the fastest to the slowest, in top_configs' form and order; plus, when a trial of
    `reference_shape` (the paper's half-depth student) reached a classification epoch, the best such trial,
    so that the front is compared with it over the same seeds."""
    frame = _eligible(grid.get_dataframe(filter_metric="score", filter_mode="max"))
    if frame.empty or "latency_ms" not in frame:
        return []
    front = frame[non_dominated(frame["score"], frame["latency_ms"])].sort_values("latency_ms")
    trials = set(spread(list(front["trial_id"]), k))
    shapes = {r.metrics["trial_id"]: r.config.get(PARAMETER) for r in grid if r.metrics and "trial_id" in r.metrics}
    reference = frame[frame["trial_id"].map(shapes) == reference_shape]
    if reference_shape and not reference.empty:
        trials.add(reference.loc[pd.to_numeric(reference["score"]).idxmax(), "trial_id"])
    return top_configs(grid, len(trials), trials=trials)


def top_configs(grid: ResultGrid, k: int, trials: set | None = None) -> list[dict]:
    """The k best distinct configurations of a finished search, best first.

    `grid` is the search's ResultGrid; each trial counts with its best classification epoch by `score`
    (Tune's `get_dataframe(filter_metric="score", filter_mode="max")`). Configurations that differ only
    in `seed` count once. Returns [{"candidate": rank (1-based), "search_trial": trial id,
    "search_score": float, "config": the trial's searched values}], fewer than k when fewer trials
    reached a classification epoch. With `trials`, only those trials count.
    """
    configs = {r.metrics["trial_id"]: dict(r.config) for r in grid if r.metrics and "trial_id" in r.metrics
               and (trials is None or r.metrics["trial_id"] in trials)}
    frame = _eligible(grid.get_dataframe(filter_metric="score", filter_mode="max"))
    chosen, seen = [], set()
    rows = [row for _, row in frame.iterrows() if row["trial_id"] in configs]
    for row in sorted(rows, key=lambda r: rank(r["score"], r.get("epoch"), configs[r["trial_id"]])):
        config = configs[row["trial_id"]]
        if config_key(config) in seen:
            continue
        seen.add(config_key(config))
        chosen.append({"candidate": len(chosen) + 1, "search_trial": row["trial_id"],
                       "search_score": float(row["score"]), "config": config})
        if len(chosen) == k:
            break
    return chosen


def seeds_for(base_seed: int, count: int) -> list[int]:
    """The confirmation seeds of a configuration searched with `base_seed`: base+1 .. base+count."""
    return [int(base_seed) + 1 + i for i in range(count)]


def started(exp_dir: Path) -> bool:
    """True when the confirmation experiment `<exp_dir>/ray/confirm` exists (to be restored, not rebuilt)."""
    return tune.Tuner.can_restore(str((Path(exp_dir) / "ray" / TUNE_NAME).resolve()))  # relative: pyarrow raises


def build_tuner(trainable, exp_dir: Path, candidates: list[dict] | None, max_concurrent: int, console,
                scaling: Scaling, max_failures: int = 0) -> tune.Tuner:
    """The confirmation experiment `<exp_dir>/ray/confirm`: restored when it exists (finished runs are
    kept, unfinished and errored ones continue from their last checkpoint; `candidates` is then not
    used), else a new grid of one trial per (candidate, seed) of `candidates` ({"candidate",
    "search_trial", "search_score", "config", "seeds"}). Each trial's config is {"confirm": {"candidate",
    "search_trial", "search_score", "of" (the grid's number of runs), "values": {**config, "seed": seed}}},
    so the grid itself records what it confirms; raykd.tuning.trial.Experiment.config reads "values". FIFO scheduler, no search algorithm:
    every run goes to its full epoch budget. `console` prints its progress (raykd.tuning.console.SearchConsole);
    `scaling` and `max_failures`: as for raykd.tuning.tuner.tuner."""
    if started(exp_dir):
        return tuner.restore(trainable, exp_dir, TUNE_NAME)
    total = sum(len(c["seeds"]) for c in candidates)  # Tune creates grid trials lazily: an interrupted grid holds fewer
    runs = [{"candidate": c["candidate"], "search_trial": c["search_trial"], "search_score": c["search_score"],
             "of": total, "values": {**c["config"], "seed": seed}} for c in candidates for seed in c["seeds"]]
    return tune.Tuner(
        trainable, param_space={"confirm": tune.grid_search(runs)},
        tune_config=tune.TuneConfig(metric="score", mode="max", scheduler=FIFOScheduler(),
                                    max_concurrent_trials=max_concurrent, reuse_actors=tuner.reuse_processes(scaling)),
        run_config=tuner.run_config(exp_dir, TUNE_NAME, console, tuner.trial_retries(scaling, max_failures)))


def _mean_std(values: pd.Series) -> tuple[float | None, float | None]:
    values = values.dropna()
    if values.empty:
        return None, None
    std = float(values.std(ddof=1)) if len(values) > 1 else None
    return float(values.mean()), std


def planned_runs(grid: ResultGrid) -> int:
    """The confirmation grid's number of runs, (candidates x seeds), as recorded in each run's config (`of`);
    Tune creates grid trials lazily, so an interrupted grid may hold fewer. Grids recorded without it count
    the runs they hold."""
    return max((r.config["confirm"].get("of", 0) for r in grid), default=0) or len(grid)


def ended(exp_dir: Path, grid: ResultGrid) -> bool:
    """True when the confirmation `<exp_dir>/ray/confirm` holds all its planned runs and each ended, as Tune
    saved it (raykd.tuning.tuner.ended: an interrupted run has not ended, though fit()'s ResultGrid says so)."""
    return len(grid) > 0 and tuner.ended(exp_dir, planned_runs(grid), TUNE_NAME)


def summarize(grid: ResultGrid, selection_metric: str, dev_metric: str, finished: bool = False) -> dict:
    """confirm.json's content from the confirmation's ResultGrid.

    Every run counts with its best classification epoch by `score` (the checkpoint it would export),
    from Tune's `get_dataframe(filter_metric="score", filter_mode="max")`; a run that failed or reached
    no usable classification epoch has no value and is left out of its configuration's mean. Returns
    {"selection_metric", "dev_metric", "finished" (the caller's `finished`: every run ended, see ended()), "planned_runs" (the grid's
    size, of which an interrupted grid may hold fewer), "runs": [per run: candidate, seed,
    trial, status, epoch, the two metrics, score, constant (one class for every selection row), checkpoint],
    "configs": [per candidate: config, search trial and score, seeds, n, mean and sample std of both metrics,
    score_mean, constant_runs], "chosen": the exported run (only when finished and some run has a value),
    "lead": the chosen configuration against the runner-up (lead(); only when finished), "rule"}. `selection_metric` is the search's; the winner has the highest mean `score` (the selection
    metric, negated for "min", a constant run 3 lower: raykd.selection.selection_score). The configurations
    and their search trials come from the grid's own trial configs (build_tuner), never recomputed.
    """
    by_rank = {}
    frame = grid.get_dataframe(filter_metric="score", filter_mode="max")
    best = {row["trial_id"]: row for _, row in _eligible(frame).iterrows()}
    runs = []
    for result in grid:
        run = result.config["confirm"]
        trial = result.metrics.get("trial_id") if result.metrics else None
        row = best.get(trial)
        runs.append({"candidate": run["candidate"], "seed": run["values"]["seed"], "trial": trial,
                     "status": "error" if result.error else ("ok" if row is not None else "no usable epoch"),
                     "epoch": None if row is None else int(row["epoch"]),
                     selection_metric: None if row is None else float(row[selection_metric]),
                     "score": None if row is None else float(row["score"]),
                     "constant": None if row is None else is_constant(row, selection_metric),
                     dev_metric: None if row is None else float(row[dev_metric]),
                     "checkpoint": None if row is None else row.get("checkpoint_path"),
                     "values": run["values"]})
        by_rank.setdefault(run["candidate"], {"search_trial": run.get("search_trial"), "search_score": run.get("search_score"),
                                              "config": {k: v for k, v in run["values"].items() if k != "seed"}})
    table = pd.DataFrame(runs)
    configs = []
    for candidate in sorted(by_rank):
        mine = table[table["candidate"] == candidate] if len(table) else table
        sel_mean, sel_std = _mean_std(pd.to_numeric(mine.get(selection_metric, pd.Series(dtype=float)), errors="coerce"))
        score_mean, _ = _mean_std(pd.to_numeric(mine.get("score", pd.Series(dtype=float)), errors="coerce"))
        dev_mean, dev_std = _mean_std(pd.to_numeric(mine.get(dev_metric, pd.Series(dtype=float)), errors="coerce"))
        c = by_rank[candidate]
        configs.append({"candidate": candidate, "search_trial": c.get("search_trial"), "search_score": c.get("search_score"),
                        "config": c["config"], "seeds": sorted(int(s) for s in mine.get("seed", [])),
                        "n": int(mine[selection_metric].notna().sum()) if selection_metric in mine else 0,
                        f"{selection_metric}_mean": sel_mean, f"{selection_metric}_std": sel_std, "score_mean": score_mean,
                        "constant_runs": sum(c is True for c in mine.get("constant", [])),
                        f"{dev_metric}_mean": dev_mean, f"{dev_metric}_std": dev_std})
    summary = {"selection_metric": selection_metric, "dev_metric": dev_metric, "finished": finished,
               "planned_runs": planned_runs(grid),
               "rule": "the configuration with the best mean selection score (a seed that predicts one class for every "
                       "row counts 3 lower); its seed closest to its mean is exported, a constant one only when all are",
               "configs": configs, "runs": runs, "chosen": None}
    if finished:
        summary["chosen"] = choose(configs, runs, selection_metric, dev_metric)
        summary["lead"] = lead(configs, summary["chosen"], selection_metric)
    return summary


def _by_mean(config: dict) -> tuple:
    """The order of confirmed configurations, shared by choose() and lead(): the higher mean score, then the
    better-ranked candidate (the lower number)."""
    return config["score_mean"], -config["candidate"]


def lead(configs: list[dict], chosen: dict | None, selection_metric: str) -> dict | None:
    """How far the chosen configuration is ahead of the runner-up, against the seed-to-seed spread.

    Returns {"runner_up" (its candidate number), "lead" (difference of the two `score_mean`s, in the selection
    metric's units, > 0; a constant seed's 3 counts in it), "std" (the larger of the two configurations'
    sample std of the selection metric), "separated" (lead > std: the project's one-std rule; a smaller
    lead is no difference the confirmation can show, and the mean decides all the same)}; None without a
    chosen run or a second configuration with a value; "std" and "separated" are None when a configuration
    has one seed (no std)."""
    scored = [c for c in configs if c["score_mean"] is not None]
    if chosen is None or len(scored) < 2:
        return None
    winner = next(c for c in scored if c["candidate"] == chosen["candidate"])
    runner = max((c for c in scored if c is not winner), key=_by_mean)
    stds = [c.get(f"{selection_metric}_std") for c in (winner, runner)]
    std = None if None in stds else max(stds)
    gap = winner["score_mean"] - runner["score_mean"]
    return {"runner_up": runner["candidate"], "lead": gap, "std": std, "separated": None if std is None else gap > std}


def choose(configs: list[dict], runs: list[dict], selection_metric: str, dev_metric: str) -> dict | None:
    """The exported run of a finished confirmation (summarize's `configs` and `runs`): the configuration with
    the highest `score_mean` (ties: the better-ranked candidate), then its run whose `selection_metric` is
    closest to the configuration's mean (ties: the lower seed), among its runs that are not constant when
    it has any. Returns the run with "config", "mean" and "metrics" added, or None when no run has a value."""
    scored = [c for c in configs if c["score_mean"] is not None]
    if not scored:
        return None
    winner = max(scored, key=_by_mean)
    mean = winner[f"{selection_metric}_mean"]
    mine = [r for r in runs if r["candidate"] == winner["candidate"] and r[selection_metric] is not None]
    run = min([r for r in mine if not r["constant"]] or mine, key=lambda r: (abs(r[selection_metric] - mean), r["seed"]))
    return {**run, "config": run["values"], "mean": mean,
            "metrics": {"epoch": run["epoch"], selection_metric: run[selection_metric], dev_metric: run[dev_metric]}}


def write(exp_dir: Path, summary: dict):
    """confirm.json (the whole summary) and confirm.csv (one row per run) in the experiment folder,
    each written to a temporary name and renamed."""
    exp_dir = Path(exp_dir)
    atomic_write(exp_dir / CONFIRM, json.dumps(summary, indent=2, default=str))
    rows = [{k: v for k, v in r.items() if k != "values"} | {f"config/{k}": v for k, v in r["values"].items()}
            for r in summary["runs"]]
    atomic_write(exp_dir / CSV, pd.DataFrame(rows).to_csv(index=False))

