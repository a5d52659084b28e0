"""Serving formats of a classifier folder and what they cost to run.

- ONNX (`onnx/model.onnx`): one file, inputs `input_ids`, `attention_mask` (and `token_type_ids` where
  the tokenizer makes them) of shape [batch, sequence], both axes dynamic; output `logits` [batch, labels].
- int8 ONNX (`onnx/model_quantized.onnx`): ONNX Runtime's dynamic quantization of that file (int8
  weights, activations quantized on the fly), the Hub's usual file name for it.
- Each is checked on the dev set before it counts as exported: its logits and dev metric through ONNX
  Runtime against the PyTorch model's (fp32 ONNX within LOGIT_TOLERANCE and METRIC_TOLERANCE; int8 is
  reported with its drop).
- Latency of PyTorch fp32, ONNX and ONNX int8 at batch 1 (p50, p95 over real dev examples) and batch 32
  (examples/s), with 1 thread and all threads, with the machine named.

The exporter is torch's own, `torch.onnx.export(..., dynamo=True)` (torch.export based, the default since
torch 2.9). Optimum's exporter (optimum-onnx 0.1.0) pins transformers < 4.58, which would downgrade our
transformers 5, and the legacy TorchScript exporter (dynamo=False) bakes the traced example's padding
branch of transformers 5's mask code into the graph (logits off by ~1e-2 on other shapes, measured); the
dynamo export matches PyTorch to ~1e-8 on shapes other than the example's.
"""

from __future__ import annotations

import contextlib
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import psutil
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from raykd import files, metrics
from raykd.errors import RaykdError
from raykd.tasks import Task

FORMATS = ("hf", "onnx", "onnx-int8")
ONNX_FILE = Path("onnx") / "model.onnx"
INT8_FILE = Path("onnx") / "model_quantized.onnx"
RECORD = "deploy.json"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# fp32 ONNX against PyTorch fp32 on the same dev batches: the largest |logit difference| and the dev metric's.
LOGIT_TOLERANCE = 1e-3
METRIC_TOLERANCE = 1e-3
MiB = 2**20


def parse_formats(text: str) -> tuple[str, ...]:
    """`hf,onnx,onnx-int8` -> the formats in FORMATS order. `hf` is always written (the folder's config and
    tokenizer serve the ONNX files too) and `onnx-int8` needs `onnx`, so both are added when missing.

    Raises RaykdError for an unknown or empty name."""
    names = [n.strip().lower() for n in str(text).split(",")]
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise RaykdError(f"unknown export format(s) {', '.join(repr(n) for n in unknown)}; choose from {','.join(FORMATS)}, "
                         "comma-separated (e.g. hf,onnx,onnx-int8)")
    wanted = set(names) | {"hf"} | ({"onnx"} if "onnx-int8" in names else set())
    return tuple(f for f in FORMATS if f in wanted)


def label_maps(task: Task) -> tuple[dict[int, str], dict[str, int]]:
    """(id2label, label2id) a Hub user expects: the Hub's class names where GLUE's files use digits (SST-2:
    negative/positive), else the task's labels (RTE: entailment/not_entailment); `score` for regression."""
    names = ("score",) if task.is_regression else (task.label_names or task.labels)
    return dict(enumerate(names)), {name: i for i, name in enumerate(names)}


def set_label_names(folder: Path, task: Task) -> None:
    """Rewrite the folder's config.json with the task's label names, so `pipeline(...)` returns them."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder)
    config.id2label, config.label2id = label_maps(task)
    config.save_pretrained(folder)


def input_names(tokenizer) -> list[str]:
    """The model's inputs in INPUTS order: ids and mask always, token types where the tokenizer makes them."""
    return [n for n in INPUTS if n != "token_type_ids" or n in tokenizer.model_input_names]


class _Logits(torch.nn.Module):
    """Positional inputs -> logits: the signature torch.onnx.export and ONNX Runtime see."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        """Logits [batch, num_labels] of inputs [batch, sequence]."""
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits


def export_onnx(folder: Path, path: Path) -> Path:
    """Export the classifier in `folder` (a save_pretrained folder with its tokenizer) to one ONNX file at
    `path`: inputs [batch, sequence] int64, both axes dynamic; output `logits` [batch, num_labels] fp32.
    Weights are stored inside the file (models up to 2 GB). Raises RaykdError when the export fails."""
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    names = input_names(tokenizer)  # _Logits' positional order
    # Two rows of different lengths: padding is in the traced example, and batch/sequence are not 1 (which
    # torch.export would specialise).
    example = tokenizer(["a short example", "a somewhat longer example sentence with more words in it"],
                        padding=True, return_tensors="pt")
    return export_model_onnx(model, {n: example[n] for n in names}, path, Path(folder).name)


def export_model_onnx(model, example: dict[str, torch.Tensor], path: Path, name: str = "the model") -> Path:
    """Export a classifier (eval mode) to one ONNX file at `path`, traced on `example` (input name -> int64
    [batch, sequence], in _Logits' positional order; neither axis 1), both axes dynamic. Raises RaykdError when
    the export fails."""
    names = list(example)
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(open(os.devnull, "w")):
            warnings.simplefilter("ignore")
            torch.onnx.export(_Logits(model), tuple(example[n] for n in names), str(path), input_names=names,
                              output_names=["logits"], dynamic_shapes={n: {0: batch, 1: sequence} for n in names},
                              dynamo=True, external_data=False, verbose=False)
    except Exception as err:  # the exporter raises many kinds
        raise RaykdError(f"ONNX export of {name} failed ({type(err).__name__}: "
                         f"{(str(err).strip().splitlines() or [''])[0][:300]}); export with --format hf only") from None
    return path


def quantize_int8(onnx_path: Path, out: Path) -> Path:
    """ONNX Runtime's dynamic int8 quantization of `onnx_path` (after its recommended pre-processing:
    symbolic shape inference and graph optimisation) to `out`. Raises RaykdError when it fails."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR  # "consider pre-processing" and per-node notes
    try:
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            prepared = Path(tmp).resolve() / "prepared.onnx"
            # symbolic shape inference cannot follow the dynamo graph's dynamic dims; ONNX's own shape inference can
            # (it writes temporary files to the working directory: run it inside the temporary folder)
            here = os.getcwd()
            os.chdir(tmp)
            try:
                quant_pre_process(str(Path(onnx_path).resolve()), str(prepared), skip_symbolic_shape=True)
            finally:
                os.chdir(here)
            quantize_dynamic(str(prepared), str(out), weight_type=QuantType.QInt8)
    except Exception as err:
        raise RaykdError(f"int8 quantization of {onnx_path.name} failed ({type(err).__name__}: {err}); export without onnx-int8") from None
    finally:
        root.level = level
    return out


# Running a model --------------------------------------------------------------------------------------

class TorchModel:
    """A save_pretrained classifier in fp32 (sdpa attention, as users load it): batch -> logits [B, C]."""

    kind = "PyTorch fp32"

    def __init__(self, folder: Path, threads: int | None = None):
        self.model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        self.threads = threads

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            return self.model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.float().numpy()

    @contextlib.contextmanager
    def threading(self):
        """Context: torch runs with `threads` threads (unchanged when None), restored after."""
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads or before)
        try:
            yield
        finally:
            torch.set_num_threads(before)


class OnnxModel:
    """An ONNX file on ONNX Runtime's CPU provider with `threads` intra-op threads: batch -> logits [B, C]."""

    def __init__(self, path: Path, threads: int | None = None, kind: str = "ONNX fp32"):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: ONNX Runtime's default, all cores
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]
        self.kind = kind

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(["logits"], {n: batch[n] for n in self.names})[0]

    @contextlib.contextmanager
    def threading(self):
        """Context that changes nothing: the session's threads were set when it was made."""
        yield


def batches(tokenizer, columns: dict[str, list], size: int, limit: int | None = None) -> list[dict[str, np.ndarray]]:
    """Tokenized dev rows (raykd.data.as_columns) in file order as padded int64 arrays [size, longest in the
    batch]; `limit` rows at most."""
    n = len(columns["input_ids"]) if limit is None else min(limit, len(columns["input_ids"]))
    names = input_names(tokenizer)
    out = []
    for start in range(0, n, size):
        rows = [{k: columns[k][i] for k in ("input_ids", "token_type_ids") if k in columns and k in names}
                for i in range(start, min(start + size, n))]
        padded = tokenizer.pad(rows, return_tensors="np")
        arrays = {k: padded[k].astype(np.int64) for k in names if k in padded}
        arrays.setdefault("attention_mask", np.ones_like(arrays["input_ids"]))
        if "token_type_ids" in names:  # tokenized without them: one segment
            arrays.setdefault("token_type_ids", np.zeros_like(arrays["input_ids"]))
        out.append({k: arrays[k] for k in names})
    return out


def predict(model, inputs: list[dict[str, np.ndarray]]) -> np.ndarray:
    """Logits [N, C] of every batch, concatenated."""
    with model.threading():
        return np.concatenate([model(b) for b in inputs])


def check_exports(folder: Path, task: Task, columns: dict[str, list], formats: tuple[str, ...]) -> dict:
    """Recompute the dev metric of `folder` through PyTorch fp32 and through each ONNX file in it, on the
    same batches of 32 dev rows.

    Returns {"metric": "dev_<main>", "examples": N, "<format>": {"value": metric, "max_logit_diff": float,
    "drop": reference - value}} (hf: the reference). Raises RaykdError when the fp32 ONNX file differs by more
    than LOGIT_TOLERANCE in a logit or METRIC_TOLERANCE in the metric, or a format gives non-finite logits.
    """
    tokenizer = AutoTokenizer.from_pretrained(folder)
    inputs = batches(tokenizer, columns, 32)
    labels = np.asarray(columns["labels"])
    name = f"dev_{task.main_metric}"
    reference = predict(TorchModel(folder), inputs)
    value = metrics.compute(task, reference, labels)[name]
    report = {"metric": name, "examples": len(labels), "hf": {"value": value, "max_logit_diff": 0.0, "drop": 0.0}}
    files = {"onnx": ONNX_FILE, "onnx-int8": INT8_FILE}
    for fmt in (f for f in formats if f in files):
        logits = predict(OnnxModel(folder / files[fmt]), inputs)
        if not np.isfinite(logits).all():
            raise RaykdError(f"the {fmt} export gives non-finite logits on the dev set; export with --format hf")
        diff = float(np.abs(logits - reference).max())
        got = metrics.compute(task, logits, labels)[name]
        report[fmt] = {"value": got, "max_logit_diff": diff, "drop": value - got}
        if fmt == "onnx" and (diff > LOGIT_TOLERANCE or abs(got - value) > METRIC_TOLERANCE):
            raise RaykdError(f"the ONNX export does not match the PyTorch model on the dev set ({name} {got:.4f} against "
                             f"{value:.4f}, largest logit difference {diff:.2g}; tolerances {METRIC_TOLERANCE:g} and "
                             f"{LOGIT_TOLERANCE:g}); export with --format hf and report the model's architecture")
    return report


def export(folder: Path, task: Task, formats: tuple[str, ...], columns: dict[str, list]) -> dict:
    """Add the ONNX formats in `formats` to the save_pretrained folder `folder`, set its label names, and
    check every format on the dev `columns` (check_exports); returns that check. Raises RaykdError when an
    export fails or does not match."""
    set_label_names(folder, task)
    if "onnx" in formats:
        export_onnx(folder, folder / ONNX_FILE)
    if "onnx-int8" in formats:
        quantize_int8(folder / ONNX_FILE, folder / INT8_FILE)
    return check_exports(folder, task, columns, formats)


# Latency ------------------------------------------------------------------------------------------------

def cpu_name() -> str:
    """The CPU's model name: /proc/cpuinfo on Linux (neither platform nor psutil names it), else platform's."""
    with contextlib.suppress(OSError, StopIteration):
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    return platform.processor() or platform.machine()


def machine(gpus_per_worker: float = 0.0) -> str:
    """One line naming the CPU, its cores and threads, memory, the GPU that training runs used (`gpus_per_worker`
    above 0 and CUDA present; latency is always measured on the CPU) and the runtimes' versions."""
    from importlib.metadata import version

    gpu = (f"{torch.cuda.get_device_name(0)} ({gpus_per_worker:g} per worker) used by the training runs"
           if gpus_per_worker and torch.cuda.is_available() else "no GPU used")
    runtimes = ", ".join(f"{name} {version(name)}" for name in ("torch", "transformers", "ray", "onnxruntime"))
    return (f"{cpu_name()}, {psutil.cpu_count(logical=False) or '?'} cores / {all_threads()} threads usable, "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, {gpu}; Python {platform.python_version()}, {runtimes}")


def all_threads() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def disk_bytes(folder: Path, fmt: str) -> int:
    """Bytes of a format's weights: the folder's *.safetensors (hf) or the ONNX file."""
    if fmt == "hf":
        return sum(p.stat().st_size for p in Path(folder).glob("*.safetensors"))
    return (Path(folder) / {"onnx": ONNX_FILE, "onnx-int8": INT8_FILE}[fmt]).stat().st_size


def time_model(model, single: list[dict], grouped: list[dict], warmup: int = 2) -> dict:
    """Batch-1 latency p50 and p95 (ms) over `single` (one example each) and batch throughput (examples/s)
    over `grouped`; `warmup` calls of each size first, not counted."""
    with model.threading():
        for b in single[:warmup] + grouped[:warmup]:
            model(b)
        times = []
        for b in single:
            started = time.perf_counter()
            model(b)
            times.append(time.perf_counter() - started)
        started = time.perf_counter()
        for b in grouped:
            model(b)
        seconds = time.perf_counter() - started
    examples = sum(len(b["input_ids"]) for b in grouped)
    return {"p50_ms": 1000 * float(np.percentile(times, 50)), "p95_ms": 1000 * float(np.percentile(times, 95)),
            "examples_per_s": examples / seconds}


def measure(models: dict[str, Path], columns: dict[str, list], examples: int = 100, batches_of_32: int | None = None,
            threads: tuple[int, ...] | None = None) -> dict:
    """Latency and throughput of each {"teacher": folder, "student": folder}, in each format the folder holds
    (PyTorch fp32 always; ONNX and int8 when onnx/ has them), at 1 and all threads.

    `examples` dev rows at batch 1 (p50/p95 in ms), `batches_of_32` batches of 32 rows (examples/s; by default
    as many as `examples` rows fill, at least 1 and at most 4: 4 for the default 100). Returns
    {"machine", "examples", "batch_32_examples", "rows": [{"model", "format", "threads", "parameters",
    "disk_mib", "p50_ms", "p95_ms", "examples_per_s"}]}."""
    threads = threads or tuple(sorted({1, all_threads()}))
    batches_of_32 = batches_of_32 or min(4, max(1, -(-examples // 32)))
    rows = []
    for label, folder in models.items():
        folder = Path(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        single = batches(tokenizer, columns, 1, examples)
        grouped = batches(tokenizer, columns, 32, 32 * batches_of_32)
        parameters = sum(p.numel() for p in TorchModel(folder).model.parameters())
        available = [f for f in FORMATS if f == "hf" or (folder / {"onnx": ONNX_FILE, "onnx-int8": INT8_FILE}[f]).is_file()]
        for fmt in available:
            for n in threads:
                model = TorchModel(folder, n) if fmt == "hf" else OnnxModel(
                    folder / {"onnx": ONNX_FILE, "onnx-int8": INT8_FILE}[fmt], n, kind=FORMAT_NAMES[fmt])
                rows.append({"model": label, "format": FORMAT_NAMES[fmt], "threads": n, "parameters": parameters,
                             "disk_mib": disk_bytes(folder, fmt) / MiB, **time_model(model, single, grouped)})
    return {"machine": machine(), "examples": len(single), "batch_32_examples": sum(len(b["input_ids"]) for b in grouped),
            "rows": rows}


FORMAT_NAMES = {"hf": "PyTorch fp32", "onnx": "ONNX fp32", "onnx-int8": "ONNX int8"}


def latency_table(measured: dict) -> list[str]:
    """Markdown lines: the machine, then one row per model, format and thread count."""
    lines = [f"Machine: {measured['machine']}. Batch 1: {measured['examples']} dev examples in file order (real "
             f"lengths); batch 32: {measured['batch_32_examples']} dev examples padded per batch. CPU, ONNX Runtime's "
             "CPU provider.", "",
             "| model | format | parameters | size on disk (MiB) | threads | batch 1 p50 (ms) | batch 1 p95 (ms) "
             "| batch 32 (examples/s) |", "|---|---|---|---|---|---|---|---|"]
    for r in measured["rows"]:
        lines.append(f"| {r['model']} | {r['format']} | {r['parameters']:,} | {r['disk_mib']:.1f} | {r['threads']} | "
                     f"{r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['examples_per_s']:.0f} |")
    return lines


def teacher_copy(teacher_dir: Path, scratch: Path, formats: tuple[str, ...]) -> Path:
    """The teacher's weights, config and tokenizer copied to `scratch` with the ONNX formats of `formats`
    (for its latency rows; never shipped). Raises RaykdError when an export fails."""
    import shutil

    scratch.mkdir(parents=True, exist_ok=True)
    for f in Path(teacher_dir).iterdir():
        if f.is_file() and f.suffix in (".json", ".safetensors", ".txt", ".model") and f.name != "teacher.json":
            shutil.copy2(f, scratch / f.name)
    if "onnx" in formats:
        export_onnx(scratch, scratch / ONNX_FILE)
    if "onnx-int8" in formats:
        quantize_int8(scratch / ONNX_FILE, scratch / INT8_FILE)
    return scratch


def write_record(folder: Path, record: dict) -> None:
    """`deploy.json` in the folder: formats, their dev check and the latency measurements."""
    files.atomic_json(Path(folder) / RECORD, record)
