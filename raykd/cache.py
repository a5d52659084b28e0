"""The teacher's outputs for a training set, computed once and read by every worker.

The teacher is frozen and in eval mode, so its outputs for an example never change: dropout, data
order and batching do not matter. They are stored per example at the example's true length
(no padding), attention maps and hidden states in fp16:

  logits         [N, C] float32
  cls            [N, T+1, D] float16            [CLS] vector of layers 0..T
  attentions     flat float16, example i holds [T, H, n_i, n_i] at att_offsets[i]
  hidden_states  flat float16 [sum n_i, T+1, D], example i's tokens at tok_offsets[i]

`TeacherOutputs.batch` gathers a batch's rows for the teacher layers a layer map needs and pads them
to the batch's length, so the losses see exactly what a live teacher forward pass would give.
`LiveTeacher.batch` gives the same by running the teacher at every batch, as other toolkits do: the
benchmark's baseline, and the reference the cache is tested against.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

FIELDS = ("logits", "cls", "attentions", "hidden_states")


@torch.no_grad()
def compute_outputs(teacher, input_ids: list[list[int]], token_type_ids: list[list[int]] | None,
                    fields: set[str], batch_size: int = 64, pad_id: int = 0,
                    allocate=None, progress=None) -> dict[str, np.ndarray]:
    """The arrays above for `fields`. `allocate(name, shape, dtype)` makes each array (default: in
    RAM; raykd.disk_cache passes memory-mapped files); `progress` is a tqdm-like class."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown teacher output(s) {sorted(unknown)}")
    allocate = allocate or (lambda name, shape, dtype: np.zeros(shape, dtype))

    def array(name, shape, dtype, values=None):
        out[name] = allocate(name, shape, dtype)
        if values is not None:
            out[name][:] = values

    lengths = np.array([len(x) for x in input_ids], dtype=np.int64)
    n, cfg = len(lengths), teacher.config
    layers, heads, width = cfg.num_hidden_layers, cfg.num_attention_heads, cfg.hidden_size
    out = {}
    array("lengths", (n,), np.int64, lengths)
    if "logits" in fields:
        array("logits", (n, cfg.num_labels), np.float32)
    if "cls" in fields:
        array("cls", (n, layers + 1, width), np.float16)
    if "attentions" in fields:
        sizes = layers * heads * lengths ** 2
        array("att_offsets", (n + 1,), np.int64, np.concatenate([[0], np.cumsum(sizes)]))
        array("attentions", (int(sizes.sum()),), np.float16)
    if "hidden_states" in fields:
        array("tok_offsets", (n + 1,), np.int64, np.concatenate([[0], np.cumsum(lengths)]))
        array("hidden_states", (int(lengths.sum()), layers + 1, width), np.float16)
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
                out["cls"][i] = torch.stack([h[b, 0] for h in result.hidden_states]).numpy()
            if "attentions" in fields:
                maps = torch.stack([a[b, :, :m, :m] for a in result.attentions])
                out["attentions"][out["att_offsets"][i]:out["att_offsets"][i + 1]] = maps.reshape(-1).numpy()
            if "hidden_states" in fields:
                states = torch.stack([h[b, :m] for h in result.hidden_states], dim=1)
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
    out = torch.full((len(rows), max(len(r) for r in rows)), value, dtype=torch.long)
    for b, r in enumerate(rows):
        out[b, :len(r)] = torch.as_tensor(r)
    return out


class TeacherOutputs:
    """Read-side view of `compute_outputs`' arrays (zero-copy when they come from Ray's object store)."""

    def __init__(self, arrays: dict[str, np.ndarray], num_layers: int, num_heads: int):
        self.arrays, self.num_layers, self.num_heads = arrays, num_layers, num_heads

    def batch(self, indices, teacher_layers: tuple[int, ...], length: int) -> dict[str, torch.Tensor]:
        """Padded tensors for `indices`; `teacher_layers` are 1-based. Fields not stored are absent."""
        a, idx, sel = self.arrays, np.asarray(indices), list(teacher_layers)
        out = {}
        if "logits" in a:
            out["logits"] = torch.from_numpy(a["logits"][idx].copy())
        if "cls" in a:
            out["cls"] = torch.from_numpy(a["cls"][idx][:, sel].astype(np.float32))
        if "attentions" in a:
            att = np.zeros((len(idx), len(sel), self.num_heads, length, length), np.float32)
            for b, i in enumerate(idx):
                m = a["lengths"][i]
                maps = a["attentions"][a["att_offsets"][i]:a["att_offsets"][i + 1]]
                att[b, :, :, :m, :m] = maps.reshape(self.num_layers, self.num_heads, m, m)[[s - 1 for s in sel]]
            out["attentions"] = torch.from_numpy(att)
        if "hidden_states" in a:
            hid = np.zeros((len(idx), len(sel), length, a["hidden_states"].shape[-1]), np.float32)
            for b, i in enumerate(idx):
                m = a["lengths"][i]
                tokens = a["hidden_states"][a["tok_offsets"][i]:a["tok_offsets"][i + 1]]
                hid[b, :, :m] = tokens[:, sel].transpose(1, 0, 2)
            out["hidden_states"] = torch.from_numpy(hid)
        return out


class LiveTeacher:
    """The view of `TeacherOutputs`, computed by a teacher forward pass for every batch."""

    def __init__(self, teacher, columns: dict[str, list], fields: set[str], pad_id: int = 0, autocast=None):
        self.teacher, self.columns, self.fields, self.pad_id = teacher.eval(), columns, set(fields), pad_id
        self.autocast = autocast or contextlib.nullcontext()
        self.device = next(teacher.parameters()).device

    @torch.no_grad()
    def batch(self, indices, teacher_layers: tuple[int, ...], length: int) -> dict[str, torch.Tensor]:
        """The cached view's tensors, computed on the teacher's device under `autocast`, returned as
        fp32 on the CPU like the cache's (the data loader moves batches to the worker's device)."""
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
