"""Performance figures, measured side by side in one process tree on the same data:

    python -m raykd.bench --data-dir ../shared/data/glue          # prints and writes results/bench.md

Each section (`--sections`; default all, run in the order of SECTIONS) is a function of a module of
raykd.benchmarks, one concept each: cache and cache-size (benchmarks.cache), epochs and precision
(benchmarks.epochs), peer (benchmarks.peer), throughput (benchmarks.throughput), startup (benchmarks.startup),
memory (benchmarks.memory), inference, deploy and shapes (benchmarks.serving).

The teacher of a task is results/teachers/<task>-minilm when it exists, else the pretrained base with
a new head (the same cost and size: the numbers do not depend on the weights).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import ray
import torch

from raykd.artifacts import deploy
from raykd.benchmarks.cache import cache_builds, cache_sizes
from raykd.benchmarks.epochs import epoch_times, precision_times
from raykd.benchmarks.memory import teacher_memory
from raykd.benchmarks.peer import peer
from raykd.benchmarks.serving import deploy_formats, inference, shape_costs
from raykd.benchmarks.startup import startup
from raykd.benchmarks.throughput import search_throughput
from raykd.errors import RaykdError, exits_cleanly
from raykd.files import atomic_write
from raykd.launch import cli, cluster
from raykd.tasks import get_task

SECTIONS = {"cache": ("Cache build per task", cache_builds),
            "epochs": ("Epoch time and start-up (RTE)", epoch_times),
            "precision": ("Precision and length-grouped batches (RTE)", precision_times),
            "peer": ("The peer: TextBrewer on the same work (RTE)", peer),
            "throughput": ("Search throughput: trial layouts on this machine (RTE)", search_throughput),
            "startup": ("Where a trial's start-up goes (RTE subset)", startup),
            "cache-size": ("Teacher-output cache size against data size", cache_sizes),
            "memory": ("Teacher memory with concurrent trials (RTE)", teacher_memory),
            "inference": ("Inference", inference),
            "deploy": ("Serving formats: ONNX and int8, dev check and latency", deploy_formats),
            "shapes": ("Student shapes: serving cost of each shape of a space", shape_costs)}


def parser() -> argparse.ArgumentParser:
    """The bench command's argument parser: every option with its default (`--help`)."""
    p = argparse.ArgumentParser(prog="python -m raykd.bench", description="Measure raykd's teacher cache, epoch times, memory and inference side by side.")
    p.add_argument("--data-dir", required=True, help="folder of GLUE TSVs (e.g. ../shared/data/glue)")
    p.add_argument("--tasks", default="rte,mrpc,cola,sst2,stsb", type=lambda s: s.split(","),
                   help="tasks of the cache-build table (default: rte,mrpc,cola,sst2,stsb)")
    p.add_argument("--sections", default=",".join(SECTIONS), type=lambda s: s.split(","),
                   help=f"which sections to run (default: {','.join(SECTIONS)})")
    p.add_argument("--teachers", type=Path, default=Path("results/teachers"),
                   help="folder holding <task>-minilm teachers (default: results/teachers)")
    p.add_argument("--epochs", type=int, default=2, help="epochs of each run in the epoch-time section (default: 2)")
    p.add_argument("--workers", type=int, default=1,
                   help="workers of those runs: 1 is distill's default (the worker in the command's own process), 2 or "
                        "more Ray Train DDP workers on the benchmark's cluster (default: 1)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0,
                   help="GPUs per worker of the epoch-time and precision runs; 0 trains on CPU (default: 0)")
    p.add_argument("--max-seq-length", type=int, default=128, help="tokens per example (default: 128)")
    p.add_argument("--throughput-fraction", type=float, default=0.2,
                   help="throughput and startup sections: share of RTE's train set each trial trains on (default: 0.2)")
    p.add_argument("--throughput-epochs", type=int, default=1,
                   help="throughput section: classification epochs per trial, ASHA's max_t with a grace period of 1 epoch; "
                        "3 is the main command's (default: 1)")
    p.add_argument("--throughput-layouts", default="a,b,c", type=lambda s: s.split(","),
                   help="throughput section: which layouts to run, of a (one 2-worker Ray Train trial at a time), b (two "
                        "one-worker trials at once on Ray Train, the layout before issue 50), c (two at once, each in its "
                        "trial's process, the default) (default: a,b,c)")
    p.add_argument("--peer-rounds", type=int, default=3,
                   help="peer section: rounds of TextBrewer's command then raykd's, alternated (default: 3)")
    p.add_argument("--model", type=Path, help="deploy section: an exported student folder (e.g. results/rte/<name>/best); "
                                              "default: a student built from the teacher")
    p.add_argument("--shape-space", type=Path, default=Path("search_spaces/student.py"),
                   help="shapes section: the space file whose `shape` grid is measured (default: search_spaces/student.py)")
    p.add_argument("--out", type=Path, default=Path("results/bench.md"), help="report file (default: results/bench.md)")
    return p


def parse_args(argv=None):
    """The bench command's flags."""
    return parser().parse_args(argv)


@exits_cleanly
def main(argv=None):
    """`python -m raykd.bench`: run the chosen sections with a cold cache and write the report to --out.
    Raises RaykdError when --out exists, or for an unknown section or task, or a --model without config.json."""
    args = parse_args(argv)
    if args.out.exists():
        raise RaykdError(f"{args.out} already exists; move it away or pass another --out")
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        raise RaykdError(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    if args.throughput_epochs < 1:
        raise RaykdError(f"--throughput-epochs {args.throughput_epochs} must be at least 1; pass 3 for the main command's")
    if not set(args.throughput_layouts) <= {"a", "b", "c"}:
        raise RaykdError(f"unknown --throughput-layouts {','.join(sorted(set(args.throughput_layouts) - {'a', 'b', 'c'}))}; "
                         "choose among a,b,c")
    if args.peer_rounds < 1:
        raise RaykdError(f"--peer-rounds {args.peer_rounds} must be at least 1; pass 3 or more for a spread")
    for name in args.tasks:
        get_task(name)
    if args.model and not (args.model / "config.json").is_file():
        raise RaykdError(f"--model {args.model} is not a model folder (no config.json); pass an exported student such as results/rte/<name>/best")
    torch.set_num_threads(os.cpu_count() or 1)
    command = cli.command_line("bench", argv)
    lines = ["# Benchmark", "", f"Machine: {deploy.machine(args.gpus_per_worker)}.", "", f"Command: `{command}` ({time.strftime('%Y-%m-%d')}).", ""]
    with tempfile.TemporaryDirectory(prefix="raykd-bench-") as tmp:
        cache_dir, scratch = Path(tmp) / "cache", Path(tmp) / "scratch"  # a cold cache: builds are measured
        cluster.connect()
        for key in (k for k in SECTIONS if k in args.sections):
            title, run = SECTIONS[key]
            print(f"== {title}", flush=True)
            started = time.perf_counter()
            lines += [f"## {title}", "", *run(args, cache_dir, scratch), "", f"_section wall time: {time.perf_counter() - started:.0f} s_", ""]
        ray.shutdown()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, "\n".join(lines))
    print("\n".join(lines))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
