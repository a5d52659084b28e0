"""The loss of one batch under one stage of a schedule: the weighted sum of the stage's terms."""

from __future__ import annotations

import contextlib

import torch

from raykd.method.algorithms import Stage
from raykd.method.losses import get_loss


def student_view(outputs, reads: str, layer: int):
    """Student layer `layer` (1-based) of the output a loss reads: attentions [B, H, L, L], cls [B, D]
    (hidden_states[layer][:, 0]) or hidden_states [B, L, D]."""
    if reads == "attentions":
        return outputs.attentions[layer - 1]
    if reads == "cls":
        return outputs.hidden_states[layer][:, 0]
    return outputs.hidden_states[layer]


def teacher_view(teacher: dict, reads: str, layer: int):
    """The teacher layer matched to student layer `layer` (1-based): batches carry one slice per student
    layer, `teacher[reads]` [B, N, ...], so this is [B, ...] in student_view's shapes."""
    return teacher[reads][:, layer - 1]


def forward(model, batch: dict, stage: Stage):
    """The model's forward pass on `batch` (input_ids, attention_mask, token_type_ids [B, L]), with attention maps
    and hidden states returned only when the stage's terms read them."""
    reads = stage.reads()
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                 token_type_ids=batch.get("token_type_ids"),
                 output_attentions="attentions" in reads,
                 output_hidden_states=bool({"cls", "hidden_states"} & reads))


def stage_loss(model, batch: dict, stage: Stage, temperature: float,
               autocast=contextlib.nullcontext()) -> tuple[torch.Tensor, dict[str, float]]:
    """sum over terms of weight * loss, an internal term summed over its layer pairs; a scalar fp32
    tensor and each term's value. The forward pass runs under `autocast` (raykd.training.precision); the losses
    always in fp32: the student's outputs are cast up first, because the attention KL takes logs of
    small probabilities that bf16 and fp16 round to zero."""
    with autocast:
        outputs = forward(model, batch, stage)
    teacher, mask = batch.get("teacher", {}), batch["attention_mask"]
    total, parts = 0.0, {}
    for term in stage.terms:
        loss = get_loss(term.loss)
        if loss.reads == "logits":
            value = loss(outputs.logits.float(), teacher.get("logits"), labels=batch["labels"], temperature=temperature)
        else:
            value = sum(loss(student_view(outputs, loss.reads, k).float(), teacher_view(teacher, loss.reads, k),
                             mask=mask) for k in term.pairs)
        parts[term.loss] = float(value.detach())
        total = total + term.weight * value
    return total, parts
