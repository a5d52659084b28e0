"""Distillation losses, registered by name so that a configuration chooses them with a string.

Every loss has the signature `loss(student, teacher, *, mask, labels, temperature) -> scalar` and says
in its registration which model output it reads: `logits` [B, C], `attentions` [B, H, L, L] (one
layer), `cls` [B, D] (one layer's [CLS] vector) or `hidden_states` [B, L, D] (one layer). `mask` is
the [B, L] attention mask (1 for real tokens); padding rows and columns never count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

# Student probabilities are clamped before the log: a zero where the teacher is not zero would be inf.
EPS = 1e-12


@dataclass(frozen=True)
class Loss:
    """A registered loss: its `name`, the model output it `reads` (logits, attentions, cls or hidden_states) and
    `fn`; calling it calls `fn(student, teacher, mask=, labels=, temperature=)`, a scalar tensor."""
    name: str
    reads: str
    fn: Callable

    def __call__(self, student, teacher, *, mask=None, labels=None, temperature=1.0):
        return self.fn(student, teacher, mask=mask, labels=labels, temperature=temperature)


LOSSES: dict[str, Loss] = {}


def register(name: str, reads: str):
    """Decorator: register `fn` in LOSSES as `name`, reading model output `reads`."""
    def decorate(fn):
        """Add `fn` to LOSSES as a Loss and return it unchanged."""
        LOSSES[name] = Loss(name, reads, fn)
        return fn
    return decorate


def get_loss(name: str) -> Loss:
    """The Loss registered as `name`. Raises KeyError, naming the registered losses, for an unknown name."""
    if name not in LOSSES:
        raise KeyError(f"unknown loss {name!r}; registered: {', '.join(LOSSES)}")
    return LOSSES[name]


def _real_rows(mask):
    m = mask.to(torch.float32)
    return m[:, None, :, None], m[:, None, None, :]  # [B,1,L,1] rows, [B,1,1,L] columns


@register("soft_label", reads="logits")
def soft_label(student, teacher, *, temperature, **_):
    """Soft-label distillation (Hinton et al., 2015, "Distilling the Knowledge in a Neural Network").

    Classification: `T^2 * KL(softmax(z_T / T) || softmax(z_S / T))`, averaged over the batch; the
    T^2 keeps gradient sizes comparable across temperatures. Regression (one output, e.g. STS-B):
    the soft target is the teacher's prediction, `mean((y_S - y_T)^2)`. `student`, `teacher`: logits
    [B, C] ([B, 1] for regression).
    """
    if student.shape[-1] == 1:
        return F.mse_loss(student, teacher)
    t = temperature
    return F.kl_div(F.log_softmax(student / t, -1), F.log_softmax(teacher / t, -1),
                    reduction="batchmean", log_target=True) * t * t


@register("hard_label", reads="logits")
def hard_label(student, teacher, *, labels, **_):
    """Supervised loss on the gold labels: cross-entropy, or mean squared error for regression. `student`:
    logits [B, C] ([B, 1]); `labels`: [B] class ids (scores); `teacher` is not read."""
    if student.shape[-1] == 1:
        return F.mse_loss(student[:, 0], labels.to(student.dtype))
    return F.cross_entropy(student, labels)


@register("attention_kl", reads="attentions")
def attention_kl(student, teacher, *, mask, **_):
    """Self-attention distillation of Aguilar et al. (AAAI 2020), eq. for L_att:

        L_att = (1/L) * sum_i sum_j A_T[i,j] * log(A_T[i,j] / A_S[i,j])

    the KL(teacher || student) of each attention row i (query token over key tokens j), averaged over
    the L real rows of an example, then over heads and the batch. Padding rows and columns are left out.
    `student`, `teacher`: one layer's attention probabilities [B, H, L, L]; `mask`: [B, L].
    """
    rows, cols = _real_rows(mask)
    t, s = teacher.float(), student.float()
    kl = (torch.xlogy(t, t) - t * torch.log(s.clamp_min(EPS))) * cols
    per_row = kl.sum(-1) * rows[..., 0]                       # [B, H, L]
    per_head = per_row.sum(-1) / rows[..., 0].sum(-1)         # [B, H]
    return per_head.mean()


@register("attention_mse", reads="attentions")
def attention_mse(student, teacher, *, mask, **_):
    """Attention-map MSE of TinyBERT (Jiao et al., 2020): `(1/h) sum_heads MSE(A_S, A_T)` over the
    real L x L entries. Computed on the attention probabilities that eager attention returns
    (TinyBERT uses pre-softmax scores; transformers does not expose them). `student`, `teacher`:
    [B, H, L, L]; `mask`: [B, L]."""
    rows, cols = _real_rows(mask)
    valid = rows * cols
    err = ((student.float() - teacher.float()) ** 2) * valid
    per_head = err.sum((-1, -2)) / valid.sum((-1, -2))        # [B, H]
    return per_head.mean()


@register("cls_cosine", reads="cls")
def cls_cosine(student, teacher, **_):
    """[CLS] loss of Aguilar et al. (AAAI 2020): `L_cls = 1 - cos(h_T[CLS], h_S[CLS])`, batch mean.
    `student`, `teacher`: one layer's [CLS] vectors [B, D]."""
    return (1 - F.cosine_similarity(student.float(), teacher.float(), dim=-1)).mean()


@register("cls_mse_normalized", reads="cls")
def cls_mse_normalized(student, teacher, **_):
    """Patient KD (Sun et al., 2019): `|| h_S / ||h_S|| - h_T / ||h_T|| ||_2^2` on [CLS], batch mean.
    `student`, `teacher`: [B, D]."""
    return (F.normalize(student.float(), dim=-1) - F.normalize(teacher.float(), dim=-1)).pow(2).sum(-1).mean()


@register("hidden_mse", reads="hidden_states")
def hidden_mse(student, teacher, *, mask, **_):
    """Hidden-state MSE of TinyBERT (Jiao et al., 2020): `MSE(H_S, H_T)` over real tokens and all
    dimensions (same width, so no projection W_h). `student`, `teacher`: one layer's hidden states
    [B, L, D]; `mask`: [B, L]."""
    m = mask.to(torch.float32)[..., None]
    err = ((student.float() - teacher.float()) ** 2) * m
    return err.sum() / (m.sum() * student.shape[-1])
