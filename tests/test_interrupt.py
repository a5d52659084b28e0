"""Ctrl-C during a search or a confirmation: the trial it stops has not finished, though Tune's ResultGrid
marks it TERMINATED (raykd.tuning.tuner.ended reads the state Tune saved instead). Real Tune on the
session's local Ray cluster, a plain function trainable: what is tested is how raykd reads an interrupted
experiment, not training."""

import json
import os
import shlex
import signal
import time
from pathlib import Path

from ray import tune

from raykd.tuning import tuner


def test_ctrl_c_in_a_run_outside_tune_says_so(ray_cluster, tiny_teacher_dir, glue_dir, tmp_path, capsys):
    """A distillation on 2 Ray Train workers (without Tune) stopped by Ctrl-C: Ray Train's own SIGINT handler
    aborts the run and exits from inside fit(), which once ended the command with exit 1 and no word. The SIGINT
    is sent to this process as soon as Ray has installed that handler."""
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
                                     "--max-seq-length", "64", "--workers", "2", "--out", out,
                                     "--cache-dir", tmp_path / "cache"],
              "interrupted (Ctrl-C or SIGTERM) during training, Ray Train aborted the run",
              f"run the same command again (it replaces {out})", code=130)
        assert (out / ".unfinished").is_file()  # so the rerun may replace it
    finally:
        signal.signal(signal.SIGINT, original)  # Ray's handler stays installed after the run


def test_ctrl_c_in_a_one_worker_distillation_in_the_command_process_says_so(ray_cluster, tiny_teacher_dir, glue_dir,
                                                                              tmp_path, capsys):
    """distill's default, one worker on the local cluster, trains in the command's own process (no Ray Train
    handler): a Ctrl-C after its first epoch stops it mid-run with the same one line, exit 130, the run folder
    left unfinished (the rerun replaces it) and the finished epoch in its log."""
    import threading

    from conftest import fails
    from raykd import distill, errors

    out = tmp_path / "run"
    log = out / "ray" / "distill.epochs.jsonl"

    def interrupt_after_the_first_epoch():
        deadline = time.time() + 300
        while not (log.is_file() and log.read_text().strip()) and time.time() < deadline:
            time.sleep(0.05)
        if errors._NOW["phase"] == "training":  # not after the run: that would stop pytest
            os.kill(os.getpid(), signal.SIGINT)

    # Python's own handler, as a fresh `python -m raykd.distill` has: Tune runs earlier in this test process leave
    # theirs installed, which would take the signal for a run that no longer exists.
    original = signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=interrupt_after_the_first_epoch, daemon=True).start()
    try:
        fails(capsys, distill.main, ["--task", "rte", "--data-dir", glue_dir, "--teacher", tiny_teacher_dir,
                                     "--algorithm", "kd", "--epochs", "20", "--train-fraction", "0.04",
                                     "--max-seq-length", "64", "--out", out, "--cache-dir", tmp_path / "cache"],
              "interrupted (Ctrl-C or SIGTERM) during training",
              f"run the same command again (it replaces {out})", code=130)
    finally:
        signal.signal(signal.SIGINT, original)
    assert (out / ".unfinished").is_file()
    epochs = [json.loads(line)["epoch"] for line in log.read_text().splitlines()]
    assert 1 <= len(epochs) < 20 and epochs == list(range(1, len(epochs) + 1))


# After the two distillations that assert a clean stderr: when Tune stops this test's trials, Ray's SIGTERM handler
# in their processes may print a stack trace that reaches this process's stderr a moment later (CI on 6814566).
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


def test_a_signal_in_every_phase_of_a_search_is_one_line_and_its_command_continues(ray_cluster, tiny_teacher_dir,
                                                                                    glue_dir, tmp_path):
    """Field case 27 and its siblings: Ctrl-C (SIGINT) or SIGTERM in each phase of a search that fine-tunes its own
    teacher, in real `python -m raykd.search` processes, each stopped where it runs by raykd.errors' test hook
    (RAYKD_SIGNAL_AT sends the real signal as the phase begins, or seconds into it). Each run must end in exactly one
    `error: interrupted ... during <phase>; ...` line, exit 130, no traceback; the command that line names is the
    next run, so every folder left behind is usable again (replaced before the first trial, resumed after), and the
    last run ends the search with the confirmed student exported. The runs join the session's cluster (--address)."""
    import re
    import subprocess
    import sys

    from raykd.errors import SIGNAL_AT

    (tmp_path / "space.py").write_text('from ray import tune\nfixed = {"algorithm": "kd"}\nspace = {"temperature": tune.uniform(1, 4)}\n')
    exp = tmp_path / "results" / "rte" / "s1"
    first = ["python", "-m", "raykd.search", "--task", "rte", "--train-fraction", "0.04", "--max-seq-length", "64",
             "--space", str(tmp_path / "space.py"), "--data-dir", str(glue_dir), "--teacher-base", str(tiny_teacher_dir),
             "--teacher-epochs", "1", "--num-samples", "1", "--max-epochs", "1", "--workers-per-trial", "1",
             "--confirm-top", "1", "--confirm-seeds", "1", "--export-formats", "hf", "--latency-examples", "0",
             "--out", str(tmp_path / "results"), "--name", "s1", "--cache-dir", str(tmp_path / "cache"),
             "--address", ray_cluster.get_runtime_context().gcs_address]
    command = first
    # (phase the signal is sent in, and when: "" as it begins, or seconds into it; TERM for SIGTERM)
    for signal_at, what_follows in [
            ("set-up", "nothing was kept; run the same command again"),
            ("teacher fine-tuning:3", "run the same command again"),  # inside Ray Train's run: its handler aborts it
            ("teacher outputs:0:TERM", "run the same command again"),
            ("trials", "what finished is kept; continue with: python -m raykd.search "),
            ("confirmation", "continue with: python -m raykd.search "),
            ("export:0:TERM", "continue with: python -m raykd.search ")]:
        done = subprocess.run([sys.executable, *command[1:]], capture_output=True, text=True, cwd=tmp_path, timeout=600,
                              env={**os.environ, SIGNAL_AT: signal_at})
        phase = signal_at.split(":")[0]
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 130 and "Traceback" not in done.stderr, (signal_at, done.stdout[-2000:], done.stderr[-3000:])
        assert [line for line in lines if line.startswith("error:")] == lines[-1:], lines[-5:]
        assert lines[-1].startswith(f"error: interrupted (Ctrl-C or SIGTERM) during {phase}") and what_follows in lines[-1], lines[-1]
        if "continue with: " in lines[-1]:  # the exact command to type next
            command = shlex.split(lines[-1].split("continue with: ", 1)[1])
            assert command[-3:] == ["--resume", "--name", "s1"]
        if phase in ("teacher outputs",):  # a half-written entry is never listed, so never trusted
            assert not list((tmp_path / "cache" / "teacher-outputs").glob("*/*.npy"))
    assert re.search(r"--resume --name s1$", " ".join(command))
    done = subprocess.run([sys.executable, *command[1:]], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((exp / "confirm.json").read_text())
    assert record["finished"] and record["chosen"] and (exp / "best" / "model.safetensors").is_file()
    assert not (exp / ".unfinished").exists()


def test_sigterm_stops_a_command_started_in_the_background_that_ignores_ctrl_c(tiny_teacher_dir, glue_dir, tmp_path):
    """A shell starts a background job (`cmd &`, a script's nohup) with SIGINT ignored, so that a Ctrl-C in the
    terminal spares it. raykd routes SIGTERM through SIGINT's handler (Tune's and Ray Train's stop their runs), and
    with SIGINT ignored a `kill` reached nothing: a search fine-tuning its teacher in its own process ran on. Here a
    real `python -m raykd.search` on its own local cluster, SIGINT ignored from its start, gets a SIGTERM as its
    teacher fine-tuning begins: one line, exit 130, no traceback."""
    import subprocess
    import sys

    from raykd.errors import SIGNAL_AT

    (tmp_path / "space.py").write_text('from ray import tune\nfixed = {"algorithm": "kd"}\nspace = {"temperature": tune.uniform(1, 4)}\n')
    argv = [sys.executable, "-m", "raykd.search", "--task", "rte", "--train-fraction", "0.04", "--max-seq-length", "64",
            "--space", str(tmp_path / "space.py"), "--data-dir", str(glue_dir), "--teacher-base", str(tiny_teacher_dir),
            "--teacher-epochs", "1", "--num-samples", "1", "--max-epochs", "1", "--confirm-top", "0",
            "--export-formats", "hf", "--out", str(tmp_path / "results"), "--name", "bg", "--cache-dir", str(tmp_path / "cache")]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=600,
                          env={**os.environ, SIGNAL_AT: "teacher fine-tuning:0:TERM"},
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 130 and "Traceback" not in done.stderr, (done.returncode, done.stdout[-2000:], done.stderr[-3000:])
    assert lines[-1].startswith("error: interrupted (Ctrl-C or SIGTERM) during teacher fine-tuning"), lines[-5:]
