"""Batches for the worker loop: dynamic padding of token ids, and the teacher's outputs for the rows."""

from __future__ import annotations

import torch

from raykd.teacher_outputs.cache import TeacherOutputs


class Collator:
    """Turns a list of example indices into padded model inputs (`tokenizer.pad`), the labels, and
    the cached teacher outputs for those examples at the same padded length: input_ids, attention_mask
    (token_type_ids) [B, L], labels [B] (long, float32 for regression), index [B], and with a teacher
    "teacher" (TeacherOutputs.batch). With `channels` (a narrowed student's kept hidden channels [D'],
    raykd.student.pruning.Kept.hidden) the teacher's cls [B, K, D] and hidden_states [B, K, L, D] are cut to
    them: the [CLS] and hidden-state losses compare each kept channel with the teacher channel it was copied
    from, with no projection to learn (the student's channels are a subset of the teacher's)."""

    def __init__(self, tokenizer, columns: dict[str, list], regression: bool,
                 teacher: TeacherOutputs | None = None, teacher_layers: tuple[int, ...] = (),
                 channels: torch.Tensor | None = None):
        self.tokenizer, self.columns, self.regression = tokenizer, columns, regression
        self.teacher, self.teacher_layers, self.channels = teacher, teacher_layers, channels
        self.inputs = [k for k in ("input_ids", "token_type_ids") if k in columns]

    def __call__(self, indices: list[int]) -> dict:
        features = [{k: self.columns[k][i] for k in self.inputs} for i in indices]
        batch = dict(self.tokenizer.pad(features, return_tensors="pt"))
        dtype = torch.float32 if self.regression else torch.long
        batch["labels"] = torch.tensor([self.columns["labels"][i] for i in indices], dtype=dtype)
        batch["index"] = torch.tensor(indices)
        if self.teacher is not None:
            batch["teacher"] = self.teacher.batch(indices, self.teacher_layers, batch["input_ids"].shape[1])
            if self.channels is not None:
                for name in ("cls", "hidden_states"):
                    if name in batch["teacher"]:
                        batch["teacher"][name] = batch["teacher"][name].index_select(-1, self.channels)
        return batch
