"""Narrower students: which FFN neurons, attention channels and hidden channels of the teacher a student
keeps, ranked by their activations on a few training batches.

Activation-based importance as in Minitron (Muralidharan et al., "Compact Language Models via Pruning and
Knowledge Distillation", NeurIPS 2024, sec. 2.2): a channel's importance is the mean |activation| over an
example's real tokens, aggregated over examples by the L2 norm (their "batch=L2, seq=mean"). Measured once per
search on the teacher (`measure`), then every width a space asks for is the top-k of the same ranking (`keep`),
so a narrower student's channels are a subset of a wider one's.

    hidden     [D]        the residual stream: every LayerNorm output (embeddings and both of each block), summed
    ffn        [T, I]     each block's intermediate activation (after GELU)
    query_key  [T, H, d]  per head, mean|q_c| * mean|k_c|: channel c's share of the attention logits q.k
    value      [T, H, d]  per head, mean|v_c|: channel c's share of the context vector

A BERT config ties the attention's inner width to `hidden_size` (head size = hidden_size / heads) and
transformers 5 has no head pruning (../shared/docs/platform.md), so a student of hidden width D' keeps every
head and D'/H channels of each, ranked separately for the query-key pair and for the value path. A kept
channel is the same teacher channel everywhere it appears, so the student stays a plain model of the
teacher's family that `from_pretrained` loads and ONNX exports. At full width every ranking keeps every
channel in order: the student is the teacher's layers exactly (tests/test_student_shape.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from raykd import families
from raykd.errors import RaykdError


def widths_known() -> str:
    """The families whose blocks have BERT's module names (attention.self.query ..., intermediate.dense,
    output.dense): the only ones `narrow` knows how to cut. Others keep their width (raykd.method.plan says so
    before any compute)."""
    return ", ".join(f.name for f in families.FAMILIES if f.widths)


@dataclass(frozen=True)
class Importance:
    """Per-channel activation importance of a teacher (module docstring): hidden [D], ffn [T, I],
    query_key and value [T, H, D/H]; larger is more important. Plain numpy, so it travels in a job."""
    hidden: np.ndarray
    ffn: np.ndarray
    query_key: np.ndarray
    value: np.ndarray


@dataclass(frozen=True)
class Kept:
    """The teacher channels a student keeps, sorted: hidden [D'] (every embedding, residual and LayerNorm axis),
    and per student layer k (0-based) its FFN neurons ffn[k] [F'], query/key rows query_key[k] [D'] and
    value rows value[k] [D'] (flat indices head * d_head + channel, so every head keeps D'/H channels)."""
    hidden: torch.Tensor
    ffn: tuple[torch.Tensor, ...]
    query_key: tuple[torch.Tensor, ...]
    value: tuple[torch.Tensor, ...]


def supports_widths(config) -> bool:
    """True when `config`'s family has BERT's block layout, which `narrow` cuts (raykd.families.width_axes; an
    ELECTRA with an embedding projection does not: its embeddings are narrower than its blocks)."""
    return bool(families.width_axes(config))


@torch.no_grad()
def measure(teacher, columns: dict[str, list], pad_id: int, rows: int = 256, batch_size: int = 32) -> Importance:
    """Importance of every channel of `teacher` (a BERT-layout classifier, eval mode, on the CPU) over the first
    `rows` examples of the tokenized `columns` (raykd.data.as_columns: input_ids, token_type_ids), in batches
    of `batch_size` padded with `pad_id`. 256 rows: Minitron's calibration set is 1,024 samples for LLMs; the
    rankings of a 6-layer MiniLM agree to within a few channels at 128 rows (tests measure with 64).
    Raises RaykdError for a family without BERT's block layout."""
    if not supports_widths(teacher.config):
        raise RaykdError(f"width pruning needs a BERT-layout teacher ({widths_known()}), not "
                         f"{teacher.config.model_type}; keep student_hidden_size and student_ffn_size at 0")
    base, cfg = teacher.base_model, teacher.config
    layers, heads = cfg.num_hidden_layers, cfg.num_attention_heads
    sums: dict[str, torch.Tensor] = {}
    current = {}  # the batch's real-token mask [B, L, 1], read by the hooks

    def collect(key):
        def hook(_module, _inputs, output):
            x = (output[0] if isinstance(output, tuple) else output).float().abs()
            mask = current["mask"]
            per_example = (x * mask).sum(1) / mask.sum(1)                  # [B, C]: mean over real tokens
            sums[key] = sums.get(key, 0) + per_example.pow(2).sum(0)       # L2 over examples (squared, summed)
        return hook

    hooks = [base.embeddings.LayerNorm.register_forward_hook(collect("hidden.emb"))]
    for i, block in enumerate(families.family_of(cfg).block_list(teacher)):
        hooks += [block.attention.output.LayerNorm.register_forward_hook(collect(f"hidden.att{i}")),
                  block.output.LayerNorm.register_forward_hook(collect(f"hidden.out{i}")),
                  block.intermediate.register_forward_hook(collect(f"ffn{i}")),
                  block.attention.self.query.register_forward_hook(collect(f"q{i}")),
                  block.attention.self.key.register_forward_hook(collect(f"k{i}")),
                  block.attention.self.value.register_forward_hook(collect(f"v{i}"))]
    try:
        n = min(rows, len(columns["input_ids"]))
        for start in range(0, n, batch_size):
            chunk = range(start, min(start + batch_size, n))
            ids = _pad([columns["input_ids"][i] for i in chunk], pad_id)
            mask = _pad([[1] * len(columns["input_ids"][i]) for i in chunk], 0)
            types = _pad([columns["token_type_ids"][i] for i in chunk], 0) if "token_type_ids" in columns else None
            current["mask"] = mask[..., None].float()
            teacher(input_ids=ids, attention_mask=mask, token_type_ids=types)
    finally:
        for h in hooks:
            h.remove()
    l2 = {k: v.sqrt().numpy() for k, v in sums.items()}
    hidden = sum(v for k, v in l2.items() if k.startswith("hidden."))
    per_head = lambda key: np.stack([l2[f"{key}{i}"].reshape(heads, -1) for i in range(layers)])  # noqa: E731
    return Importance(hidden=hidden, ffn=np.stack([l2[f"ffn{i}"] for i in range(layers)]),
                      query_key=per_head("q") * per_head("k"), value=per_head("v"))


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    return torch.nn.utils.rnn.pad_sequence([torch.tensor(r) for r in rows], batch_first=True, padding_value=value)


def _top(scores: np.ndarray, k: int) -> torch.Tensor:
    """The indices of the k largest scores, in ascending index order (ties: the lower index)."""
    order = np.argsort(-scores, kind="stable")[:k]
    return torch.as_tensor(np.sort(order), dtype=torch.long)


def keep(importance: Importance, source_layers: tuple[int, ...], hidden: int, ffn: int) -> Kept:
    """The channels a student of hidden width `hidden` and FFN width `ffn` keeps, its layer k copied from teacher
    layer source_layers[k] (1-based). Widths must divide evenly by the heads (raykd.method.plan checks)."""
    heads, d_head = importance.query_key.shape[1:]
    per_head = hidden // heads

    def by_head(scores):  # [H, d_head] -> flat indices, per_head channels of every head
        return torch.cat([h * d_head + _top(scores[h], per_head) for h in range(heads)])

    return Kept(hidden=_top(importance.hidden, hidden),
                ffn=tuple(_top(importance.ffn[t - 1], ffn) for t in source_layers),
                query_key=tuple(by_head(importance.query_key[t - 1]) for t in source_layers),
                value=tuple(by_head(importance.value[t - 1]) for t in source_layers))


# In a block (BERT's names): which axis of each tensor is cut by which kept set. "hidden" is Kept.hidden;
# the others are the block's own sets. A weight is [out, in]; a bias or LayerNorm vector has its out axis only.
_BLOCK_AXES = {
    r"attention\.self\.(query|key)\.weight": ("query_key", "hidden"),
    r"attention\.self\.(query|key)\.bias": ("query_key",),
    r"attention\.self\.value\.weight": ("value", "hidden"),
    r"attention\.self\.value\.bias": ("value",),
    r"attention\.output\.dense\.weight": ("hidden", "value"),
    r"intermediate\.dense\.weight": ("ffn", "hidden"),
    r"intermediate\.dense\.bias": ("ffn",),
    r"output\.dense\.weight": ("hidden", "ffn"),
    r"(attention\.output|output)\.(dense\.bias|LayerNorm\.weight|LayerNorm\.bias)": ("hidden",),
}


def narrow(state: dict[str, torch.Tensor], kept: Kept, teacher_hidden: int) -> dict[str, torch.Tensor]:
    """A full-width student's state dict cut to the kept channels. Block tensors follow _BLOCK_AXES; every other
    tensor (embeddings, pooler, classification head) has each axis of size `teacher_hidden` cut to
    Kept.hidden, which covers BERT's and RoBERTa's heads alike. Raises RaykdError for a block tensor it has no
    rule for (a family whose blocks are not BERT's)."""
    out = {}
    for name, tensor in state.items():
        block = re.search(r"encoder\.layer\.(\d+)\.(.+)$", name)
        if block is None:
            for axis, size in enumerate(tensor.shape):
                if size == teacher_hidden:
                    tensor = tensor.index_select(axis, kept.hidden)
            out[name] = tensor
            continue
        k, rest = int(block.group(1)), block.group(2)
        axes = next((a for pattern, a in _BLOCK_AXES.items() if re.fullmatch(pattern, rest)), None)
        if axes is None:
            raise RaykdError(f"cannot narrow {name}: raykd cuts the widths of BERT-layout blocks only; keep "
                             "student_hidden_size and student_ffn_size at 0 for this teacher")
        sets = {"hidden": kept.hidden, "ffn": kept.ffn[k], "query_key": kept.query_key[k], "value": kept.value[k]}
        for axis, which in enumerate(axes):
            tensor = tensor.index_select(axis, sets[which])
        out[name] = tensor
    return out
