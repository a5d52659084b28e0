"""Connecting to Ray: a local cluster with its dashboard, or an existing one with --address; where the
workers' output goes; and whether the cluster can ever hold a run's workers.
"""

from __future__ import annotations

import math
import os
import socket
import threading
from pathlib import Path

import ray
from ray._private.ray_logging import global_worker_stdstream_dispatcher

from raykd import errors
from raykd.errors import RaykdError

# Ray Train settings for the local cluster raykd starts, set in all its processes:
# - Ray Train 2.60 keeps no state for its dashboard view unless RAY_TRAIN_ENABLE_STATE_TRACKING is set;
# - its preemption watcher (an actor per run, about 2 s of CPU to start) watches for nodes the autoscaler
#   drains, and one machine's cluster has no autoscaler;
# - its controller polls the workers every 2 s, and a poll is how it takes an epoch's report and sees the run
#   end: each run waited up to 2 s at its end and at reports. On one machine a poll is a few local calls,
#   so it polls every 0.5 s (results/suite-time.md).
# A cluster given with --address keeps Ray's defaults.
LOCAL_TRAIN_ENV = {"RAY_TRAIN_ENABLE_STATE_TRACKING": "1", "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
                   "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5"}


def _reachable(address: str, timeout_s: float) -> bool:
    host_port = address.split("://")[-1]
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def _free_port(preferred: int = 8265) -> int:
    """Ray's usual dashboard port when it is free, else any free port. Raises RaykdError when none is."""
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RaykdError("no free port for the Ray dashboard; free one or pass --address")


def connect(address: str | None = None, timeout_s: float = 10.0, verbose: bool = True) -> str | None:
    """Start (or join) Ray and return the dashboard URL (None when Ray was already initialised).

    The local dashboard binds to 127.0.0.1 only. Ray's token authentication stays as Ray sets it
    (on by default); see the README for opening the dashboard with the token. With `verbose` False,
    the workers' output (Ray's per-process log lines) is kept for `log_workers_to` instead of being
    printed among the progress lines.

    Raises RaykdError when `address` does not answer within `timeout_s` seconds.
    """
    if ray.is_initialized():
        return None
    if address and address != "auto" and not _reachable(address, timeout_s):
        raise RaykdError(f"no Ray cluster answers at {address} within {timeout_s:.0f} s; start one with `ray start --head` or drop --address to use a local cluster")
    if address:
        context = ray.init(address=address, log_to_driver=True)
    else:
        context = _start_local()
    errors.sigterm_as_ctrl_c()  # ray.init set its own: exit 15 with a native stack
    if not verbose:
        _WORKER_LOG.capture()
    url = getattr(context, "dashboard_url", None)
    if url:
        print(f"Ray dashboard: http://{url}", flush=True)
        if os.environ.get("RAY_AUTH_MODE", "").lower() != "disabled":
            print("Ray token authentication is on: dashboard requests need the token in ~/.ray/auth_token "
                  "(header 'Authorization: Bearer <token>')", flush=True)
    return url


def _start_local(attempts: int = 3):
    """A local cluster with its dashboard on 127.0.0.1; another port is tried when another process took
    the chosen one between the check and Ray's bind (two raykd commands starting at once)."""
    for attempt in range(attempts):
        port = _free_port(8265 if attempt == 0 else 0)
        # Ray Train's placement-group cleaner asks the State API (the dashboard) whether a run is still
        # alive. With no address it autodetects the cluster, which fails when another local cluster
        # runs on the machine, and the reservation of a finished trial then leaks. Name ours.
        api = f"http://127.0.0.1:{port}"
        os.environ["RAY_API_SERVER_ADDRESS"] = api
        os.environ.update(LOCAL_TRAIN_ENV)
        try:
            return ray.init(include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=port,
                            num_cpus=local_cpus(), log_to_driver=True,
                            runtime_env={"env_vars": {"RAY_API_SERVER_ADDRESS": api, **LOCAL_TRAIN_ENV}})
        except Exception as err:  # Ray raises a bare Exception when its dashboard cannot bind
            ray.shutdown()
            if "dashboard" not in str(err) or attempt == attempts - 1:
                raise


def local_cpus() -> int:
    """CPUs of the local cluster raykd starts: $RAYKD_NUM_CPUS, else the machine's cores."""
    return int(os.environ.get("RAYKD_NUM_CPUS", os.cpu_count() or 1))


class _WorkerLog:
    """Ray's stream of the workers' output lines (its log-to-driver dispatcher), written to a file
    instead of the console, each line prefixed like Ray's own: (name pid=N, ip=A). Lines that arrive
    before a file is named are kept in memory and written when it is."""

    def __init__(self):
        self.file, self.pending, self.lock, self.captured = None, [], threading.Lock(), False

    def capture(self):
        """Send Ray's worker output lines to `write` instead of the console (replaces Ray's `ray_print_logs` handler)."""
        self.captured = True
        global_worker_stdstream_dispatcher.remove_handler("ray_print_logs")
        global_worker_stdstream_dispatcher.add_handler("raykd_worker_log", self.write)

    def write(self, data):
        """Ray's handler for one batch of a process's output lines: written to the file, or kept until `to` names one."""
        with self.lock:
            if self.file is None:
                self.pending.append(data)
            else:
                self._print(data)

    def to(self, path: Path):
        """Append the workers' output to `path` from now on (its folder created), the lines kept so far first."""
        with self.lock:
            if self.file is not None:
                self.file.close()
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "a")
            for data in self.pending:
                self._print(data)
            self.pending.clear()

    def _print(self, data):
        name = data.get("actor_name") or data.get("task_name") or ""
        prefix = f"({name} pid={data.get('pid')}, ip={data.get('ip')})".replace("( ", "(")
        for line in data.get("lines", []):
            print(prefix, line, file=self.file)
        self.file.flush()


_WORKER_LOG = _WorkerLog()


def log_workers_to(path: Path, verbose: bool):
    """Say where the workers' output goes: the console with --verbose, else the file `path`."""
    if verbose or not _WORKER_LOG.captured:  # --verbose, or Ray was started by someone else (a test)
        print("Ray workers' output: shown here", flush=True)
        return
    _WORKER_LOG.to(path)
    print(f"Ray workers' output: {path} (--verbose shows it here)", flush=True)


def check_fits(workers: int, cpus_per_worker: float, gpus_per_worker: float, what: str = "each run",
               note_unused_gpus: bool = True):
    """Fail fast on a request the cluster can never hold: `workers` workers of `cpus_per_worker` CPUs
    and `gpus_per_worker` GPUs, each on one node, counted against the total resources of the nodes
    alive now. Work already running does not count: a busy cluster is waited for, an impossible
    request is not (Ray would retry it forever).

    Prints a note when the cluster has GPUs that the request leaves unused (unless `note_unused_gpus` is
    False: a trial checks again inside Tune, after its command has said so once).
    Raises RaykdError naming what is asked and what the cluster has.
    """
    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    need = {r: a for r, a in (("CPU", cpus_per_worker), ("GPU", gpus_per_worker)) if a > 0}
    places = sum(min(math.floor(node.get(r, 0) / a + 1e-9) for r, a in need.items()) for node in nodes) if need else workers
    if places >= workers:
        gpus = sum(n.get("GPU", 0) for n in nodes)
        if gpus and not gpus_per_worker and note_unused_gpus:  # a GPU machine training on its CPUs is never what was meant silently
            print(f"note: the cluster has {gpus:g} GPU(s) but {what} trains on CPUs (--gpus-per-worker 0); pass "
                  "--gpus-per-worker 1 to train on them", flush=True)
        return
    total = {r: sum(n.get(r, 0) for n in nodes) for r in ("CPU", "GPU")}
    largest = max((n.get("CPU", 0) for n in nodes), default=0)
    per_worker = ", ".join(f"{a:g} {r}" for r, a in need.items())
    in_all = ", ".join(f"{workers * a:g} {r}s" for r, a in need.items())
    raise RaykdError(
        f"{what} asks for {workers} workers x ({per_worker}) = {in_all} in all, but the cluster's "
        f"{len(nodes)} node(s) have {total['CPU']:g} CPUs and {total['GPU']:g} GPUs (largest node: {largest:g} CPUs), "
        f"room for {places} such worker(s); lower --workers/--workers-per-trial, --cpus-per-worker or "
        f"--gpus-per-worker, or add nodes")
