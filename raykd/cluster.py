"""Connecting to Ray: a local cluster with its dashboard, or an existing one with --address."""

from __future__ import annotations

import os
import socket

import ray

from raykd.errors import RaykdError


def _reachable(address: str, timeout_s: float) -> bool:
    host_port = address.split("://")[-1]
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def _free_port(preferred: int = 8265) -> int:
    """Ray's usual dashboard port when it is free, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RaykdError("no free port for the Ray dashboard; free one or pass --address")


def connect(address: str | None = None, timeout_s: float = 10.0) -> str | None:
    """Start (or join) Ray and return the dashboard URL.

    The local dashboard binds to 127.0.0.1 only. Ray's token authentication stays as Ray sets it
    (on by default); see the README for opening the dashboard with the token.
    """
    if ray.is_initialized():
        return None
    if address and address != "auto" and not _reachable(address, timeout_s):
        raise RaykdError(f"no Ray cluster answers at {address} within {timeout_s:.0f} s; start one with `ray start --head` or drop --address to use a local cluster")
    if address:
        kwargs = {"address": address}
    else:
        port = _free_port()
        # Ray Train's placement-group cleaner asks the State API (the dashboard) whether a run is still
        # alive. With no address it autodetects the cluster, which fails when another local cluster
        # runs on the machine, and the reservation of a finished trial then leaks. Name ours.
        api = f"http://127.0.0.1:{port}"
        kwargs = {"include_dashboard": True, "dashboard_host": "127.0.0.1", "dashboard_port": port,
                  "num_cpus": int(os.environ.get("RAYKD_NUM_CPUS", os.cpu_count() or 1)),
                  "runtime_env": {"env_vars": {"RAY_API_SERVER_ADDRESS": api}}}
        os.environ["RAY_API_SERVER_ADDRESS"] = api
    context = ray.init(**kwargs, log_to_driver=True)
    url = getattr(context, "dashboard_url", None)
    if url:
        print(f"Ray dashboard: http://{url}", flush=True)
        if os.environ.get("RAY_AUTH_MODE", "").lower() != "disabled":
            print("Ray token authentication is on: dashboard requests need the token in ~/.ray/auth_token "
                  "(header 'Authorization: Bearer <token>')", flush=True)
    return url
