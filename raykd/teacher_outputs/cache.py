"""The teacher's outputs for a training set, computed once and read by every worker.

The teacher is frozen and in eval mode, so its outputs for an example never change: dropout, data
order and batching do not matter. They are stored per example at the example's true length
(no padding), attention maps and hidden states in fp16:

  logits         [N, C] float32
  cls            [N, K, D] float16              [CLS] vector of the K stored teacher layers
  attentions     flat float16, example i holds [K, H, n_i, n_i] at att_offsets[i]
  hidden_states  flat float16 [sum n_i, K, D], example i's tokens at tok_offsets[i]
  cls_layers, att_layers, hid_layers   int64 [K]: which teacher layers (1-based) are stored

Only the teacher layers a layer map can match are stored (`layers`; all 1..T when not given): a
6 -> 3 map on layers 2, 4, 6 needs half of a 6-layer teacher's attention maps, and a 12 -> 6 BERT-base
map half of its 12.

`TeacherOutputs.batch` gathers a batch's rows for the teacher layers a layer map needs and pads them
to the batch's length, so the losses see exactly what a live teacher forward pass would give.
`LiveTeacher.batch` gives the same by running the teacher at every batch, as other toolkits do: the
benchmark's baseline, and the reference the cache is tested against.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

FIELDS = ("logits", "cls", "attentions", "hidden_states")
LAYER_ARRAYS = {"cls": "cls_layers", "attentions": "att_layers", "hidden_states": "hid_layers"}


def estimate_bytes(config, lengths, fields, layers) -> dict[str, int]:
    """Bytes each field takes on disk for examples of `lengths` tokens (the teacher's `config`: heads,
    width, labels), storing `layers` teacher layers; what `compute_outputs` would write."""
    lengths = np.asarray(lengths, dtype=np.int64)
    k, heads, width = len(layers), config.num_attention_heads, config.hidden_size
    sizes = {"logits": 4 * len(lengths) * config.num_labels, "cls": 2 * len(lengths) * k * width,
             "attentions": 2 * k * heads * int((lengths ** 2).sum()) + 8 * (len(lengths) + 1),
             "hidden_states": 2 * int(lengths.sum()) * k * width + 8 * (len(lengths) + 1)}
    return {f: sizes[f] for f in fields}


@torch.no_grad()
def compute_outputs(teacher, input_ids: list[list[int]], token_type_ids: list[list[int]] | None,
                    fields: set[str], batch_size: int = 64, pad_id: int = 0,
                    allocate=None, progress=None, layers=None) -> dict[str, np.ndarray]:
    """The arrays above for `fields`, for the teacher layers `layers` (1-based; default all).
    `allocate(name, shape, dtype)` makes each array (default: in RAM; raykd.teacher_outputs.disk_cache passes
    memory-mapped files); `progress` is a tqdm-like class. Raises ValueError for an unknown field or
    a layer outside 1..T."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown teacher output(s) {sorted(unknown)}")
    allocate = allocate or (lambda name, shape, dtype: np.zeros(shape, dtype))

    def array(name, shape, dtype, values=None):
        """Allocate `out[name]` and fill it with `values` when given."""
        out[name] = allocate(name, shape, dtype)
        if values is not None:
            out[name][:] = values

    lengths = np.array([len(x) for x in input_ids], dtype=np.int64)
    n, cfg = len(lengths), teacher.config
    heads, width = cfg.num_attention_heads, cfg.hidden_size
    layers = sorted(set(layers or range(1, cfg.num_hidden_layers + 1)))
    if not 1 <= layers[0] <= layers[-1] <= cfg.num_hidden_layers:
        raise ValueError(f"teacher layers {layers} outside 1..{cfg.num_hidden_layers}")
    k = len(layers)
    out = {}
    array("lengths", (n,), np.int64, lengths)
    for field in set(fields) & set(LAYER_ARRAYS):
        array(LAYER_ARRAYS[field], (k,), np.int64, np.asarray(layers))
    if "logits" in fields:
        array("logits", (n, cfg.num_labels), np.float32)
    if "cls" in fields:
        array("cls", (n, k, width), np.float16)
    if "attentions" in fields:
        sizes = k * heads * lengths ** 2
        array("att_offsets", (n + 1,), np.int64, np.concatenate([[0], np.cumsum(sizes)]))
        array("attentions", (int(sizes.sum()),), np.float16)
    if "hidden_states" in fields:
        array("tok_offsets", (n + 1,), np.int64, np.concatenate([[0], np.cumsum(lengths)]))
        array("hidden_states", (int(lengths.sum()), k, width), np.float16)
    bar = progress(total=n, desc="teacher outputs", unit="example") if progress else None
    want_hidden = bool({"cls", "hidden_states"} & fields)
    order = np.argsort(lengths, kind="stable")  # similar lengths together: little padding to compute
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        batch = _pad([input_ids[i] for i in idx], pad_id)
        types = _pad([token_type_ids[i] for i in idx], 0) if token_type_ids else None
        result = teacher(input_ids=batch, attention_mask=_real(idx, lengths, batch).long(),
                         token_type_ids=types, output_attentions="attentions" in fields,
                         output_hidden_states=want_hidden)
        for b, i in enumerate(idx):
            m = lengths[i]
            if "logits" in fields:
                out["logits"][i] = result.logits[b].float().numpy()
            if "cls" in fields:
                out["cls"][i] = torch.stack([result.hidden_states[t][b, 0] for t in layers]).numpy()
            if "attentions" in fields:
                maps = torch.stack([result.attentions[t - 1][b, :, :m, :m] for t in layers])
                out["attentions"][out["att_offsets"][i]:out["att_offsets"][i + 1]] = maps.reshape(-1).numpy()
            if "hidden_states" in fields:
                states = torch.stack([result.hidden_states[t][b, :m] for t in layers], dim=1)
                out["hidden_states"][out["tok_offsets"][i]:out["tok_offsets"][i + 1]] = states.numpy()
        if bar is not None:
            bar.update(len(idx))
    if bar is not None:
        bar.close()
    return out


def _real(idx, lengths, batch):
    positions = torch.arange(batch.shape[1])[None, :]
    return positions < torch.as_tensor(lengths[idx])[:, None]


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    """[len(rows), longest row] int64, right-padded with `value` (the teacher's own inputs, which no
    tokenizer travels with)."""
    return pad_sequence([torch.as_tensor(r, dtype=torch.long) for r in rows], batch_first=True, padding_value=value)


class TeacherOutputs:
    """Read-side view of `compute_outputs`' arrays (zero-copy when they come from Ray's object store),
    for a teacher of `num_layers` layers and `num_heads` heads."""

    def __init__(self, arrays: dict[str, np.ndarray], num_layers: int, num_heads: int):
        self.arrays, self.num_layers, self.num_heads = arrays, num_layers, num_heads

    def _positions(self, field: str, teacher_layers) -> list[int]:
        stored = [int(x) for x in self.arrays[LAYER_ARRAYS[field]]]
        absent = sorted(set(teacher_layers) - set(stored))
        if absent:
            raise KeyError(f"teacher layer(s) {absent} of {field} are not in the cache (it holds {stored})")
        return [stored.index(t) for t in teacher_layers]

    def batch(self, indices, teacher_layers: tuple[int, ...], length: int) -> dict[str, torch.Tensor]:
        """Padded tensors for the B examples `indices` at `length` tokens, one slice per teacher layer of
        `teacher_layers` (1-based, K of them): logits [B, C] and cls [B, K, D] in fp32, attentions
        [B, K, H, L, L] and hidden_states [B, K, L, D] in fp16 as stored (the losses cast them up; filled in
        fp32 they made collation 4x slower, results/epoch-speed.md); padding is
        zero. Fields not stored are absent. Raises KeyError when a layer was not stored."""
        a, idx = self.arrays, np.asarray(indices)
        out = {}
        if "logits" in a:
            out["logits"] = torch.from_numpy(a["logits"][idx].copy())
        if "cls" in a:
            out["cls"] = torch.from_numpy(a["cls"][idx][:, self._positions("cls", teacher_layers)].astype(np.float32))
        if "attentions" in a:
            sel, k = self._positions("attentions", teacher_layers), len(a["att_layers"])
            att = np.zeros((len(idx), len(sel), self.num_heads, length, length), np.float16)
            for b, i in enumerate(idx):
                m = a["lengths"][i]
                maps = a["attentions"][a["att_offsets"][i]:a["att_offsets"][i + 1]]
                att[b, :, :, :m, :m] = maps.reshape(k, self.num_heads, m, m)[sel]
            out["attentions"] = torch.from_numpy(att)
        if "hidden_states" in a:
            sel = self._positions("hidden_states", teacher_layers)
            hid = np.zeros((len(idx), len(sel), length, a["hidden_states"].shape[-1]), np.float16)
            for b, i in enumerate(idx):
                m = a["lengths"][i]
                tokens = a["hidden_states"][a["tok_offsets"][i]:a["tok_offsets"][i + 1]]
                hid[b, :, :m] = tokens[:, sel].transpose(1, 0, 2)
            out["hidden_states"] = torch.from_numpy(hid)
        return out


class LiveTeacher:
    """The view of `TeacherOutputs`, computed by a teacher forward pass for every batch: `columns` are the
    tokenized train set (raykd.data.as_columns), `fields` the teacher outputs to compute."""

    def __init__(self, teacher, columns: dict[str, list], fields: set[str], pad_id: int = 0, autocast=None):
        self.teacher, self.columns, self.fields, self.pad_id = teacher.eval(), columns, set(fields), pad_id
        self.autocast = autocast or contextlib.nullcontext()
        self.device = next(teacher.parameters()).device

    @torch.no_grad()
    def batch(self, indices, teacher_layers: tuple[int, ...], length: int) -> dict[str, torch.Tensor]:
        """The cached view's tensors, computed on the teacher's device under `autocast`, returned as
        fp32 on the CPU, in the cache's shapes (the data loader moves batches to the
        worker's device)."""
        lengths = np.array([len(self.columns["input_ids"][i]) for i in indices])
        ids = _pad([self.columns["input_ids"][i] for i in indices], self.pad_id)
        types = _pad([self.columns["token_type_ids"][i] for i in indices], 0) if "token_type_ids" in self.columns else None
        real = _real(np.arange(len(indices)), lengths, ids)
        with self.autocast:
            result = self.teacher(input_ids=ids.to(self.device), attention_mask=real.long().to(self.device),
                                  token_type_ids=None if types is None else types.to(self.device),
                                  output_attentions="attentions" in self.fields,
                                  output_hidden_states=bool({"cls", "hidden_states"} & self.fields))
        real = real.float()
        out = {}
        if "logits" in self.fields:
            out["logits"] = result.logits.float().cpu()
        if "cls" in self.fields:
            out["cls"] = torch.stack([result.hidden_states[s][:, 0] for s in teacher_layers], 1).float().cpu()
        if "attentions" in self.fields:  # padded rows and columns are zero in the cache too
            mask = (real[:, :, None] * real[:, None, :])[:, None, None]
            out["attentions"] = torch.stack([result.attentions[s - 1] for s in teacher_layers], 1).float().cpu() * mask
        if "hidden_states" in self.fields:
            out["hidden_states"] = (torch.stack([result.hidden_states[s] for s in teacher_layers], 1).float().cpu()
                                    * real[:, None, :, None])
        assert ids.shape[1] == length, "the collator and the teacher pad to the same length"
        return out


class MergedTeacher:
    """Several views merged: the cached fields from a `TeacherOutputs`, the others from a `LiveTeacher`
    (the plan when the attention maps would exceed --teacher-cache-disk)."""

    def __init__(self, *views):
        self.views = views

    def batch(self, indices, teacher_layers: tuple[int, ...], length: int) -> dict[str, torch.Tensor]:
        """Every view's `batch` for the same arguments, merged (a later view's field replaces an earlier one's)."""
        out = {}
        for view in self.views:
            out.update(view.batch(indices, teacher_layers, length))
        return out
