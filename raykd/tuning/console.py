"""What a search prints while it runs, in place of Tune's own console (RunConfig(verbose=0)).

Tune's table cuts column names ("...nds_to_first_step"), shows no validation metric unless told, counts
0/2 CPUs in use while Train workers hold them (they sit in placement groups, the trial itself in none), and
prints the one-class penalty raw ("score=-2.497991967871486"). This callback prints one line per event
(a trial starts, ends an epoch, ends, fails) and, every `every_s` seconds, a table of every trial: its
algorithm, epoch, validation metric, its best, whether it was stopped, and the CPUs and GPUs the cluster
really has reserved. Every line fits 100 characters.
"""

from __future__ import annotations

import math
import time

import ray
from ray import tune

from raykd.selection import NOT_ELIGIBLE, is_constant, rank

WIDTH = 100  # every line printed fits a 100-column terminal


def _value(metrics: dict, metric: str) -> str:
    """`metric` of one epoch's metrics, 4 decimals, "1cls" appended for a student that answers one class
    (ranked last by raykd.selection); "-" for an internal stage's epoch or a missing value."""
    value = metrics.get(metric)
    if value is None or metrics.get("score", 0) <= NOT_ELIGIBLE or not math.isfinite(float(value)):
        return "-"
    return f"{float(value):.4f}" + (" 1cls" if is_constant(metrics, metric) else "")


class SearchConsole(tune.Callback):
    """Tune callback: the console of a search, its confirmation or a teacher search.

    `metric` is the selection metric shown (e.g. val_accuracy); every epoch's `score` (raykd.selection)
    decides which epoch is a trial's best and the search's. `max_epochs` is the classification-epoch
    budget, to tell a trial ASHA stopped from one that completed; `algorithm` the schedule of trials whose
    configuration does not name one. Its state is rebuilt from results, so a restored search (which
    unpickles it as it was given) prints correctly from its next event on."""

    def __init__(self, metric: str, max_epochs: int, algorithm: str = "-", every_s: float = 30.0):
        self.metric, self.max_epochs, self.algorithm, self.every_s = metric, max_epochs, algorithm, every_s
        self._reset()

    def _reset(self):
        self.best: dict[str, tuple[tuple, str]] = {}  # trial id -> (selection.rank key, shown value) of its best epoch
        self.last: dict[str, dict] = {}  # trial id -> its last result
        self.shown_at = time.monotonic()

    def __getstate__(self):  # pickled with the RunConfig: what it printed is not worth keeping
        return {k: getattr(self, k) for k in ("metric", "max_epochs", "algorithm", "every_s")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._reset()

    def _say(self, line: str):
        print(line[:WIDTH], flush=True)

    def _algorithm(self, trial) -> str:
        values = trial.config.get("confirm", {}).get("values", trial.config)
        return str(values.get("algorithm", self.algorithm))

    def _leader(self) -> str:
        if not self.best:
            return "none yet"
        # selection.rank's order, ties included (the earlier epoch, then the configuration): the trial named here
        # is the one the search's summary and export will choose
        trial_id, (_, shown) = min(self.best.items(), key=lambda kv: kv[1][0])
        return f"{shown} ({trial_id})"

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info):
        """Tune calls this once its Ctrl-C handler is in place, before any trial starts."""
        self._say(f"tune: started, {total_num_samples} trial(s); a line per trial event, a table every "
                  f"{self.every_s:.0f} s; Ctrl-C keeps what ended")

    def on_trial_start(self, iteration, trials, trial, **info):
        values = trial.config.get("confirm", {}).get("values", trial.config)
        drawn = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
        self._say(f"trial {trial.trial_id} started: {drawn or 'the fixed configuration'}")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.last[trial.trial_id] = result
        score = result.get("score", NOT_ELIGIBLE)
        key = rank(score, result.get("epoch"), dict(trial.config))
        if score > NOT_ELIGIBLE and key < self.best.get(trial.trial_id, ((math.inf,), ""))[0]:
            self.best[trial.trial_id] = (key, _value(result, self.metric))
        self._say(f"trial {trial.trial_id} epoch {result.get('epoch')} {result.get('stage') or 'training'} "
                  f"{result.get('epoch_seconds', 0):.0f} s: {self.metric} {_value(result, self.metric)}; "
                  f"best {self._leader()}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._say(f"trial {trial.trial_id} {self._ended(trial)}; best {self._leader()}")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._say(f"trial {trial.trial_id} failed: its error is in trials.csv and ray-workers.log; the search goes on")

    def _status(self, trial) -> str:
        if trial.status == "ERROR":
            return "failed"
        if trial.status in ("PENDING", "PAUSED"):
            return "waiting"
        if trial.status == "RUNNING":
            return "running"
        return self._ended(trial)

    def _ended(self, trial) -> str:
        """How a trial that ended did: its worker's stop reason, else completed or stopped early by ASHA."""
        done = self.last.get(trial.trial_id, trial.last_result or {})
        if done.get("stop_reason"):
            return f"stopped: {done['stop_reason']}"
        return "completed" if done.get("cls_epoch", 0) >= self.max_epochs else "stopped early (ASHA)"

    def on_step_end(self, iteration, trials, **info):
        if time.monotonic() - self.shown_at < self.every_s or not trials:
            return
        self.shown_at = time.monotonic()
        for line in self.table(trials):
            self._say(line)

    def table(self, trials) -> list[str]:
        """The status table: one row per trial and a line of the resources the cluster has reserved."""
        metric = self.metric[:14]
        lines = [f"{'trial':<12} {'algorithm':<9} {'stage':<14} {'epoch':>5} {metric:>14} {'its best':>14}  status"]
        for t in trials:
            r = self.last.get(t.trial_id, t.last_result or {})
            best = self.best.get(t.trial_id, (None, "-"))[1]
            lines.append(f"{t.trial_id:<12} {self._algorithm(t):<9} {str(r.get('stage', '-'))[:14]:<14} "
                         f"{str(r.get('epoch', '-')):>5} {_value(r, self.metric):>14} {best:>14}  {self._status(t)}")
        return lines + [f"best {self._leader()}; {reserved()}"]


def reserved() -> str:
    """'CPUs in use 2/2' (and GPUs when the cluster has any): what the cluster has reserved, placement groups
    included (Ray Train's workers hold theirs there), from ray.cluster_resources() - ray.available_resources()."""
    have, free = ray.cluster_resources(), ray.available_resources()
    parts = [f"{kind}s in use {have[kind] - free.get(kind, 0):g}/{have[kind]:g}" for kind in ("CPU", "GPU") if have.get(kind)]
    return ", ".join(parts) or "no resources"
