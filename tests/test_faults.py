"""Faults on a real local Ray cluster: a Train worker killed mid-run, a one-worker trial's process killed
mid-search, a trial whose loss turns non-finite, the search process killed and resumed, then stopped with
Ctrl-C in its confirmation."""

import json
import os
import signal
import threading
import time

import pandas as pd
from ray.util.state import list_actors

from raykd import distill, search
from raykd.training.epochs import history

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


def test_a_one_worker_trial_killed_mid_search_resumes_from_its_last_checkpoint(ray_cluster, tiny_teacher_dir, glue_dir,
                                                                               tmp_path):
    """A one-worker trial is its own worker (raykd.training.session.TrialSession): its process is SIGKILLed once
    it has reported its first epoch; Tune restarts the trial (--max-failures 1), which continues from that
    epoch's checkpoint: every epoch reported, epoch 1 trained once, the trial TERMINATED with one failure."""
    from ray.tune import ExperimentAnalysis

    (tmp_path / "space.py").write_text('from ray import tune\nfixed = {"algorithm": "kd"}\n'
                                       'space = {"temperature": tune.uniform(1.0, 4.0)}\n')
    exp = tmp_path / "results" / "rte" / "kill"
    killed = []

    def kill_the_trial_after_its_first_epoch():
        deadline, pid = time.time() + 600, None
        while time.time() < deadline and not killed:
            if pid is None:  # found before its first epoch, so that the kill follows the epoch at once
                alive = list_actors(filters=[("class_name", "=", "ImplicitFunc"), ("state", "=", "ALIVE")])
                pid = alive[0]["pid"] if alive else None
            logs = list((exp / "ray" / "trials").glob("*.epochs.jsonl"))
            if pid and logs and logs[0].read_text().count("\n") >= 1:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_trial_after_its_first_epoch, daemon=True)
    killer.start()
    summary = search.main([*COMMON, "--space", str(tmp_path / "space.py"), "--data-dir", str(glue_dir),
                           "--teacher", str(tiny_teacher_dir), "--num-samples", "1", "--max-epochs", "4",
                           "--grace-period", "4", "--workers-per-trial", "1", "--cpus-per-worker", "2",
                           "--max-failures", "1", "--confirm-top", "0", "--export-formats", "hf",
                           "--out", str(tmp_path / "results"), "--name", "kill", "--cache-dir", str(tmp_path / "cache")])
    killer.join()
    assert killed, "no trial process was found to kill"
    (trial,) = ExperimentAnalysis(str(exp / "ray" / "tune")).trials
    assert trial.status == "TERMINATED" and trial.run_metadata.num_failures == 1
    (log,) = (exp / "ray" / "trials").glob("*.epochs.jsonl")
    reported = [json.loads(line)["epoch"] for line in log.read_text().splitlines()]
    assert reported.count(1) == 1 and reported[-1] == 4 and sorted(set(reported)) == [1, 2, 3, 4]
    assert summary["best_trial"] == trial.trial_id and (exp / "best" / "model.safetensors").is_file()


SPACE = '''
from ray import tune
fixed = {"algorithm": "kd"}
space = {"temperature": tune.uniform(1.0, 4.0)}
# float32 overflows at logits / 1e-45: the first trial's loss is NaN from its first step
points_to_evaluate = [{"temperature": 1e-45}, {"temperature": 2.0}]
'''


def run_search(root, glue_dir, teacher, name, *extra):
    """A search of 2 trials of SPACE, each of up to 2 epochs, 1 worker each; `extra` flags are appended."""
    (root / "space.py").write_text(SPACE)
    return search.main([*COMMON, "--space", str(root / "space.py"), "--data-dir", str(glue_dir), "--teacher", str(teacher),
                        "--num-samples", "2", "--max-epochs", "2", "--workers-per-trial", "1", "--confirm-top", "0", "--export-formats", "hf",
                        "--out", str(root / "results"), "--name", name, "--cache-dir", str(root / "cache"), *extra])


def test_a_search_selecting_on_dev_stops_a_non_finite_trial_and_goes_on(ray_cluster, tiny_teacher_dir, glue_dir, tmp_path):
    """Two trials at once (1 worker each): the one at temperature 1e-45 is NaN from its first step and
    stops after one epoch; the other completes and is the best. (Started together, the two trials have no
    fixed order in trials.csv, so each is found by its temperature.) The same search selects on GLUE dev
    (`--select-on dev`, the old behaviour): it trains on every training row and its summary says so."""
    summary = run_search(tmp_path, glue_dir, tiny_teacher_dir, "nan", "--select-on", "dev")
    exp = tmp_path / "results" / "rte" / "nan"
    table = pd.read_csv(exp / "trials.csv", dtype={"trial": str}).sort_values("temperature")
    assert table["stop_reason"].tolist() == ["non-finite loss", "completed"]
    assert table["epochs_run"].tolist() == [1, 2]
    assert summary["best_trial"] == table["trial"].iloc[1]

    info = json.loads((exp / "experiment.json").read_text())
    assert info["metric"] == "dev_accuracy" and info["selection"]["select_on"] == "dev"
    assert info["selection"]["train_rows"] == 100 and info["selection"]["validation_rows"] == 0
    text = (exp / "summary.md").read_text()
    assert "**GLUE dev was used for selection** (`--select-on dev`)" in text and "optimistically biased" in text
    assert not (exp / "confirm.json").exists() and summary["confirmation"] is None
    assert "val_accuracy@1" not in table.columns


DETERMINISM_SPACE = '''
def space(trial):
    trial.suggest_categorical("algorithm", ["kd", "sid"])
    trial.suggest_float("temperature", 1.0, 4.0)
    trial.suggest_float("learning_rate", 1e-4, 1e-3, log=True)
'''


def test_search_killed_then_stopped_in_its_confirmation_resumes_each_time(ray_cluster, tiny_teacher_dir, glue_dir, tmp_path):
    """Two faults in one search, each followed by --resume, in real `python -m raykd.search` processes:
    1. SIGKILL to the whole process group (its own local cluster with it, as on a laptop) once the first
       trial has finished and the second has reported: the resumed search does not run the finished trial again;
    1b. SIGINT (Ctrl-C) in the resumed search: the best so far is exported as an interim folder, quickly;
    2. SIGINT (Ctrl-C) once the confirmation's first run has reported: Tune stops the runs in flight and
       its result grid calls them terminated, but confirm.json must say unfinished (this once exported a
       2-seed mean as a finished 2-seed confirmation); the next --resume runs what is missing.
    The resumes join the session's running cluster (--address), as on a shared cluster: the state to
    resume from is on disk either way, and a cluster start is the slowest part of a small run. The last
    resume runs in this process (search.main), the others as `python -m raykd.search` processes.
    One trial at a time: its one worker holds both CPUs. One confirmation seed: the run in flight is the
    whole confirmation, so the Ctrl-C leaves nothing finished to count, and the resume runs one Train run."""
    import subprocess
    import sys

    (tmp_path / "space.py").write_text(DETERMINISM_SPACE)
    exp = tmp_path / "results" / "rte" / "faults"
    args = [sys.executable, "-m", "raykd.search", *COMMON, "--space", str(tmp_path / "space.py"), "--data-dir", str(glue_dir),
            "--teacher", str(tiny_teacher_dir), "--num-samples", "2", "--max-epochs", "2", "--workers-per-trial", "1",
            "--cpus-per-worker", "2", "--confirm-top", "1", "--confirm-seeds", "1", "--export-formats", "hf",
            "--out", str(tmp_path / "results"), "--name", "faults", "--cache-dir", str(tmp_path / "cache")]
    trials = exp / "ray" / "trials"

    def run_until(log_name, argv, reported, fault):
        """Start `argv`, wait until `reported()` (generous: a loaded machine is several times slower than the
        2 minutes an idle one takes, and a fault sent earlier would test nothing), then send `fault`."""
        with open(tmp_path / log_name, "w") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True)
            deadline = time.time() + 900
            while time.time() < deadline and not reported() and proc.poll() is None:
                time.sleep(0.2)
            assert proc.poll() is None, (tmp_path / log_name).read_text()[-3000:]
            fault(proc)
            code = proc.wait(timeout=600)
        return (tmp_path / log_name).read_text(), code

    # 1. SIGKILL during the search, as soon as the second trial has reported its first epoch (of its 4:
    #    sid's two internal stages, then 2 classification epochs; a tiny epoch takes a fraction of a second)
    out, _ = run_until("killed.log", args, lambda: len(list(trials.glob("*.epochs.jsonl"))) >= 2,
                    lambda proc: os.killpg(proc.pid, signal.SIGKILL))
    logs = sorted(trials.glob("*.epochs.jsonl"), key=lambda p: p.stat().st_mtime)
    assert len(logs) == 2 and not (exp / "trials.csv").exists(), out[-2000:]
    # The first trial, finished before the kill: its epochs. Not trained again after the resume: its epochs stay
    # the same records (a trial whose end Tune had not yet saved when it was killed reports its last epoch once
    # more from its last checkpoint, without a step: the same record again).
    finished = {p.name: history(p) for p in logs[:-1]}

    resume = [*args, "--resume", "--address", ray_cluster.get_runtime_context().gcs_address]

    # 1b. Ctrl-C in the resumed search as soon as Tune has started (its SIGINT handler is set before raykd's
    #     console says "tune: started"; the second trial's Train run takes seconds to start, and a tiny trial
    #     outruns any later signal): best/ holds the finished trial as an interim Hugging Face folder; the
    #     latency table (and ONNX, with other formats) waits for the student that ships (this once ran the
    #     full serving export for minutes after the Ctrl-C)
    out, code = run_until("search-interrupted.log", resume,
                    lambda: "tune: started" in (tmp_path / "search-interrupted.log").read_text(),
                    lambda proc: os.kill(proc.pid, signal.SIGINT))
    # ... and the command says so and exits 130 (a wrapping script once took its exit 0 for a finished search)
    assert code == 130 and ("error: interrupted (Ctrl-C or SIGTERM) during trials, the search is unfinished, and the "
                            "confirmation starts once it is; what finished is kept; continue with: python -m raykd.search ") in out, out[-3000:]
    assert [line for line in out.splitlines() if line.startswith("error: ")][-1].endswith("--resume --name faults"), out[-3000:]
    assert json.loads((exp / "best" / "deploy.json").read_text())["latency"] is None
    assert not (exp / "confirm.json").exists()

    # 2. Ctrl-C in the resumed search's confirmation, once its first run has reported
    out, code = run_until("interrupted.log", resume, lambda: list((exp / "ray" / "confirm-trials").glob("*.epochs.jsonl")),
                    lambda proc: os.kill(proc.pid, signal.SIGINT))
    table = pd.read_csv(exp / "trials.csv")
    assert len(table) == 2 and set(table["status"]) == {"TERMINATED"}, out[-3000:]
    assert {p: history(trials / p) for p in finished} == finished  # the finished trial was not run again
    record = json.loads((exp / "confirm.json").read_text())
    assert not record["finished"] and record["planned_runs"] == 1 and record["chosen"] is None, out[-3000:]
    assert code == 130 and "error: interrupted (Ctrl-C or SIGTERM) during confirmation, the confirmation is unfinished; " in out
    assert [line for line in out.splitlines() if line.startswith("error: ")][-1].endswith("--resume --name faults"), out[-3000:]
    assert "The confirmation is unfinished" in (exp / "summary.md").read_text()

    # 3. --resume runs the missing confirmation run and exports the confirmed student (in this process:
    #    the same command's code, without a third process's imports)
    search.main(resume[3:])
    record = json.loads((exp / "confirm.json").read_text())
    assert record["finished"] and [r["status"] for r in record["runs"]] == ["ok"] and record["chosen"]
    assert {p: history(trials / p) for p in finished} == finished
    assert (exp / "best" / "model.safetensors").is_file()
