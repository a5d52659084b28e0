"""A real multi-node Ray cluster on this machine: a head and two worker nodes, each a `ray start`
process with 1 CPU and token authentication on, as the README's "Run on a cluster" section starts
them. A search with --address spreads each trial's 2 workers over two nodes; a worker node's raylet is
killed during a trial and the search still completes (the trial restarts from its checkpoint on the
nodes left); with too few nodes left, the next search fails in seconds instead of waiting forever."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

RAY = str(Path(sys.executable).with_name("ray"))
SPACE = '''
from ray import tune
space = {"temperature": tune.uniform(1.0, 4.0)}
fixed = {"algorithm": "kd", "learning_rate": 1e-3}
'''


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def nodes(tmp_path):
    """{"head": Popen, "a": Popen, "b": Popen, "env": env, "address": gcs address}; torn down after."""
    port, dashboard = free_port(), free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{dashboard}",
           "RAY_TRAIN_ENABLE_STATE_TRACKING": "1"}
    env.pop("RAYKD_NUM_CPUS", None)
    temp = f"/tmp/rk{os.getpid()}"  # short: Ray's socket paths must stay under 107 characters
    logs = tmp_path / "nodes"
    logs.mkdir()

    def start(name, *args):
        return subprocess.Popen([RAY, "start", "--block", "--num-cpus", "1", "--temp-dir", temp, *args], env=env,
                                stdout=open(logs / f"{name}.log", "w"), stderr=subprocess.STDOUT,
                                start_new_session=True)

    procs = {"head": start("head", "--head", "--port", str(port), "--dashboard-host", "127.0.0.1",
                           "--dashboard-port", str(dashboard), "--include-dashboard", "true")}
    address = f"127.0.0.1:{port}"

    def wait_for(count, timeout=300, op="<"):
        """Until the cluster has `count` live nodes (op "<": at least count; ">": at most count)."""
        wait = ("import ray, time; ray.init(address=%r, log_to_driver=False)\n"
                "while sum(n['Alive'] for n in ray.nodes()) %s %d: time.sleep(0.5)") % (address, op, count)
        subprocess.run([sys.executable, "-c", wait], env=env, check=True, timeout=timeout, capture_output=True)

    def join(name, count):
        """Start a worker node and wait for it; on a loaded machine its registration can time out and
        its `ray start` exit: then start it again."""
        for attempt in range(3):
            procs[name] = start(f"{name}{attempt}", "--address", address)
            deadline = time.time() + 300
            while time.time() < deadline:
                try:
                    return wait_for(count, timeout=30)
                except subprocess.TimeoutExpired:
                    if procs[name].poll() is not None:  # its `ray start` gave up
                        break
            try:
                os.killpg(procs[name].pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        raise RuntimeError(f"worker node {name} did not join; see {logs}")

    wait_for(1)
    join("a", 2)  # one at a time: two joining at once can time out
    join("b", 3)
    yield {**procs, "env": env, "address": address, "temp": temp, "wait_for": wait_for}
    for proc in procs.values():
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # Only this cluster's processes (their command lines name its temp dir): `ray stop` would also stop
    # the test session's own cluster, and the pytest process dies with its GCS.
    for process in psutil.process_iter(["cmdline"]):
        if temp in " ".join(process.info["cmdline"] or []):
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
    subprocess.run(["rm", "-rf", temp])


def raylet_of(pid: int) -> psutil.Process:
    process = psutil.Process(pid)
    while "raylet" not in process.name():
        process = process.parent()
    return process


def kill_node_of_a_train_worker(nodes, epoch_logs: Path, killed: list, deadline_s: float = 600):
    """Once the first trial has reported an epoch, SIGKILL the raylet (and its processes) of a worker
    node that runs one of the trial's Train workers."""
    head_raylets = {p.pid for p in psutil.Process(nodes["head"].pid).children(recursive=True) if "raylet" in p.name()}
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        if any(f.read_text().count("\n") >= 1 for f in epoch_logs.glob("*.epochs.jsonl")):
            workers = [p for p in psutil.process_iter(["cmdline"]) if "RayTrainWorker" in " ".join(p.info["cmdline"] or [])]
            for worker in workers:
                try:
                    raylet = raylet_of(worker.pid)
                    if raylet.pid not in head_raylets and nodes["temp"] in " ".join(raylet.cmdline()):
                        for child in raylet.children(recursive=True):
                            try:
                                child.kill()
                            except psutil.NoSuchProcess:  # a short-lived child of the raylet may exit first
                                pass
                        raylet.kill()
                        killed.append(raylet.pid)
                        return
                except psutil.NoSuchProcess:  # the worker or its raylet ended between listing and here
                    continue
        time.sleep(0.2)


def test_search_spans_two_nodes_and_survives_a_lost_node(nodes, tiny_teacher_dir, glue_dir, tmp_path):
    import threading

    (tmp_path / "space.py").write_text(SPACE)
    argv = [sys.executable, "-m", "raykd.search", "--task", "rte", "--space", str(tmp_path / "space.py"),
            "--data-dir", str(glue_dir), "--teacher", str(tiny_teacher_dir), "--address", nodes["address"],
            "--num-samples", "1", "--max-epochs", "3", "--grace-period", "3",
            "--workers-per-trial", "2", "--train-fraction", "0.04", "--max-seq-length", "64", "--confirm-top", "0", "--export-formats", "hf",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "results")]
    exp = tmp_path / "results" / "rte" / "two-nodes"
    killed = []
    killer = threading.Thread(target=kill_node_of_a_train_worker, args=(nodes, exp / "ray" / "trials", killed), daemon=True)
    killer.start()
    run = subprocess.run([*argv, "--name", "two-nodes"], env=nodes["env"], capture_output=True, text=True, timeout=900)
    killer.join(timeout=1)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert killed, "no Train worker on a worker node was found to kill"
    table = pd.read_csv(exp / "trials.csv")
    assert len(table) == 1 and set(table["stop_reason"]) == {"completed"}, table.to_string()
    logs = sorted((exp / "ray" / "trials").glob("*.epochs.jsonl"))
    records = [[json.loads(line) for line in f.read_text().splitlines()] for f in logs]
    assert all(r[0]["worker_nodes"] == 2 for r in records)  # each trial's 2 workers on 2 nodes
    restarted = [r for r in records if [e["epoch"] for e in r] != sorted({e["epoch"] for e in r})
                 or sum("worker_nodes" in e for e in r) > 1]
    assert restarted, "the killed trial did not restart"
    assert all(r[-1]["epoch"] == 3 for r in records)

    # One worker node is gone for good and one more is killed: 1 CPU left for 2 workers.
    os.killpg(nodes["a"].pid, signal.SIGKILL) if not killed or nodes["a"].poll() is None else None
    head = {p.pid for p in psutil.Process(nodes["head"].pid).children(recursive=True)}
    for raylet in psutil.process_iter(["name", "cmdline"]):  # this cluster's only: not the test session's
        if (raylet.info["name"] == "raylet" and raylet.pid not in head
                and nodes["temp"] in " ".join(raylet.info["cmdline"] or [])):
            raylet.kill()
    nodes["wait_for"](1, timeout=120, op=">")  # the GCS marks the nodes dead after their missed health checks
    started = time.time()
    again = subprocess.run([*argv, "--name", "one-node"], env=nodes["env"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 2, again.stderr[-3000:]
    assert "each trial asks for 2 workers x (1 CPU) = 2 CPUs in all, but the cluster's 1 node(s) have 1 CPUs" in again.stderr
    assert time.time() - started < 120 and not (tmp_path / "results" / "rte" / "one-node").exists()
