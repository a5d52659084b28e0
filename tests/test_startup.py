"""The start-up's phases (raykd.training.startup): durations between the marks a run passes, in order."""

import pytest

from raykd.training.startup import PHASES, phases


def test_phases_are_the_gaps_between_consecutive_marks_and_add_up():
    marks = {mark: 100.0 + i for i, (mark, _) in enumerate(PHASES)}
    got = phases(marks)
    assert got["startup_trial_imports_s"] == 1.0 and got["startup_loader_s"] == 1.0
    assert got["startup_total_s"] == len(PHASES) - 1 and got["startup_at"] == 100.0
    assert sum(v for k, v in got.items() if k not in ("startup_total_s", "startup_at")) == pytest.approx(len(PHASES) - 1)


def test_a_missing_mark_folds_its_phase_into_the_next_and_a_reused_process_never_counts_backwards():
    # a run outside Tune has no trial marks; a worker process Ray started before the job counts from the job
    got = phases({"job": 10.0, "worker_process": 4.0, "worker_loop": 12.0, "first_step": 15.0})
    assert got == {"startup_train_start_s": 0.0, "startup_worker_imports_s": 2.0, "startup_loader_s": 3.0,
                   "startup_total_s": 5.0, "startup_at": 10.0}
