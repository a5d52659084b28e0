"""Ctrl-C during a search or a confirmation: the trial it stops has not finished, though Tune's ResultGrid
marks it TERMINATED (raykd.tuning.tuner.ended reads the state Tune saved instead). Real Tune on the
session's local Ray cluster, a plain function trainable: what is tested is how raykd reads an interrupted
experiment, not training."""

import os
import signal
import time
from pathlib import Path

from ray import tune

from raykd.tuning import tuner


def test_an_interrupted_trial_has_not_ended_and_a_resumed_experiment_has(ray_cluster, tmp_path):
    # Defined here so that Ray pickles it by value: the test module cannot be imported on Ray's workers.
    def _trainable(config):
        """Reports 3 steps; the run with `interrupt` sends the driver a SIGINT (Ctrl-C) at step 2, once: the
        marker file makes the resumed run go through."""
        for step in range(1, 4):
            marker = Path(config["marker"])
            if step == 2 and config["interrupt"] and not marker.exists():
                marker.touch()
                os.kill(config["driver_pid"], signal.SIGINT)
                time.sleep(60)  # Tune stops this trial on the interrupt, well before
            tune.report({"score": float(step), "cls_epoch": step})

    space = {"interrupt": tune.grid_search([False, True, False]), "driver_pid": os.getpid(),
             "marker": str(tmp_path / "interrupted")}
    grid = tune.Tuner(_trainable, param_space=space, tune_config=tune.TuneConfig(max_concurrent_trials=1),
                      run_config=tune.RunConfig(name=tuner.TUNE_NAME, storage_path=str(tmp_path / "ray"))).fit()
    # Tune's own view after Ctrl-C: every trial it created is "terminated", the third was never created.
    assert len(grid) == 2 and grid.num_terminated == 2
    assert not tuner.ended(tmp_path, 2)  # the second was stopped mid-run
    assert not tuner.ended(tmp_path, 3)
    grid = tuner.restore(_trainable, tmp_path).fit()
    assert len(grid) == 3 and all(r.metrics["score"] == 3.0 for r in grid)
    assert tuner.ended(tmp_path, 3)


def test_ctrl_c_in_a_run_outside_tune_says_so(ray_cluster, tiny_teacher_dir, glue_dir, tmp_path, capsys):
    """A distillation (Ray Train without Tune) stopped by Ctrl-C: Ray Train's own SIGINT handler aborts the
    run and exits from inside fit(), which once ended the command with exit 1 and no word. The SIGINT is
    sent to this process as soon as Ray has installed that handler."""
    import threading

    from conftest import fails
    from raykd import distill

    original = signal.getsignal(signal.SIGINT)

    def interrupt_once_ray_listens():
        deadline = time.time() + 300
        while signal.getsignal(signal.SIGINT) is original and time.time() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_once_ray_listens, daemon=True).start()
    out = tmp_path / "run"
    try:
        fails(capsys, distill.main, ["--task", "rte", "--data-dir", glue_dir, "--teacher", tiny_teacher_dir,
                                     "--algorithm", "kd", "--epochs", "1", "--train-fraction", "0.04",
                                     "--max-seq-length", "64", "--workers", "1", "--out", out,
                                     "--cache-dir", tmp_path / "cache"],
              "interrupted (Ctrl-C): Ray Train aborted the run", "run the command again to start over", code=130)
    finally:
        signal.signal(signal.SIGINT, original)  # Ray's handler stays installed after the run
