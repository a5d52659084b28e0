"""Performance figures, measured side by side in one process tree on the same data:

    python -m raykd.bench --data-dir ../shared/data/glue          # prints and writes results/bench.md

1. Cache build: per task, the teacher's outputs for the whole train set (logits, [CLS] of every layer,
   attention maps of every layer) computed into a cold disk cache; its size; the warm read that a
   second search does instead (checksums verified, no forward pass).
2. Epoch time on RTE, each a real `raykd.distill` run on Ray Train: plain fine-tuning of the student
   (the floor), distillation with the warm cache, and distillation running the teacher at every step,
   with the paper's full loss (algorithm `all`: attention KL + [CLS] cosine + soft labels). Also each
   run's time from its submission to its first training step.
3. Teacher memory with 1, 2 and 4 concurrent trials: N Ray actors read the whole cache as a trial's
   workers do (object store, or memory-mapped files), or each load their own teacher (what a
   toolkit running the teacher per trial holds); their proportional (PSS) and private memory.
4. Inference latency and throughput of teacher and student at batch 1 and 32 (RTE dev rows).
5. Search throughput: trials per hour of one 6-trial search in three layouts of the 2 cores (one trial
   with 2 workers x 1 thread, one trial with 1 worker x 2 threads, two trials at once), and the
   per-trial overhead (`--sections throughput`).
6. Student shapes: each shape's serving cost, as a ratio to the paper's student (`--sections shapes`).

The teacher of a task is results/teachers/<task>-minilm when it exists, else the pretrained base with
a fresh head (the same cost and size: the numbers do not depend on the weights).
"""

from __future__ import annotations

import argparse
import os
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import ray
import torch
from tqdm import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from raykd import models
from raykd.artifacts import deploy
from raykd.data import DataSource, load_task_data
from raykd.errors import RaykdError, exits_cleanly
from raykd.files import atomic_write
from raykd.launch import cli, cluster
from raykd.launch.prepare import SHARED_FIELDS
from raykd.tasks import get_task
from raykd.teacher_outputs.disk_cache import DiskCache, cache_key, ensure, open_placed
from raykd.training.batches import Collator
from raykd.tuning.trials import trial_rows

MiB = 2**20


def per_worker(args) -> str:
    """What each Ray Train worker of the timed runs holds, for the tables' notes."""
    return f"(1 CPU, {args.gpus_per_worker:g} GPU)" if args.gpus_per_worker else "1 CPU"


def distill_run(argv: list[str]) -> dict:
    """One real `python -m raykd.distill` run, a command of its own as a user runs it, on this benchmark's
    Ray cluster (no start-up of another); returns its result.json. Raises CalledProcessError when it fails."""
    out = Path(argv[argv.index("--out") + 1])
    subprocess.run([sys.executable, "-m", "raykd.distill", *argv, "--address", ray.get_runtime_context().gcs_address],
                   check=True)
    return json.loads((out / "result.json").read_text())


def teacher_for(task, root: Path, scratch: Path) -> tuple[str, str]:
    """(folder, description) of the task's fine-tuned teacher, or of the base with a new head."""
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


def task_data(task, teacher_dir, args, cache_dir, fraction=1.0):
    """The task's tokenized {"train", "dev"} columns (raykd.data.load_task_data) with the teacher's
    tokenizer, data seed 42, `fraction` of the train set."""
    _, tokenizer = models.load_teacher(teacher_dir, task)
    return load_task_data(task, DataSource(data_dir=args.data_dir), tokenizer, args.max_seq_length, fraction,
                          42, cache_dir)


# 1. cache build ---------------------------------------------------------------------------------

def cache_builds(args, cache_dir: Path, scratch: Path) -> list[str]:
    """Section 1, markdown rows: per task of --tasks, the cold build of the teacher-output cache (forward
    and build seconds, size in MiB), then the warm read a second search does (seconds, forward passes)."""
    rows = ["| task | teacher | train examples | mean tokens | teacher forward (s) | build incl. write + checksum (s) "
            "| size on disk (MiB) | warm read, second search (s) | forward passes when warm |", "|---|---|---|---|---|---|---|---|---|"]
    for name in args.tasks:
        task = get_task(name)
        teacher_dir, described = teacher_for(task, args.teachers, scratch)
        teacher, _ = models.load_teacher(teacher_dir, task)
        train = task_data(task, teacher_dir, args, cache_dir)["train"]
        cache = DiskCache(cache_dir, cache_key(teacher_dir, train, args.max_seq_length))
        started = time.perf_counter()
        _, forward = ensure(cache, teacher, train, SHARED_FIELDS, progress=tqdm)
        build = time.perf_counter() - started
        started = time.perf_counter()
        _, warm_forward = ensure(cache, None, train, SHARED_FIELDS)  # no teacher given: none can run
        warm = time.perf_counter() - started
        tokens = np.mean([len(x) for x in train["input_ids"]])
        rows.append(f"| {name} | {described} | {len(train['input_ids'])} | {tokens:.1f} | {forward:.1f} | {build:.1f} | "
                    f"{cache.nbytes() / MiB:.0f} | {warm:.1f} | {'none' if warm_forward == 0 else warm_forward} |")
        print(rows[-1], flush=True)
    return rows


# 2. epoch time and time to the first step ---------------------------------------------------------

RUNS = {"student fine-tuning (floor)": ["--algorithm", "finetune"],
        "distillation, warm cache": ["--algorithm", "all"],
        "distillation, teacher at every step": ["--algorithm", "all", "--live-teacher"],
        "distillation, cache over its disk budget (attention maps live)": ["--algorithm", "all", "--teacher-cache-disk", "1MiB"]}


def epoch_times(args, cache_dir: Path, scratch: Path) -> list[str]:
    """Section 2, markdown rows: seconds per epoch of each of RUNS on RTE (real raykd.distill runs), its
    ratio to student fine-tuning, and seconds from submission to the first training step."""
    task = get_task("rte")
    teacher_dir, _ = teacher_for(task, args.teachers, scratch)
    common = ["--task", "rte", "--data-dir", args.data_dir, "--teacher", teacher_dir, "--epochs", str(args.epochs),
              "--max-seq-length", str(args.max_seq_length), "--workers", str(args.workers),
              "--gpus-per-worker", str(args.gpus_per_worker), "--learning-rate", "1e-4", "--cache-dir", str(cache_dir)]
    records = {label: distill_run([*common, *extra, "--out", str(scratch / f"run-{i}")])
               for i, (label, extra) in enumerate(RUNS.items())}
    train = task_data(task, teacher_dir, args, cache_dir)["train"]
    stats = records["distillation, warm cache"]["teacher_service"]
    floor = statistics.mean(h["epoch_seconds"] for h in records["student fine-tuning (floor)"]["history"])
    rows = ["| run | seconds per epoch (each epoch) | ratio to the floor | seconds from submission to first step |",
            "|---|---|---|---|"]
    for label, record in records.items():
        seconds = [h["epoch_seconds"] for h in record["history"]]
        rows.append(f"| {label} | {statistics.mean(seconds):.1f} ({', '.join(f'{s:.1f}' for s in seconds)}) | "
                    f"{statistics.mean(seconds) / floor:.2f}x | {record['history'][0]['seconds_to_first_step']:.1f} |")
        print(rows[-1], flush=True)
    rows += ["", f"RTE train set ({len(train['input_ids'])} examples), {args.workers} Ray Train workers x {per_worker(args)}, global batch 32, "
             f"{args.epochs} epochs each, 6 -> 3 layers (map 2,4,6). Teacher forward passes by the TeacherService in "
             f"this process tree: {stats['forward_seconds']:.1f} s (its disk cache was built in section 1; reading "
             f"and checking it took {stats['load_seconds']:.1f} s)."]
    return rows


# 2b. precision and length grouping ---------------------------------------------------------------

SPEED_RUNS = {"student fine-tuning, fp32, shuffled (the old floor)": ["--algorithm", "finetune", "--precision", "fp32", "--no-group-by-length"],
              "student fine-tuning, bf16, length-grouped (the new floor)": ["--algorithm", "finetune", "--precision", "bf16"],
              "distillation, fp32, shuffled (before)": ["--precision", "fp32", "--no-group-by-length"],
              "distillation, fp32, length-grouped": ["--precision", "fp32"],
              "distillation, bf16, shuffled": ["--precision", "bf16", "--no-group-by-length"],
              "distillation, bf16, length-grouped": ["--precision", "bf16"],
              "distillation, bf16, length-grouped, cache over its disk budget (attention maps live)":
                  ["--precision", "bf16", "--teacher-cache-disk", "1MiB"]}


def precision_times(args, cache_dir: Path, scratch: Path) -> list[str]:
    """Seconds per epoch of student fine-tuning and of distillation (algorithm all, warm cache) in fp32 and
    bf16, with and without length-grouped batches, side by side: the ratio of each to the old fp32 floor and
    of each distillation to the floor of its own precision and batching."""
    task = get_task("rte")
    teacher_dir, described = teacher_for(task, args.teachers, scratch)
    common = ["--task", "rte", "--data-dir", args.data_dir, "--teacher", teacher_dir, "--epochs", str(args.epochs),
              "--max-seq-length", str(args.max_seq_length), "--workers", str(args.workers), "--algorithm", "all",
              "--gpus-per-worker", str(args.gpus_per_worker), "--learning-rate", "1e-4", "--cache-dir", str(cache_dir)]
    rows = ["| run | seconds per epoch (each epoch) | ratio to the old floor | ratio to its own floor | examples/s "
            "| dev accuracy (last epoch) |", "|---|---|---|---|---|---|"]
    means = {}
    for i, (label, extra) in enumerate(SPEED_RUNS.items()):
        record = distill_run([*common, *extra, "--out", str(scratch / f"speed-{i}")])  # later flags win
        seconds = [h["epoch_seconds"] for h in record["history"]]
        means[label] = statistics.mean(seconds)
        old_floor = means[next(iter(SPEED_RUNS))]
        own = (means[next(iter(SPEED_RUNS))] if "fp32" in label else means[list(SPEED_RUNS)[1]]) \
            if "distillation" in label else means[label]
        rows.append(f"| {label} | {means[label]:.1f} ({', '.join(f'{s:.1f}' for s in seconds)}) | "
                    f"{means[label] / old_floor:.2f}x | {means[label] / own:.2f}x | "
                    f"{statistics.mean(h['examples_per_second'] for h in record['history']):.0f} | "
                    f"{record['history'][-1]['dev_accuracy']:.4f} |")
        print(rows[-1], flush=True)
    rows += ["", f"RTE train set, teacher {described}, {args.workers} Ray Train workers x {per_worker(args)}, global batch 32, "
             f"{args.epochs} epochs each, 6 -> 3 layers (map 2,4,6), the paper's full loss (algorithm all) for the "
             "distillations, warm teacher-output cache. 'Its own floor' is student fine-tuning in the same precision "
             "(fp32 shuffled for fp32 rows, bf16 grouped for bf16 rows). One seed: the dev accuracies show that each "
             "run trains, not which is better (results/parity.md compares fp32 and bf16 students over seeds)."]
    return rows


# 2d. the peer: TextBrewer on the same work ---------------------------------------------------------

PEER_RUNS = {"raykd, fp32, shuffled, 2 workers x 1 CPU": ["--precision", "fp32", "--no-group-by-length"],
             "raykd, bf16, length-grouped, 2 workers x 1 CPU": ["--precision", "bf16"],
             "raykd, bf16, length-grouped, 1 worker x 2 CPUs": ["--precision", "bf16", "--workers", "1",
                                                               "--cpus-per-worker", "2"]}


def textbrewer_epoch(teacher_dir: str, train: dict, tokenizer, scratch: Path) -> float:
    """Seconds of one epoch of TextBrewer 0.2.1's GeneralDistiller (Yang et al., ACL 2020 demo) on RTE:
    the teacher runs at every step, one process with every torch thread, batch 32, fp32, attention MSE +
    PKD on [CLS] for the map 2,4,6 + soft labels, AdamW 1e-4 with linear warm-up. Raises ImportError when
    textbrewer is not installed (`pip install --no-deps textbrewer==0.2.1`: its pins predate our torch)."""
    import textbrewer
    from textbrewer import DistillationConfig, GeneralDistiller, TrainingConfig
    from transformers import get_linear_schedule_with_warmup

    task = get_task("rte")
    teacher, _ = models.load_teacher(teacher_dir, task)
    student = models.build_student(teacher, 3, (2, 4, 6), "mapped")
    collate = Collator(tokenizer, train, regression=False)

    def plain(indices):  # TextBrewer calls model(**batch): model inputs and labels only, as a plain dict
        """The Collator's batch without `index`: model inputs and labels only."""
        return {k: v for k, v in collate(indices).items() if k != "index"}

    loader = torch.utils.data.DataLoader(range(len(train["labels"])), batch_size=32, shuffle=True, collate_fn=plain,
                                         generator=torch.Generator().manual_seed(0))

    def adaptor(batch, outputs):
        """TextBrewer's adaptor: a batch's logits, attentions, hidden states and attention mask."""
        return {"logits": outputs.logits, "attention": outputs.attentions, "hidden": outputs.hidden_states,
                "inputs_mask": batch["attention_mask"]}

    matches = ([{"layer_T": t - 1, "layer_S": s, "feature": "attention", "loss": "attention_mse", "weight": 1}
                for s, t in enumerate((2, 4, 6))]
               + [{"layer_T": t, "layer_S": s + 1, "feature": "hidden", "loss": "pkd", "weight": 1}
                  for s, t in enumerate((2, 4, 6))])
    distiller = GeneralDistiller(
        TrainingConfig(device="cpu", output_dir=str(scratch / "textbrewer"), log_dir=None),
        DistillationConfig(temperature=1, kd_loss_type="ce", kd_loss_weight=1, hard_label_weight=0,
                           intermediate_matches=matches),
        teacher.eval(), student, adaptor, adaptor)
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-4, weight_decay=0.01)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(0.1 * len(loader)), len(loader))
    print(f"TextBrewer {textbrewer.__version__}: one epoch, {len(loader)} steps", flush=True)
    started = time.perf_counter()
    with distiller:
        distiller.train(optimizer, loader, num_epochs=1, scheduler=scheduler, max_grad_norm=1.0,
                        output_attentions=True, output_hidden_states=True)
    return time.perf_counter() - started


def peer(args, cache_dir: Path, scratch: Path) -> list[str]:
    """One distillation epoch on RTE by TextBrewer (when installed) and by raykd (warm cache), side by
    side in this run; the ratio of each raykd epoch to TextBrewer's."""
    task = get_task("rte")
    teacher_dir, described = teacher_for(task, args.teachers, scratch)
    _, tokenizer = models.load_teacher(teacher_dir, task)
    train = task_data(task, teacher_dir, args, cache_dir)["train"]
    rows = ["| run | seconds for one epoch | ratio to TextBrewer |", "|---|---|---|"]
    try:
        theirs = textbrewer_epoch(teacher_dir, train, tokenizer, scratch)
        rows.append(f"| TextBrewer 0.2.1 GeneralDistiller, fp32, teacher at every step, 1 process x {torch.get_num_threads()} threads "
                    f"| {theirs:.1f} | 1.00x |")
    except ImportError:
        theirs = None
        rows.append("| TextBrewer: not installed (`pip install --no-deps textbrewer==0.2.1`) | - | - |")
    print(rows[-1], flush=True)
    common = ["--task", "rte", "--data-dir", args.data_dir, "--teacher", teacher_dir, "--epochs", "1",
              "--max-seq-length", str(args.max_seq_length), "--algorithm", "all",
              "--learning-rate", "1e-4", "--cache-dir", str(cache_dir)]
    for i, (label, extra) in enumerate(PEER_RUNS.items()):
        seconds = distill_run([*common, *extra, "--out", str(scratch / f"peer-{i}")])["history"][0]["epoch_seconds"]
        rows.append(f"| {label}, warm cache | {seconds:.1f} | {f'{seconds / theirs:.2f}x' if theirs else '-'} |")
        print(rows[-1], flush=True)
    rows += ["", f"RTE train set ({len(train['labels'])} examples, max {args.max_seq_length} tokens), teacher {described}, "
             "3-layer student from its layers 2, 4, 6, global batch 32, one epoch, the same losses in kind: attention "
             "maps of layers 2, 4, 6 (TextBrewer: MSE; raykd: KL), [CLS] (TextBrewer: PKD; raykd: cosine), soft labels. "
             "raykd's teacher outputs come from its cache, built before the timed epoch."]
    return rows


# 2d. search throughput ---------------------------------------------------------------------------

THROUGHPUT = {"(a) 1 trial at a time x 2 workers x 1 thread": ["--workers-per-trial", "2", "--cpus-per-worker", "1",
                                                                "--max-concurrent-trials", "1"],
              "(b) 1 trial at a time x 1 worker x 2 threads": ["--workers-per-trial", "1", "--cpus-per-worker", "2",
                                                                "--max-concurrent-trials", "1"],
              "(c) 2 trials at a time x 1 worker x 1 thread": ["--workers-per-trial", "1", "--cpus-per-worker", "1",
                                                                "--max-concurrent-trials", "2"]}
THROUGHPUT_SPACE = """from ray import tune
fixed = {"algorithm": "kd"}
space = {"learning_rate": tune.loguniform(3e-5, 3e-4)}
"""


def trial_times(exp_dir: Path) -> list[dict]:
    """Per trial of a finished search, from Tune's per-epoch rows (unix seconds): "start" (the trial's
    function began: last report's timestamp minus its time_total_s), "first_step" (start plus the
    reported seconds_to_first_step) and "end" (its last report), sorted by start."""


    times = []
    for _, frame in trial_rows(exp_dir):
        if frame.empty:
            continue
        last = frame.iloc[-1]
        start = float(last["timestamp"]) - float(last["time_total_s"])
        times.append({"start": start, "first_step": start + float(frame["seconds_to_first_step"].dropna().iloc[0]),
                      "end": float(last["timestamp"])})
    return sorted(times, key=lambda t: t["start"])


def search_throughput(args, cache_dir: Path, scratch: Path) -> list[str]:
    """Trials per hour of the same 6-trial search (kd, learning rate searched, one classification epoch on
    a seeded --throughput-fraction of RTE) in each layout of THROUGHPUT, real `raykd.search` runs on this
    benchmark's cluster, and the per-trial overhead: submission to first step, and (one trial at a time)
    the gap from one trial's last report to the next trial's first step."""
    task = get_task("rte")
    teacher_dir, described = teacher_for(task, args.teachers, scratch)
    space = scratch / "throughput_space.py"
    space.write_text(THROUGHPUT_SPACE)
    rows = ["| layout | trials per hour | wall time of the 6 trials (s) | submission to first step, mean (s) "
            "| last report to next trial's first step, mean (s) |", "|---|---|---|---|---|"]
    best = None
    for i, (label, extra) in enumerate(THROUGHPUT.items()):
        subprocess.run([sys.executable, "-m", "raykd.search", "--task", "rte", "--data-dir", args.data_dir,
                        "--teacher", teacher_dir, "--space", str(space), "--num-samples", "6", "--max-epochs", "1",
                        "--grace-period", "1", "--train-fraction", str(args.throughput_fraction),
                        "--max-seq-length", str(args.max_seq_length), "--confirm-top", "0", "--export-formats", "hf",
                        "--cache-dir", str(cache_dir), "--out", str(scratch / "throughput"), "--name", f"layout-{i}",
                        "--address", ray.get_runtime_context().gcs_address, *extra], check=True)
        times = trial_times(scratch / "throughput" / "rte" / f"layout-{i}")
        wall = max(t["end"] for t in times) - min(t["start"] for t in times)
        per_hour = len(times) / wall * 3600
        startup = statistics.mean(t["first_step"] - t["start"] for t in times)
        one_at_a_time = extra[extra.index("--max-concurrent-trials") + 1] == "1"
        gaps = [b["first_step"] - a["end"] for a, b in zip(times, times[1:])] if one_at_a_time else []
        rows.append(f"| {label} | {per_hour:.0f} | {wall:.0f} | {startup:.1f} | "
                    f"{f'{statistics.mean(gaps):.1f}' if gaps else '- (trials overlap)'} |")
        print(rows[-1], flush=True)
        if best is None or per_hour > best[1]:
            best = (label, per_hour)
    rows += ["", f"Fastest here: {best[0]}. Each search: 6 trials of kd (soft labels), one classification epoch on a "
             f"seeded {args.throughput_fraction:g} of RTE's train set, max {args.max_seq_length} tokens, teacher {described}, "
             "held-out validation split, no confirmation; the teacher-output cache was warm after the first search."]
    return rows


# 2c. cache size against data size ----------------------------------------------------------------

def cache_sizes(args, cache_dir: Path, scratch: Path) -> list[str]:
    """Disk size of the teacher-output cache (logits, [CLS] and attention maps), from the shapes alone
    (raykd.teacher_outputs.cache.estimate_bytes, which the size test checks against a built cache): MiniLM-L6 and
    BERT-base, every teacher layer against the half-depth skip map's layers, for 1k to 100k examples
    whose lengths are drawn (seeded) from RTE's tokenized train set."""
    from transformers import BertConfig

    from raykd.teacher_outputs.cache import estimate_bytes

    task = get_task("rte")
    tokenizer = AutoTokenizer.from_pretrained(models.resolve_base(models.OFFLINE_BASE))
    rte = [len(x) for x in load_task_data(task, DataSource(data_dir=args.data_dir), tokenizer, args.max_seq_length,
                                          1.0, 42, cache_dir)["train"]["input_ids"]]
    shapes = {"MiniLM-L6 (6 x 12 heads x 384)": BertConfig(num_hidden_layers=6, hidden_size=384, num_attention_heads=12),
              "BERT-base (12 x 12 heads x 768)": BertConfig()}
    fields = ("logits", "cls", "attentions")
    rows = ["| teacher | examples | all layers | half-depth map's layers | of which attention maps |", "|---|---|---|---|---|"]
    for name, config in shapes.items():
        t = config.num_hidden_layers
        half = [k * 2 for k in range(1, t // 2 + 1)]
        for n in (1_000, 10_000, 100_000):
            lengths = np.random.default_rng(0).choice(rte, size=n)
            every = sum(estimate_bytes(config, lengths, fields, range(1, t + 1)).values())
            mapped = estimate_bytes(config, lengths, fields, half)
            rows.append(f"| {name} | {n:,} | {every / 2**30:.2f} GiB | {sum(mapped.values()) / 2**30:.2f} GiB | "
                        f"{mapped['attentions'] / 2**30:.2f} GiB |")
            print(rows[-1], flush=True)
    rows += ["", f"Lengths drawn from RTE's train set tokenized to at most {args.max_seq_length} tokens "
             f"(mean {np.mean(rte):.0f}); fp16 maps and vectors stored at each example's true length. A search "
             "stores the layers its space's layer maps can reach; a single run those of its map."]
    return rows


# 3. teacher memory with concurrent trials --------------------------------------------------------

def memory(pid: int | None = None) -> dict[str, int]:
    """A process's resident, proportional (shared pages split among their users) and private bytes
    (psutil's memory_full_info: smaps on Linux); zeros when the process has ended or is not ours."""
    try:
        info = psutil.Process(pid).memory_full_info()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return {"rss": 0, "pss": 0, "private": 0}
    return {"rss": info.rss, "pss": info.pss, "private": info.uss}


def tree_pss() -> int:
    """Sum of PSS over this process and its descendants (the local Ray cluster): every page once."""
    me = psutil.Process()
    return sum(memory(p.pid)["pss"] for p in [me, *me.children(recursive=True)])


@ray.remote(num_cpus=0)
class TrialProbe:
    """Holds the teacher's outputs (or a teacher) as one trial's worker would, and reports memory."""

    def __init__(self):
        self.held, self.before = None, memory()

    def read_cache(self, placed: dict) -> None:
        """Open the placed arrays as a worker does (open_placed) and read every page."""
        self.held = open_placed(placed, ray.get)
        for array in self.held.values():  # touch every page, as an epoch does
            flat = array.reshape(-1)
            for start in range(0, flat.size, 1 << 24):
                float(flat[start:start + (1 << 24)].sum(dtype=np.float32))

    def load_teacher(self, teacher_dir: str, task_name: str) -> None:
        """Hold a teacher of its own, loaded from `teacher_dir`."""
        self.held, _ = models.load_teacher(teacher_dir, get_task(task_name))

    def growth(self) -> dict[str, int]:
        """Bytes by which this actor's rss, pss and private memory grew since it started."""
        now = memory()
        return {k: now[k] - self.before[k] for k in now}


def teacher_memory(args, cache_dir: Path, scratch: Path) -> list[str]:
    """Section 3, markdown rows: memory (MiB) added by 1, 2 and 4 TrialProbe actors holding RTE's teacher
    outputs from the object store, memory-mapped, or each its own teacher."""
    from raykd.teacher_outputs.service import TeacherService

    task = get_task("rte")
    teacher_dir, _ = teacher_for(task, args.teachers, scratch)
    train = task_data(task, teacher_dir, args, cache_dir)["train"]
    cache = DiskCache(cache_dir, cache_key(teacher_dir, train, args.max_seq_length))
    ensure(cache, models.load_teacher(teacher_dir, task)[0], train, SHARED_FIELDS)  # built once, outside the count
    modes = {"one shared cache in the object store": 2**40, "one shared cache, memory-mapped (--teacher-cache-memory 0)": 0,
             "a teacher per trial (no cache)": None}
    rows = ["| teacher outputs held as | trials | memory added, whole process tree (MiB) | of it private to the trials (MiB) "
            "| sum of the trials' RSS growth (MiB) |", "|---|---|---|---|---|"]
    for label, budget in modes.items():
        for n in (1, 2, 4):
            probes = [TrialProbe.remote() for _ in range(n)]
            service = TeacherService.remote(teacher_dir, task.name, cache, budget) if budget is not None else None
            ray.get([p.growth.remote() for p in probes] + ([service.describe.remote()] if service else []))
            before = tree_pss()
            if service:
                placed = ray.get(service.outputs.remote({"train": train}, list(SHARED_FIELDS)))
                ray.get([p.read_cache.remote(placed) for p in probes])
            else:
                ray.get([p.load_teacher.remote(teacher_dir, task.name) for p in probes])
            added = tree_pss() - before  # measured while all N hold their copy
            growth = ray.get([p.growth.remote() for p in probes])
            rows.append(f"| {label} | {n} | {added / MiB:.0f} | {sum(g['private'] for g in growth) / MiB:.0f} | "
                        f"{sum(g['rss'] for g in growth) / MiB:.0f} |")
            print(rows[-1], flush=True)
            for actor in [*probes, *([service] if service else [])]:
                ray.kill(actor)
            time.sleep(2)  # let the object store free the killed service's objects
    rows += ["", f"The RTE cache holds {cache.nbytes() / MiB:.0f} MiB (logits, [CLS], attention maps of 6 layers). Each trial "
             "is a Ray actor that opens the outputs as a worker does (`open_placed`) and reads every page, or loads "
             "its own teacher. 'Memory added' is the growth of the summed PSS of every process of the local Ray cluster "
             "(psutil's memory_full_info, from smaps; a shared page counts once) from before the outputs were placed to when all N "
             "trials hold them; the TeacherService's own teacher is loaded before and not counted. RSS counts a shared "
             "page once per process, which is what `top` would show."]
    return rows


# 4. inference --------------------------------------------------------------------------------------

def inference(args, cache_dir: Path, scratch: Path) -> list[str]:
    """Section 4, markdown rows: median latency per batch (ms) and throughput (examples/s) of the RTE teacher
    and a half-depth student built from it, at batch 1 and 32, fp32 on the CPU."""
    task = get_task("rte")
    teacher_dir, _ = teacher_for(task, args.teachers, scratch)
    teacher, tokenizer = models.load_teacher(teacher_dir, task)
    n = models.student_depth(teacher.config.num_hidden_layers, 0)
    student_dir = scratch / "student"
    models.build_student(teacher, n, models.layer_map("skip", teacher.config.num_hidden_layers, n), "mapped").save_pretrained(student_dir)
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


# 5. deployment formats ------------------------------------------------------------------------------

def deploy_formats(args, cache_dir: Path, scratch: Path) -> list[str]:
    """Teacher and student (--model, an exported folder; default a student built from the teacher's layers
    as in section 4) in PyTorch fp32, ONNX and ONNX int8 (raykd.artifacts.deploy): the dev check of each format and
    the latency table, on the dev rows of the folder's task (its deploy.json, else the first of --tasks)."""
    import shutil

    record = args.model and Path(args.model) / deploy.RECORD
    task = get_task(json.loads(record.read_text())["task"] if record and record.is_file() else args.tasks[0])
    teacher_dir, described = teacher_for(task, args.teachers, scratch)
    student = scratch / "deploy-student"
    if args.model:  # a copy: the user's folder is never written to
        shutil.copytree(args.model, student, ignore=shutil.ignore_patterns("onnx"))
    else:
        teacher, tokenizer = models.load_teacher(teacher_dir, task)
        n = models.student_depth(teacher.config.num_hidden_layers, 0)
        models.build_student(teacher, n, models.layer_map("skip", teacher.config.num_hidden_layers, n), "mapped").save_pretrained(student)
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
    """Every shape of --shape-space against all-MiniLM-L6-v2 (raykd.student.cost, measured now into the cold cache):
    batch-1 p50 in ONNX Runtime and PyTorch, batch-32 throughput, parameters and FLOPs, each latency also as a
    ratio to the paper's half-depth student measured in the same run. The median dev length of the first task."""
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


SECTIONS = {"cache": ("Cache build per task", cache_builds),
            "epochs": ("Epoch time and start-up (RTE)", epoch_times),
            "precision": ("Precision and length-grouped batches (RTE)", precision_times),
            "peer": ("The peer: TextBrewer on the same work (RTE)", peer),
            "throughput": ("Search throughput: trial layouts on this machine (RTE subset)", search_throughput),
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
    p.add_argument("--workers", type=int, default=2, help="Ray Train workers of those runs (default: 2)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0,
                   help="GPUs per worker of the epoch-time and precision runs; 0 trains on CPU (default: 0)")
    p.add_argument("--max-seq-length", type=int, default=128, help="tokens per example (default: 128)")
    p.add_argument("--throughput-fraction", type=float, default=0.2,
                   help="throughput section: share of RTE's train set each trial trains on (default: 0.2)")
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
