"""Distillation schedules ("algorithms"), registered by name. A schedule is data: a list of stages,
each saying for how many epochs which loss terms are on, with which weights, on which layer pairs,
and which student layers train.

Aguilar et al. (AAAI 2020) compare three ways to apply the internal losses:
  all   every matched pair at once (here together with the soft labels);
  pid   progressive: pair 1, then pair 2, ... then the top pair, then classification only;
  sid   stacked: pairs 1, 1+2, 1+2+3, ... then classification only.
`finetune` (gold labels only) and `kd` (soft labels, plus gold labels weighted w_hard) are the baselines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from raykd.config import DistillConfig
from raykd.losses import get_loss


@dataclass(frozen=True)
class Term:
    loss: str                      # a name in raykd.losses.LOSSES
    weight: float
    pairs: tuple[int, ...] = ()    # student layers (1-based) whose matched pair it applies to


@dataclass(frozen=True)
class Stage:
    name: str
    epochs: int
    terms: tuple[Term, ...]
    # Layers whose parameters train: 0 = embeddings, k = student block k, N+1 = pooler and classifier.
    trainable: tuple[int, ...]
    classification: bool           # does this stage train the classifier (ASHA counts these epochs)

    def reads(self) -> set[str]:
        return {get_loss(t.loss).reads for t in self.terms}


ALGORITHMS: dict[str, Callable[[DistillConfig, int], list[Stage]]] = {}


def register(name: str):
    def decorate(fn):
        ALGORITHMS[name] = fn
        return fn
    return decorate


def schedule(cfg: DistillConfig, num_layers: int) -> list[Stage]:
    """The stages of `cfg.algorithm` for a student of `num_layers` blocks."""
    return ALGORITHMS[cfg.algorithm](cfg, num_layers)


def _terms(*candidates: Term) -> tuple[Term, ...]:
    return tuple(t for t in candidates if t.weight > 0)


def _internal(cfg: DistillConfig, pairs: tuple[int, ...]) -> tuple[Term, ...]:
    return _terms(Term(cfg.attention_loss, cfg.w_attention, pairs), Term(cfg.hidden_loss, cfg.w_hidden, pairs))


def _classification(cfg: DistillConfig) -> tuple[Term, ...]:
    return _terms(Term("soft_label", cfg.w_soft), Term("hard_label", cfg.w_hard))


def _everything(n: int) -> tuple[int, ...]:
    return tuple(range(n + 2))


@register("finetune")
def finetune(cfg: DistillConfig, n: int) -> list[Stage]:
    return [Stage("finetune", cfg.epochs, (Term("hard_label", 1.0),), _everything(n), True)]


@register("kd")
def kd(cfg: DistillConfig, n: int) -> list[Stage]:
    return [Stage("kd", cfg.epochs, _classification(cfg), _everything(n), True)]


@register("all")
def all_layers(cfg: DistillConfig, n: int) -> list[Stage]:
    pairs = tuple(range(1, n + 1))
    return [Stage("all", cfg.epochs, _internal(cfg, pairs) + _classification(cfg), _everything(n), True)]


def _bottom_up(cfg: DistillConfig, n: int, stacked: bool) -> list[Stage]:
    stages = []
    for k in range(1, n + 1):
        pairs = tuple(range(1, k + 1)) if stacked else (k,)
        # Blocks above k get no gradient from these terms anyway; freezing drops those below too.
        trainable = (k,) if cfg.freeze_lower and not stacked else tuple(range(k + 1))
        stages.append(Stage(f"pair{k}", cfg.stage_epochs, _internal(cfg, pairs), trainable, False))
    stages.append(Stage("classify", cfg.epochs, _classification(cfg), _everything(n), True))
    return stages


@register("pid")
def pid(cfg: DistillConfig, n: int) -> list[Stage]:
    return _bottom_up(cfg, n, stacked=False)


@register("sid")
def sid(cfg: DistillConfig, n: int) -> list[Stage]:
    return _bottom_up(cfg, n, stacked=True)


def epoch_plan(stages: list[Stage]) -> list[tuple[Stage, int]]:
    """(stage, epoch within stage) for every epoch of the run, in order."""
    return [(stage, e) for stage in stages for e in range(stage.epochs)]


def teacher_fields(stages: list[Stage]) -> set[str]:
    """The teacher outputs a run needs: `logits`, `attentions`, `cls`, `hidden_states`.
    The gold-label loss reads no teacher output."""
    return {get_loss(t.loss).reads for s in stages for t in s.terms if t.loss != "hard_label"}
