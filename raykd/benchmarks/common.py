"""What every benchmark section shares: the teacher of a task (fine-tuned, or the base with a new head),
its tokenized data, and a real `raykd.distill` run on the benchmark's Ray cluster. Measures nothing itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import ray
import torch
from transformers import AutoTokenizer

from raykd import models
from raykd.data import DataSource, load_task_data

MiB = 2**20


def per_worker(args) -> str:
    """What each Ray Train worker of the timed runs holds, for the tables' notes: "1 CPU" or "(1 CPU, G GPU)"."""
    return f"(1 CPU, {args.gpus_per_worker:g} GPU)" if args.gpus_per_worker else "1 CPU"


def cluster_address() -> str:
    """The GCS address of the Ray cluster this process is connected to, for the commands it runs as
    subprocesses (`--address`). Raises what ray raises when ray.init has not run."""
    return ray.get_runtime_context().gcs_address


def distill_flags(args, teacher_dir: str, cache_dir: Path, epochs: int) -> list[str]:
    """The flags every timed `raykd.distill` run on RTE shares: data, teacher, `epochs`, --max-seq-length,
    learning rate 1e-4 and the benchmark's cache; a section adds its own (later flags win)."""
    return ["--task", "rte", "--data-dir", args.data_dir, "--teacher", teacher_dir, "--epochs", str(epochs),
            "--max-seq-length", str(args.max_seq_length), "--learning-rate", "1e-4", "--cache-dir", str(cache_dir)]


def distill_run(argv: list[str], own_cluster: bool = False) -> dict:
    """One real `python -m raykd.distill` run, a command of its own as a user runs it, on this benchmark's
    Ray cluster (no start-up of another), or with `own_cluster` on the local cluster it starts itself, as the
    README's command does; returns its result.json. Raises CalledProcessError when it fails."""
    out = Path(argv[argv.index("--out") + 1])
    address = [] if own_cluster else ["--address", cluster_address()]
    subprocess.run([sys.executable, "-m", "raykd.distill", *argv, *address], check=True)
    return json.loads((out / "result.json").read_text())


def teacher_for(task, root: Path, scratch: Path) -> tuple[str, str]:
    """(folder, description) of the task's fine-tuned teacher `root/<task>-minilm`, or of the pretrained base
    with a new head, saved once under `scratch` (seed 0). Raises OSError when the base cannot be loaded."""
    folder = root / f"{task.name}-minilm"
    if (folder / "model.safetensors").is_file():
        return str(folder.resolve()), str(folder)
    folder = scratch / f"{task.name}-base"
    if not folder.is_dir():  # made once: every section must see the same weights, hence the same cache key
        torch.manual_seed(0)
        model = models.load_base_for_finetuning(models.OFFLINE_BASE, task)
        model.config.architectures = ["BertForSequenceClassification"]
        model.save_pretrained(folder)
        AutoTokenizer.from_pretrained(models.resolve_base(models.OFFLINE_BASE)).save_pretrained(folder)
    return str(folder), "all-MiniLM-L6-v2 + new head"


def task_data(task, teacher_dir: str, args, cache_dir: Path) -> dict:
    """The task's tokenized {"train", "dev"} columns (raykd.data.load_task_data) with the teacher's
    tokenizer, at most --max-seq-length tokens, the whole train set, data seed 42. Raises RaykdError on a
    bad teacher or bad data."""
    _, tokenizer = models.load_teacher(teacher_dir, task)
    return load_task_data(task, DataSource(data_dir=args.data_dir), tokenizer, args.max_seq_length, 1.0,
                          42, cache_dir)
