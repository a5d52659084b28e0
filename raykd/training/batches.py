"""Batches for the worker loop: dynamic padding of token ids, and the teacher's outputs for the rows."""

from __future__ import annotations

import torch

from raykd.teacher_outputs.cache import TeacherOutputs


class Collator:
    """Turns a list of example indices into padded model inputs (`tokenizer.pad`), the labels, and
    the cached teacher outputs for those examples at the same padded length: input_ids, attention_mask
    (token_type_ids) [B, L], labels [B] (long, float32 for regression), index [B], and with a teacher
    "teacher" (TeacherOutputs.batch)."""

    def __init__(self, tokenizer, columns: dict[str, list], regression: bool,
                 teacher: TeacherOutputs | None = None, teacher_layers: tuple[int, ...] = ()):
        self.tokenizer, self.columns, self.regression = tokenizer, columns, regression
        self.teacher, self.teacher_layers = teacher, teacher_layers
        self.inputs = [k for k in ("input_ids", "token_type_ids") if k in columns]

    def __call__(self, indices: list[int]) -> dict:
        features = [{k: self.columns[k][i] for k in self.inputs} for i in indices]
        batch = dict(self.tokenizer.pad(features, return_tensors="pt"))
        dtype = torch.float32 if self.regression else torch.long
        batch["labels"] = torch.tensor([self.columns["labels"][i] for i in indices], dtype=dtype)
        batch["index"] = torch.tensor(indices)
        if self.teacher is not None:
            batch["teacher"] = self.teacher.batch(indices, self.teacher_layers, batch["input_ids"].shape[1])
        return batch
