"""The hyperparameters of one distillation run, as one frozen dataclass.

Its field names are the names a search space file uses and the `--flags` of `raykd.distill`
(underscores become dashes). Each field carries its help text and the range it must lie in, so the
command line, search spaces and workers all validate the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

from raykd.errors import RaykdError
from raykd.method.algorithms import ALGORITHMS
from raykd.method.losses import LOSSES
from raykd.student.shape import expand
from raykd.training.precision import CHOICES

# Names come from the registries, so a registered loss or schedule is a valid choice with no second list.
ATTENTION_LOSSES = tuple(n for n, loss in LOSSES.items() if loss.reads == "attentions")
HIDDEN_LOSSES = tuple(n for n, loss in LOSSES.items() if loss.reads in ("cls", "hidden_states"))


def _field(default, help, *, low=None, high=None, low_open=False, choices=None):
    return field(
        default=default,
        metadata={"help": help, "low": low, "high": high, "low_open": low_open, "choices": choices},
    )


@dataclass(frozen=True)
class DistillConfig:
    # what is distilled, and how
    """The hyperparameters of one run, checked on construction against each field's range and choices.
    Raises RaykdError (starting `<field>=`) for a value out of range or not among the choices."""
    algorithm: str = _field(
        "sid", "schedule: finetune, kd, all, pid or sid (the registry raykd.method.algorithms.ALGORITHMS)",
        choices=ALGORITHMS)  # the registry itself: a schedule registered later is a valid choice too
    student_layers: int = _field(0, "student depth; 0 means half the teacher's layers", low=0)
    student_hidden_size: int = _field(
        0, "student hidden width, a multiple of the teacher's heads: the teacher's channels ranked by activation "
        "(raykd.student.pruning); 0 means the teacher's width", low=0)
    student_ffn_size: int = _field(
        0, "student FFN (intermediate) width of every layer, the teacher's neurons ranked by activation; 0 means "
        "the teacher's", low=0)
    layer_map: str = _field(
        "skip", "student layer k <- teacher layer: skip (k*r, the paper), last, bottom, uniform, "
        "or a comma list of teacher layers such as 2,4,6")
    student_init: str = _field(
        "mapped", "student layers copied from the mapped teacher layers, the bottom ones, or random",
        choices=("mapped", "bottom", "random"))
    attention_loss: str = _field(
        "attention_kl", f"internal loss on attention maps: {', '.join(ATTENTION_LOSSES)} (raykd.method.losses)",
        choices=ATTENTION_LOSSES)
    hidden_loss: str = _field(
        "cls_cosine", f"internal loss on hidden states: {', '.join(HIDDEN_LOSSES)} (raykd.method.losses)",
        choices=HIDDEN_LOSSES)
    # loss weights
    w_attention: float = _field(1.0, "weight of the attention loss", low=0.0)
    w_hidden: float = _field(1.0, "weight of the hidden-state ([CLS]) loss", low=0.0)
    w_soft: float = _field(1.0, "weight of the soft-label loss", low=0.0)
    w_hard: float = _field(0.0, "weight of the hard-label cross-entropy (alpha)", low=0.0)
    temperature: float = _field(1.0, "soft-label temperature T (loss scaled by T^2)", low=0.0, low_open=True)
    # schedule lengths
    epochs: int = _field(3, "epochs with the classifier trained (the whole run for finetune/kd/all)", low=1)
    stage_epochs: int = _field(1, "epochs of each internal stage of pid and sid", low=1)
    freeze_lower: bool = _field(False, "pid: freeze the student layers below the pair in training")
    # optimisation
    learning_rate: float = _field(5e-5, "AdamW peak learning rate", low=0.0, low_open=True, high=1.0)
    warmup_ratio: float = _field(0.1, "share of each stage's steps spent in linear warm-up", low=0.0, high=1.0)
    weight_decay: float = _field(0.01, "AdamW weight decay", low=0.0)
    batch_size: int = _field(32, "global batch size, split exactly across the workers", low=1)
    seed: int = _field(42, "seed of weights, data order and dropout", low=0)
    # speed
    precision: str = _field(
        "auto", "autocast precision of forward passes: auto (bf16 where the hardware runs it natively), fp32, "
        "bf16 or fp16; weights and losses stay fp32 (raykd.training.precision)", choices=CHOICES)
    group_by_length: bool = _field(
        True, "batches of examples of similar length (less padding; raykd.training.sampling); off = a plain shuffle")

    def __post_init__(self):
        for f in dataclasses.fields(self):
            _check_range(f, getattr(self, f.name))

    @classmethod
    def names(cls) -> list[str]:
        """The field names, in declaration order: the names a search space and `from_dict` accept."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: dict) -> "DistillConfig":
        """Build from a dict whose keys must all be field names (a typo is an error, not ignored); values are
        coerced to the field's type (Optuna's and Tune's numpy scalars, "true"). Raises RaykdError for an
        unknown name, a value not of its field's type, or one out of range."""
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            raise RaykdError(
                f"unknown hyperparameter(s) {', '.join(unknown)}; valid names: {', '.join(cls.names())}")
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        return cls(**{k: _coerce(k, v, types[k]) for k, v in values.items()})

    @classmethod
    def merged(cls, *layers: dict) -> "DistillConfig":
        """The configuration of `layers` of values, each over the ones before it: a search's defaults, the space's
        fixed values, then a trial's values, whose `student_shape` becomes its three fields
        (raykd.student.shape.expand). Raises RaykdError as from_dict does."""
        merged = {}
        for values in layers:
            merged.update(expand(values or {}))
        return cls.from_dict(merged)

    def to_dict(self) -> dict:
        """The fields as a plain dict (dataclasses.asdict), which `from_dict` reads back."""
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "DistillConfig":
        """A copy with `changes`, checked again like a new one (dataclasses.replace). Raises RaykdError for a
        value out of range."""
        return dataclasses.replace(self, **changes)


def _coerce(name, value, type_name):
    # Optuna and Tune hand back numpy scalars and ints for floats; accept what is clearly meant.
    try:
        if type_name == "bool":
            if isinstance(value, str):
                return value.lower() in ("1", "true", "yes")
            return bool(value)
        if type_name == "int":
            if float(value) != int(float(value)):
                raise ValueError
            return int(float(value))
        if type_name == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise RaykdError(f"hyperparameter {name}={value!r} is not a valid {type_name}") from None


def _check_range(f, value):
    m = f.metadata
    choices = m["choices"]
    if choices and value not in choices:
        raise RaykdError(f"{f.name}={value!r} is not one of {', '.join(choices)}")
    if m["low"] is not None and (value < m["low"] or (m["low_open"] and value == m["low"])):
        bound = "> " if m["low_open"] else ">= "
        raise RaykdError(f"{f.name}={value} is out of range; it must be {bound}{m['low']}")
    if m["high"] is not None and value > m["high"]:
        raise RaykdError(f"{f.name}={value} is out of range; it must be <= {m['high']}")


def add_config_arguments(parser: argparse.ArgumentParser, defaults: DistillConfig | None = None,
                         only: tuple[str, ...] | None = None):
    """One `--flag` per field (or per field in `only`), with the field's help text and default."""
    defaults = defaults or DistillConfig()
    group = parser.add_argument_group("hyperparameters (the names search spaces use)")
    for f in dataclasses.fields(DistillConfig):
        if only is not None and f.name not in only:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if f.type == "bool":
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=f.metadata["help"])
        else:
            kind = {"int": int, "float": float}.get(f.type, str)
            group.add_argument(flag, type=kind, default=default,
                               help=f"{f.metadata['help']} (default: {default})")


def config_from_args(args: argparse.Namespace, **fixed) -> DistillConfig:
    """The configuration from parsed flags; `fixed` values for fields that have no flag."""
    given = {name: getattr(args, name) for name in DistillConfig.names() if hasattr(args, name)}
    return DistillConfig.from_dict({**given, **fixed})
