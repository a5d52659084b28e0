"""Serving: inference latency and throughput of teacher and student at batch 1 and 32 (`inference`
section), the serving formats PyTorch fp32, ONNX and ONNX int8 with their dev check and latency (`deploy`
section), and each student shape's serving cost against the paper's student (`shapes` section)."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification

from raykd import models
from raykd.artifacts import deploy
from raykd.benchmarks.common import task_data, teacher_for
from raykd.data import DataSource
from raykd.tasks import get_task
from raykd.training.batches import Collator


def save_half_depth_student(teacher, folder: Path) -> None:
    """Save into `folder` the paper's student of `teacher`: half its layers, copied from its layers by the skip
    map (2, 4, 6 of a 6-layer teacher), untrained. Raises RaykdError when the depth is not a multiple."""
    layers = teacher.config.num_hidden_layers
    n = models.student_depth(layers, 0)
    models.build_student(teacher, n, models.layer_map("skip", layers, n), "mapped").save_pretrained(folder)


def inference(args, cache_dir: Path, scratch: Path) -> list[str]:
    """The `inference` section, markdown rows: median latency per batch (ms) and throughput (examples/s) of the
    RTE teacher and a half-depth student built from it, at batch 1 (at most 63 timed calls) and 32 (at most 7), fp32 on the CPU,
    the first call of each untimed. Raises RaykdError on a bad teacher or data."""
    task = get_task("rte")
    teacher_dir, _ = teacher_for(task, args.teachers, scratch)
    teacher, tokenizer = models.load_teacher(teacher_dir, task)
    student_dir = scratch / "student"
    save_half_depth_student(teacher, student_dir)
    dev = task_data(task, teacher_dir, args, cache_dir)["dev"]
    collate = Collator(tokenizer, dev, regression=False)
    rows = ["| model | layers | batch | median latency per batch (ms) | throughput (examples/s) |", "|---|---|---|---|---|"]
    for label, folder in (("teacher", teacher_dir), ("student", student_dir)):
        model = AutoModelForSequenceClassification.from_pretrained(folder).eval()  # as users load it (sdpa)
        for size in (1, 32):
            batches = [list(range(s, s + size)) for s in range(0, min(len(dev["labels"]), 64 if size == 1 else 256), size)]
            times = []
            with torch.inference_mode():
                for i, indices in enumerate(batches):
                    inputs = {k: v for k, v in collate(indices).items() if k in ("input_ids", "attention_mask", "token_type_ids")}
                    started = time.perf_counter()
                    model(**inputs)
                    if i:  # the first call warms up
                        times.append(time.perf_counter() - started)
            rows.append(f"| {label} | {model.config.num_hidden_layers} | {size} | {1000 * statistics.median(times):.1f} | "
                        f"{size * len(times) / sum(times):.0f} |")
            print(rows[-1], flush=True)
    rows += ["", f"RTE dev rows in order, real lengths (max {args.max_seq_length}), {torch.get_num_threads()} torch threads, "
             "sdpa attention, fp32; the student is built from the teacher's layers 2, 4, 6."]
    return rows


def deploy_formats(args, cache_dir: Path, scratch: Path) -> list[str]:
    """The `deploy` section, markdown lines: teacher and student (--model, an exported folder, copied; default a
    student built from the teacher's layers as in the `inference` section) in PyTorch fp32, ONNX and ONNX int8
    (raykd.artifacts.deploy): the dev check of each format (metric, its change against PyTorch, largest logit
    difference) and the latency table, on the dev rows of the folder's task (its deploy.json, else the first of
    --tasks). Raises RaykdError on a bad teacher, model or data."""
    import shutil

    record = args.model and Path(args.model) / deploy.RECORD
    task = get_task(json.loads(record.read_text())["task"] if record and record.is_file() else args.tasks[0])
    teacher_dir, described = teacher_for(task, args.teachers, scratch)
    student = scratch / "deploy-student"
    if args.model:  # a copy: the user's folder is never written to
        shutil.copytree(args.model, student, ignore=shutil.ignore_patterns("onnx"))
    else:
        teacher, tokenizer = models.load_teacher(teacher_dir, task)
        save_half_depth_student(teacher, student)
        tokenizer.save_pretrained(student)
    dev = task_data(task, teacher_dir, args, cache_dir)["dev"]
    checks = deploy.export(student, task, deploy.FORMATS, dev)
    measured = deploy.measure({"teacher": deploy.teacher_copy(Path(teacher_dir), scratch / "deploy-teacher", deploy.FORMATS),
                               "student": student}, dev)
    rows = [f"| format | {checks['metric']} ({checks['examples']} dev rows) | against PyTorch | largest logit difference |",
            "|---|---|---|---|"]
    rows += [f"| {deploy.FORMAT_NAMES[f]} | {checks[f]['value']:.4f} | {-checks[f]['drop']:+.4f} | {checks[f]['max_logit_diff']:.2g} |"
             for f in deploy.FORMATS]
    rows += ["", *deploy.latency_table(measured), "",
             f"{task.name}; teacher {described}; student {Path(args.model).name if args.model else 'built from the teacher (skip map)'}."]
    print("\n".join(rows), flush=True)
    return rows


def shape_costs(args, cache_dir: Path, scratch: Path) -> list[str]:
    """The `shapes` section, markdown lines: every shape of --shape-space against all-MiniLM-L6-v2
    (raykd.student.cost, measured now into the cold cache): batch-1 p50 and p95 (ms) in ONNX Runtime and PyTorch,
    batch-32 throughput (examples/s), parameters and GFLOPs, each latency also as a ratio to the paper's
    half-depth student measured in the same run, at the median dev length of the first of --tasks. Raises
    RaykdError on a bad space file or data."""
    from transformers import AutoConfig

    from raykd.student import cost, offer, shape
    from raykd.tuning.spaces import load_space

    config = AutoConfig.from_pretrained(models.resolve_base(models.OFFLINE_BASE), num_labels=2)
    task = get_task(args.tasks[0])
    seq = offer.median_dev_length(task, DataSource(data_dir=str(args.data_dir)),
                                  models.load_base_tokenizer(models.OFFLINE_BASE), args.max_seq_length)
    threads = deploy.all_threads()
    shapes = sorted({*shape.grid(load_space(args.shape_space).shape_axes, config), shape.paper_student(config)})
    costs = cost.measure(shapes, config, seq, threads, cache_dir, progress=print)
    paper = costs[shape.paper_student(config).name]
    lines = [f"Shapes of `{args.shape_space}` from all-MiniLM-L6-v2 (random weights: latency does not depend on them), "
             f"{seq} tokens ({task.name}'s median dev length), {threads} threads, batch 1: 30 calls after 2 warm-up; "
             "ratios against the paper's half-depth student (L3-H384-F1536) in this run.", "",
             "| shape | parameters | GFLOPs | ONNX p50 (ms) | ONNX p95 (ms) | x paper | PyTorch p50 (ms) | x paper "
             "| ONNX batch 32 (ex/s) |", "|---|---|---|---|---|---|---|---|---|"]
    for name in sorted(costs, key=lambda n: costs[n]["onnx"]["p50_ms"]):
        c = costs[name]
        lines.append(f"| {name} | {c['params']:,} | {c['flops'] / 1e9:.2f} | {c['onnx']['p50_ms']:.2f} | "
                     f"{c['onnx']['p95_ms']:.2f} | {c['onnx']['p50_ms'] / paper['onnx']['p50_ms']:.2f} | "
                     f"{c['pytorch']['p50_ms']:.2f} | {c['pytorch']['p50_ms'] / paper['pytorch']['p50_ms']:.2f} | "
                     f"{c['onnx']['examples_per_s']:.0f} |")
    return lines
