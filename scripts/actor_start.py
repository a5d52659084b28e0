"""Can Ray 2.60 hand a new actor a warm process? (issue 50: a DDP trial's Train workers and controller are actors,
each paying a fresh process and torch's imports.)

    RAY_AUTH_MODE=disabled python scripts/actor_start.py [none|hook|hook-prestart]

A local cluster of 2 CPUs; four rounds of two 1-CPU actors that import torch and transformers' BERT, each round's
actors killed before the next. `hook`: the job's runtime_env runs `worker_process_setup_hook` (the same imports) in
every worker process as it starts, so an actor placed on an idle, prestarted worker would find them done;
`hook-prestart` adds the raylet's `enable_worker_prestart`. Prints each round's seconds from creation to both actors
answering, and their process ids.
"""

import os
import sys
import time

import ray


def warm():
    """The imports a raykd Train worker pays first (the setup hook)."""
    import torch
    from transformers import BertModel
    return torch, BertModel  # the imports are the point


@ray.remote(num_cpus=1)
class Worker:
    def ready(self) -> int:
        warm()
        return os.getpid()


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "none"
    env = {"env_vars": {"PYTHONPATH": os.path.dirname(os.path.abspath(__file__))}}
    if mode.startswith("hook"):
        env["worker_process_setup_hook"] = "actor_start.warm"
    ray.init(num_cpus=2, include_dashboard=False, runtime_env=env,
             _system_config={"enable_worker_prestart": True} if mode == "hook-prestart" else None)
    time.sleep(15)  # the raylet's prestarted workers start (and run the hook) meanwhile
    for round_ in range(4):
        started = time.perf_counter()
        workers = [Worker.remote() for _ in range(2)]
        pids = ray.get([w.ready.remote() for w in workers])
        print(f"{mode} round {round_}: 2 actors ready in {time.perf_counter() - started:.2f} s, processes {pids}", flush=True)
        for w in workers:
            ray.kill(w)
        time.sleep(8)
