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
from typing import TYPE_CHECKING, Callable

from raykd.method.losses import get_loss

if TYPE_CHECKING:  # annotations only: raykd.method.config imports this registry to validate its values
    from raykd.method.config import DistillConfig


@dataclass(frozen=True)
class Term:
    """One loss of a stage: `weight` times loss `loss` (raykd.method.losses), an internal loss summed over the
    student layers `pairs` (1-based); `pairs` is empty for the soft and hard labels."""
    loss: str                      # a name in raykd.method.losses.LOSSES
    weight: float
    pairs: tuple[int, ...] = ()    # student layers (1-based) whose matched pair it applies to


@dataclass(frozen=True)
class Stage:
    """`epochs` epochs with the same loss terms and trainable layers. Only `classification` stages count
    as ASHA's cls_epoch and may give the exported model (raykd.training.worker scores the others NOT_ELIGIBLE)."""
    name: str
    epochs: int
    terms: tuple[Term, ...]
    # Layers whose parameters train: 0 = embeddings, k = student block k, N+1 = pooler and classifier.
    trainable: tuple[int, ...]
    classification: bool           # does this stage train the classifier (ASHA counts these epochs)

    def reads(self) -> set[str]:
        """The model outputs its terms read: a subset of {"logits", "attentions", "cls", "hidden_states"}."""
        return {get_loss(t.loss).reads for t in self.terms}


ALGORITHMS: dict[str, Callable[[DistillConfig, int], list[Stage]]] = {}


def register(name: str):
    """Decorator: register a schedule `fn(cfg, num_layers) -> list[Stage]` in ALGORITHMS as `name`."""
    def decorate(fn):
        """Add `fn` to ALGORITHMS and return it unchanged."""
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
    """Baseline: one stage of `cfg.epochs` epochs on the gold labels only (cross-entropy, MSE for
    regression), every layer of the `n`-block student trained."""
    return [Stage("finetune", cfg.epochs, (Term("hard_label", 1.0),), _everything(n), True)]


@register("kd")
def kd(cfg: DistillConfig, n: int) -> list[Stage]:
    """Baseline (Hinton et al. 2015): one stage of `cfg.epochs` epochs of soft labels weighted `w_soft` plus
    gold labels weighted `w_hard` (a term of weight 0 is left out), every layer trained."""
    return [Stage("kd", cfg.epochs, _classification(cfg), _everything(n), True)]


@register("all")
def all_layers(cfg: DistillConfig, n: int) -> list[Stage]:
    """ALL of Aguilar et al. (AAAI 2020): one stage of `cfg.epochs` epochs with the attention and hidden-state
    losses on every pair 1..n at once plus the soft and hard labels, every layer trained."""
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
    """PID of Aguilar et al. (AAAI 2020), progressive: stage k (k = 1..n) trains pair k alone for `cfg.stage_epochs`
    epochs (embeddings and blocks 1..k; block k only with `freeze_lower`), then `cfg.epochs` of classification."""
    return _bottom_up(cfg, n, stacked=False)


@register("sid")
def sid(cfg: DistillConfig, n: int) -> list[Stage]:
    """SID of Aguilar et al. (AAAI 2020), stacked: stage k (k = 1..n) trains pairs 1..k together for
    `cfg.stage_epochs` epochs (embeddings and blocks 1..k), then `cfg.epochs` epochs of classification."""
    return _bottom_up(cfg, n, stacked=True)


def epoch_plan(stages: list[Stage]) -> list[tuple[Stage, int]]:
    """(stage, epoch within stage) for every epoch of the run, in order."""
    return [(stage, e) for stage in stages for e in range(stage.epochs)]


def teacher_fields(stages: list[Stage]) -> set[str]:
    """The teacher outputs a run needs: `logits`, `attentions`, `cls`, `hidden_states`.
    The gold-label loss reads no teacher output."""
    return {get_loss(t.loss).reads for s in stages for t in s.terms if t.loss != "hard_label"}
