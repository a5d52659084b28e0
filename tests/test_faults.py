"""Faults on a real local Ray cluster: a Train worker killed mid-run, a trial whose loss turns
non-finite, the search process killed and resumed."""

import json
import os
import signal
import threading
import time

import pandas as pd
from ray.util.state import list_actors

from raykd import distill, search

COMMON = ["--task", "rte", "--train-fraction", "0.04", "--max-seq-length", "64"]


def kill_a_train_worker_after_first_epoch(epoch_log, killed: list):
    """Waits for the first reported epoch, then SIGKILLs one live Ray Train worker process."""
    deadline = time.time() + 600  # ends once a worker is killed; a loaded machine is slow to get there
    while time.time() < deadline and not killed:
        if epoch_log.is_file() and epoch_log.read_text().count("\n") >= 1:
            workers = list_actors(filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
            if workers:
                os.kill(workers[-1]["pid"], signal.SIGKILL)
                killed.append(workers[-1]["pid"])
                return
        time.sleep(0.2)


def test_killed_worker_resumes_from_last_checkpoint(ray_cluster, tiny_teacher_dir, glue_dir, tmp_path):
    out = tmp_path / "run"
    killed = []
    killer = threading.Thread(target=kill_a_train_worker_after_first_epoch,
                              args=(out / "ray" / "distill.epochs.jsonl", killed), daemon=True)
    killer.start()
    record = distill.main([*COMMON, "--data-dir", str(glue_dir), "--teacher", str(tiny_teacher_dir),
                           "--algorithm", "kd", "--epochs", "3", "--workers", "2", "--max-failures", "1",
                           "--out", str(out), "--cache-dir", str(tmp_path / "cache")])
    killer.join()
    assert killed, "no Train worker was found to kill"
    reported = [json.loads(line)["epoch"] for line in (out / "ray" / "distill.epochs.jsonl").read_text().splitlines()]
    # The run finished every epoch; epoch 1 was not trained again: the restart began at its checkpoint.
    assert [h["epoch"] for h in record["history"]] == [1, 2, 3]
    assert reported.count(1) == 1 and reported[-1] == 3


SPACE = '''
from ray import tune
fixed = {"algorithm": "kd"}
space = {"temperature": tune.uniform(1.0, 4.0)}
# float32 overflows at logits / 1e-45: the first trial's loss is NaN from its first step
points_to_evaluate = [{"temperature": 1e-45}, {"temperature": 2.0}]
'''


def run_search(root, glue_dir, teacher, name, space=SPACE, samples="2"):
    (root / "space.py").write_text(space)
    return search.main([*COMMON, "--space", str(root / "space.py"), "--data-dir", str(glue_dir), "--teacher", str(teacher),
                        "--num-samples", samples, "--max-epochs", "2", "--workers-per-trial", "1", "--confirm-top", "0", "--export-formats", "hf",
                        "--out", str(root / "results"), "--name", name, "--cache-dir", str(root / "cache")])


def test_non_finite_trial_is_stopped_and_the_search_goes_on(ray_cluster, tiny_teacher_dir, glue_dir, tmp_path):
    """Two trials at once (1 worker each): the one at temperature 1e-45 is NaN from its first step and
    stops after one epoch; the other completes and is the best. (Started together, the two trials have no
    fixed order in trials.csv, so each is found by its temperature.)"""
    summary = run_search(tmp_path, glue_dir, tiny_teacher_dir, "nan")
    table = pd.read_csv(tmp_path / "results" / "rte" / "nan" / "trials.csv").sort_values("temperature")
    assert table["stop_reason"].tolist() == ["non-finite loss", "completed"]
    assert table["epochs_run"].tolist() == [1, 2]
    assert summary["best_trial"] == table["trial"].iloc[1]


DETERMINISM_SPACE = '''
def space(trial):
    trial.suggest_categorical("algorithm", ["kd", "sid"])
    trial.suggest_float("temperature", 1.0, 4.0)
    trial.suggest_float("learning_rate", 1e-4, 1e-3, log=True)
'''


def test_search_killed_then_resumed_without_rerunning_finished_trials(tiny_teacher_dir, glue_dir, tmp_path):
    """SIGKILL the whole search process group (its local cluster with it) once its first trial has
    finished, then --resume. One trial at a time: its one worker holds both CPUs."""
    import subprocess
    import sys

    (tmp_path / "space.py").write_text(DETERMINISM_SPACE)
    args = [sys.executable, "-m", "raykd.search", *COMMON, "--space", str(tmp_path / "space.py"), "--data-dir", str(glue_dir),
            "--teacher", str(tiny_teacher_dir), "--num-samples", "2", "--max-epochs", "2", "--workers-per-trial", "1",
            "--cpus-per-worker", "2", "--confirm-top", "0", "--export-formats", "hf", "--out", str(tmp_path / "results"), "--name", "killed", "--cache-dir", str(tmp_path / "cache")]
    trials = tmp_path / "results" / "rte" / "killed" / "ray" / "trials"
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True)
        # Generous: the wait ends as soon as the second trial has reported (about 2 minutes on idle cores); a
        # loaded machine can take several times that, and killing earlier would test nothing.
        deadline = time.time() + 900
        while time.time() < deadline and len(list(trials.glob("*.epochs.jsonl"))) < 2 and proc.poll() is None:
            time.sleep(0.5)
        time.sleep(3)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    logs = sorted(trials.glob("*.epochs.jsonl"), key=lambda p: p.stat().st_mtime)
    assert len(logs) >= 2, f"the second trial never reported before the kill: {(tmp_path / 'first.log').read_text()[-2000:]}"
    assert not (tmp_path / "results" / "rte" / "killed" / "trials.csv").exists()
    finished = {p.name: p.read_text() for p in logs[:-1]}  # the first trial, finished before the kill
    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    table = pd.read_csv(tmp_path / "results" / "rte" / "killed" / "trials.csv")
    assert len(table) == 2 and set(table["status"]) == {"TERMINATED"}
    assert {p: (trials / p).read_text() for p in finished} == finished  # finished trials were not run again
    assert (tmp_path / "results" / "rte" / "killed" / "best" / "model.safetensors").is_file()


def test_ctrl_c_during_the_confirmation_leaves_it_unfinished_until_resumed(tiny_teacher_dir, glue_dir, tmp_path):
    """SIGINT (Ctrl-C) to the search once its confirmation's first run has reported: Tune stops the runs in
    flight and its result grid calls them terminated, but confirm.json must say unfinished (this once
    exported a 2-seed mean as a finished 3-seed confirmation); --resume then runs what is missing."""
    import subprocess
    import sys

    (tmp_path / "space.py").write_text("from ray import tune\nspace = {'algorithm': 'kd', 'learning_rate': tune.uniform(1e-4, 1e-3)}\n")
    exp = tmp_path / "results" / "rte" / "interrupted"
    args = [sys.executable, "-m", "raykd.search", *COMMON, "--space", str(tmp_path / "space.py"), "--data-dir", str(glue_dir),
            "--teacher", str(tiny_teacher_dir), "--num-samples", "1", "--max-epochs", "1", "--workers-per-trial", "1",
            "--cpus-per-worker", "2", "--confirm-top", "1", "--confirm-seeds", "2", "--export-formats", "hf",
            "--out", str(tmp_path / "results"), "--name", "interrupted", "--cache-dir", str(tmp_path / "cache")]
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True)
        deadline = time.time() + 900  # ends as soon as the first confirmation run has reported
        while time.time() < deadline and not list((exp / "ray" / "confirm-trials").glob("*.epochs.jsonl")) and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=600)
    out = (tmp_path / "first.log").read_text()
    record = json.loads((exp / "confirm.json").read_text())
    assert not record["finished"] and record["planned_runs"] == 2 and record["chosen"] is None, out[-3000:]
    assert "the confirmation is unfinished: continue with --resume --name interrupted" in out
    assert "The confirmation is unfinished" in (exp / "summary.md").read_text()
    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    record = json.loads((exp / "confirm.json").read_text())
    assert record["finished"] and [r["status"] for r in record["runs"]] == ["ok", "ok"] and record["chosen"]
