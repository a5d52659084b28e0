"""The teacher-output cache: per task, the cold build of the teacher's outputs for the whole train set
(logits, [CLS] of every layer, attention maps of every layer) into the disk cache, its size and the warm
read a second search does instead (`cache` section); its size against data size, from the shapes alone
(`cache-size` section)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm import tqdm
from transformers import AutoTokenizer

from raykd import models
from raykd.benchmarks.common import MiB, task_data, teacher_for
from raykd.data import DataSource, load_task_data
from raykd.launch.prepare import SHARED_FIELDS
from raykd.tasks import get_task
from raykd.teacher_outputs.disk_cache import DiskCache, cache_key, ensure


def cache_builds(args, cache_dir: Path, scratch: Path) -> list[str]:
    """The `cache` section, markdown rows: per task of --tasks, the cold build of the teacher-output cache
    (forward and build seconds, size in MiB), then the warm read a second search does (seconds, forward
    passes: none, as no teacher is given). Raises RaykdError on a bad teacher or data."""
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


def cache_sizes(args, cache_dir: Path, scratch: Path) -> list[str]:
    """The `cache-size` section, markdown rows: disk size (GiB) of the teacher-output cache (logits, [CLS] and
    attention maps), from the shapes alone (raykd.teacher_outputs.cache.estimate_bytes, which the size test
    checks against a built cache): MiniLM-L6 and BERT-base, every teacher layer against the half-depth skip
    map's layers, for 1k to 100k examples whose lengths are drawn (seeded) from RTE's tokenized train set.
    Raises RaykdError on bad data."""
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
