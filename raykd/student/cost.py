"""What a student shape costs to serve, measured once per shape on this machine and cached.

Latency depends on the shape, not on the weights, so every shape of a search is measured before its first
trial, on a model of that shape with random weights, while the cores are otherwise idle: a measurement taken
while trials share the cores is noise. Each shape gets batch-1 latency (p50, p95) and batch-32 throughput in
PyTorch fp32 and ONNX Runtime fp32 (raykd.artifacts.deploy times both, as it times the exported student), at
the serving thread count and one sequence length, plus parameters and FLOPs.

Cached in `<cache_dir>/latency/<key>.json`, the key covering the shape's whole config, the sequence length, the
threads, the CPU's name and the runtimes' versions: another machine, or a new onnxruntime, measures again.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np
import psutil
import torch
from transformers import AutoModelForSequenceClassification

from raykd import families, files
from raykd.artifacts import deploy
from raykd.student.shape import Shape

BACKENDS = ("onnx", "pytorch")
SINGLE_RUNS = 30  # batch-1 calls timed per shape and backend (after 2 warm-up calls)
BATCHES_OF_32 = 3
_NOT_COMPUTE = {"id2label", "label2id", "architectures", "problem_type", "transformers_version", "name_or_path",
                "dtype", "torch_dtype", "finetuning_task"}


def flops(shape: Shape, seq_length: int, num_labels: int = 2) -> int:
    """Matmul FLOPs (2 per multiply-add) of one example of `seq_length` tokens through a BERT-layout classifier of
    `shape` (D = hidden, F = ffn, S = seq_length): per layer 8 S D^2 (query, key, value, output projections; the
    attention's inner width is D), 4 S^2 D (scores and context) and 4 S D F (the FFN); then the pooler 2 D^2 and
    the classifier 2 D C. Embedding lookups, softmax and LayerNorm are left out (a few percent)."""
    s, d, f = seq_length, shape.hidden, shape.ffn
    return shape.layers * (8 * s * d * d + 4 * s * s * d + 4 * s * d * f) + 2 * d * d + 2 * d * num_labels


def model_of(shape: Shape, teacher_config):
    """A classifier of `shape` in the teacher's family with random weights (eval mode, sdpa attention as served)."""
    config = families.reshaped(teacher_config, shape.layers, shape.hidden, shape.ffn)
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(config).eval()


def inputs(config, seq_length: int, batch: int) -> dict[str, np.ndarray]:
    """Model inputs [batch, seq_length] int64 of in-vocabulary ids: input_ids, attention_mask (all real tokens) and,
    when the family has two token types, token_type_ids (zeros)."""
    rng = np.random.default_rng(0)
    ids = rng.integers(min(1000, config.vocab_size - 1), config.vocab_size, size=(batch, seq_length), dtype=np.int64)
    out = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    if families.has_token_types(config):
        out["token_type_ids"] = np.zeros_like(ids)
    return out


def _key(shape: Shape, teacher_config, seq_length: int, threads: int) -> str:
    import onnxruntime

    # Names, labels and provenance do not change the compute: a fine-tuned teacher shares its base's measurements.
    student_config = families.reshaped(teacher_config, shape.layers, shape.hidden, shape.ffn)
    model_config = {k: v for k, v in student_config.to_dict().items() if k not in _NOT_COMPUTE and not k.startswith("_")}
    text = json.dumps({"config": model_config, "seq_length": seq_length, "threads": threads, "cpu": deploy.cpu_name(),
                       "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
                       "runs": [SINGLE_RUNS, BATCHES_OF_32]}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


# Share of the machine's CPU time other processes may use, just before a shape is timed, for its latency to count
# as measured on idle cores. Measured here: a CI run sharing the 2 cores made latencies up to 9x the idle ones.
BUSY_PERCENT = 25.0


def measure_shape(shape: Shape, teacher_config, seq_length: int, threads: int) -> dict:
    """One shape's cost, measured now: {"shape", "params", "flops", "seq_length", "threads", "machine",
    "busy_percent" (the machine's CPU use by others in the 0.3 s before timing, psutil), "pytorch": {"p50_ms",
    "p95_ms", "examples_per_s"}, "onnx": {...}}. Raises RaykdError when the ONNX export fails."""
    busy = psutil.cpu_percent(interval=0.3)  # nothing of ours runs in this window
    model = model_of(shape, teacher_config)
    single = [inputs(model.config, seq_length, 1)] * SINGLE_RUNS
    grouped = [inputs(model.config, seq_length, 32)] * BATCHES_OF_32
    record = {"shape": shape.name, "params": sum(p.numel() for p in model.parameters()),
              "flops": flops(shape, seq_length, model.config.num_labels), "seq_length": seq_length, "threads": threads,
              "machine": deploy.machine(), "busy_percent": busy}
    with tempfile.TemporaryDirectory(prefix="raykd-latency-") as scratch:
        model.save_pretrained(scratch)
        record["pytorch"] = deploy.time_model(deploy.TorchModel(Path(scratch), threads), single, grouped)
        path = deploy.export_model_onnx(model, {k: torch.from_numpy(v) for k, v in inputs(model.config, 8, 2).items()},
                                        Path(scratch) / "model.onnx", shape.name)
        record["onnx"] = deploy.time_model(deploy.OnnxModel(path, threads), single, grouped)
    return record


def measure(shapes: list[Shape], teacher_config, seq_length: int, threads: int, cache_dir: Path,
            progress=None) -> dict[str, dict]:
    """The cost of every shape (measure_shape), from the cache where it holds the shape and measured (and cached)
    otherwise; `progress(text)` is told of each measurement. Returns {shape name: record}."""
    folder = Path(cache_dir) / "latency"
    folder.mkdir(parents=True, exist_ok=True)
    costs = {}
    for i, shape in enumerate(shapes):
        path = folder / f"{_key(shape, teacher_config, seq_length, threads)}.json"
        if path.is_file():
            costs[shape.name] = json.loads(path.read_text())
            continue
        if progress:
            progress(f"measuring student shape {shape.name} ({i + 1} of {len(shapes)}): PyTorch and ONNX Runtime, "
                     f"{seq_length} tokens, {threads} thread(s)")
        costs[shape.name] = measure_shape(shape, teacher_config, seq_length, threads)
        files.atomic_json(path, costs[shape.name])
    busy = {n: c["busy_percent"] for n, c in costs.items() if c.get("busy_percent", 0) > BUSY_PERCENT}
    if busy and progress:
        worst = max(busy, key=busy.get)
        progress(f"caution: {len(busy)} of {len(costs)} shapes were timed while other processes used up to "
                 f"{busy[worst]:.0f}% of the CPUs ({worst}): their latencies may be several times the idle ones; "
                 f"delete {folder} and run again with the cores idle, or measure first with `bench --sections shapes`")
    return costs


def latency_ms(cost: dict, backend: str) -> float:
    """A shape's batch-1 p50 latency in ms on `backend` (onnx or pytorch)."""
    return float(cost[backend]["p50_ms"])
