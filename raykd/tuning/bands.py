"""ASHA within latency bands, so that early stopping keeps both ends of an accuracy-latency front.

ASHA compares trials on one metric: at its first rung a small, fast student, a few points behind a large one,
is stopped, and the fast end of the front is never explored. `BandedASHA` splits the search's shapes into bands
of similar latency (equal-count bands of the measured shapes: raykd.student.cost) and runs one ASHAScheduler
per band, so a trial is ranked only against trials of comparable cost. Every band's brackets, rungs and
reduction factor are ASHA's own (Li et al., "A System for Massively Parallel Hyperparameter Tuning", MLSys
2020); the bands only choose whom a trial competes with. tests/test_bands.py shows a fast, weaker shape that
plain ASHA stops and the banded one keeps.
"""

from __future__ import annotations

import pickle

import numpy as np
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from raykd.student.shape import PARAMETER


def latency_bands(latencies: dict[str, float], count: int) -> dict[str, int]:
    """{shape name: band} for `count` bands holding (nearly) equal numbers of shapes, ordered by latency (band 0
    the fastest). Fewer shapes than bands: one band each."""
    ordered = sorted(latencies, key=lambda name: (latencies[name], name))
    splits = np.array_split(np.arange(len(ordered)), max(1, min(count, len(ordered))))
    return {ordered[i]: band for band, members in enumerate(splits) for i in members}


class BandedASHA(TrialScheduler):
    """One ASHAScheduler per latency band (`bands`: {shape name: band}, from latency_bands); a trial goes to the band
    of its `student_shape`. `asha` are ASHAScheduler's keyword arguments (time_attr, max_t, grace_period,
    reduction_factor), the same for every band."""

    def __init__(self, bands: dict[str, int], **asha):
        super().__init__()
        self.bands = dict(bands)
        self.schedulers = {band: ASHAScheduler(**asha) for band in sorted(set(self.bands.values()))}
        self._fifo = FIFOScheduler()

    def _of(self, trial) -> ASHAScheduler:
        return self.schedulers[self.bands[trial.config[PARAMETER]]]

    @property
    def metric(self):
        """The metric every band's ASHA compares."""
        return next(iter(self.schedulers.values())).metric

    def set_search_properties(self, metric, mode, **spec) -> bool:
        """Tune's metric and mode, given to every band's ASHA."""
        return all([s.set_search_properties(metric, mode, **spec) for s in self.schedulers.values()])

    def on_trial_add(self, tune_controller, trial):
        """Register `trial` with its band's ASHA."""
        self._of(trial).on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller, trial):
        """Forget `trial` in its band."""
        self._of(trial).on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result) -> str:
        """CONTINUE or STOP, as its band's ASHA decides against the band's trials alone."""
        return self._of(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result):
        """Record `trial`'s last result in its band."""
        self._of(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial):
        """Remove `trial` from its band."""
        self._of(trial).on_trial_remove(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller):
        """The next pending trial, first come first served (as ASHA itself chooses)."""
        return self._fifo.choose_trial_to_run(tune_controller)

    def debug_string(self) -> str:
        """One line per band: its shapes and its ASHA's state."""
        lines = []
        for band, scheduler in self.schedulers.items():
            shapes = sorted(name for name, b in self.bands.items() if b == band)
            lines.append(f"latency band {band} ({', '.join(shapes)}): {scheduler.debug_string()}")
        return "\n".join(lines)

    def save(self, checkpoint_path: str):
        """Pickle the bands and every band's ASHA state to `checkpoint_path` (as ASHAScheduler.save does)."""
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str):
        """Read back what save wrote."""
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))
