"""One configuration resolved against one teacher, once: the run's plan.

Every fact the driver, the workers, the records and the model card need about a run is worked out
here, from the configuration and the teacher's config alone, and never again:

    student depth   `student_layers`, 0 meaning half the teacher's (the paper's ratio)
    student widths  `student_hidden_size` and `student_ffn_size`, 0 meaning the teacher's; narrower ones keep
                    the teacher's most active channels (raykd.student.pruning)
    layer map       student layer k (1-based) learns from teacher layer `layer_map[k-1]`
    stages          the schedule of `config.algorithm` (raykd.method.algorithms) for that depth
    teacher fields  the teacher outputs the stages read (logits, attentions, cls, hidden_states)
    sizes           the student's parameter counts, from its config (built on PyTorch's meta device:
                    no memory, no weights)

`resolve` is the one rule a configuration must pass, for a single run and for every value a search
space can produce; it raises RaykdError starting with the offending field's name (`layer_map=...`), which
raykd.tuning.spaces turns into the space file's line. The plan travels in the worker's job, is written into
every checkpoint (`plan.json`) and so into the exported student, whose model card is rendered from it.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from raykd import families, models
from raykd.errors import RaykdError
from raykd.method.algorithms import Stage, epoch_plan, schedule, teacher_fields
from raykd.method.config import DistillConfig

FILE = "plan.json"  # in every checkpoint and exported student


@dataclass(frozen=True)
class RunPlan:
    """One configuration resolved against one teacher (the module docstring lists what it holds); made by
    `resolve`, written into every checkpoint as plan.json (`to_dict`)."""
    config: DistillConfig
    teacher_depth: int                   # the teacher's transformer layers
    teacher_heads: int
    teacher_hidden: int
    teacher_ffn: int
    student_layers: int                  # the student's transformer layers
    student_hidden: int                  # the student's hidden width (the teacher's unless pruned)
    student_ffn: int                     # the student's FFN width in every layer
    layer_map: tuple[int, ...]           # teacher layer (1-based) for each student layer 1..student_layers
    stages: tuple[Stage, ...]
    teacher_fields: frozenset[str]       # the teacher outputs the stages read
    student_params_total: int
    student_params_non_embedding: int

    @property
    def narrowed(self) -> bool:
        """True when the student is narrower than the teacher (raykd.student.pruning cuts it)."""
        return self.student_hidden != self.teacher_hidden or self.student_ffn != self.teacher_ffn

    @property
    def shape(self) -> str:
        """The student's shape as raykd.student.shape names it: `L<layers>-H<hidden>-F<ffn>`."""
        return f"L{self.student_layers}-H{self.student_hidden}-F{self.student_ffn}"

    @property
    def epochs(self) -> int:
        """Epochs of the whole schedule, internal stages included."""
        return len(epoch_plan(list(self.stages)))

    def sizes(self) -> dict:
        """{"student_layers", "student_hidden", "student_ffn", "layer_map", "student_params_total",
        "student_params_non_embedding"}: what the run records and the tables print."""
        return {"student_layers": self.student_layers, "student_hidden": self.student_hidden,
                "student_ffn": self.student_ffn, "layer_map": list(self.layer_map),
                "student_params_total": self.student_params_total,
                "student_params_non_embedding": self.student_params_non_embedding}

    def to_dict(self) -> dict:
        """The plan as JSON-ready values (`plan.json`): the configuration, the sizes, the teacher's shape,
        the fields and the stages by name and epochs."""
        return {"config": self.config.to_dict(), **self.sizes(), "teacher_depth": self.teacher_depth,
                "teacher_heads": self.teacher_heads, "teacher_hidden": self.teacher_hidden,
                "teacher_ffn": self.teacher_ffn, "teacher_fields": sorted(self.teacher_fields),
                "stages": [{"name": s.name, "epochs": s.epochs, "classification": s.classification} for s in self.stages]}


def resolve(teacher_config, cfg: DistillConfig, workers: int | None = None) -> RunPlan:
    """The plan of `cfg` against a teacher with Hugging Face config `teacher_config`
    (`num_hidden_layers`, `num_attention_heads`: a family of raykd.families).

    Checks: a student no deeper and no wider than the teacher, a hidden width that is a multiple of the heads
    in a family whose widths raykd can cut (raykd.student.pruning), a layer map in range with one teacher layer per
    student layer (raykd.models.layer_map), and, with `workers`, a global batch that gives each worker an example.
    Raises RaykdError starting with the field's name (`student_layers=`, `student_hidden_size=`,
    `student_ffn_size=`, `layer_map=`, `batch_size=`), or
    naming the weights when they are all 0 for a stage (no loss left to minimise).
    """
    t = teacher_config.num_hidden_layers
    n = models.student_depth(t, cfg.student_layers)
    mapping = models.layer_map(cfg.layer_map, t, n)
    hidden, ffn = _widths(teacher_config, cfg)
    if workers is not None and cfg.batch_size < workers:
        raise RaykdError(f"batch_size={cfg.batch_size} is smaller than the {workers} workers of a run, which split the "
                         f"global batch; use a batch of at least {workers} or fewer workers")
    stages = tuple(schedule(cfg, n))
    empty = next((s for s in stages if not s.terms), None)
    if empty:  # zero weights removed every term: the stage would have nothing to minimise
        weights = "w_soft and w_hard" if empty.classification else "w_attention and w_hidden"
        raise RaykdError(f"{weights} are all 0, which leaves {cfg.algorithm}'s stage {empty.name} with no loss; "
                         f"give one of {weights} a weight above 0")
    total, non_embedding = _parameter_counts(teacher_config.to_json_string(), n, hidden, ffn)
    return RunPlan(cfg, t, teacher_config.num_attention_heads, teacher_config.hidden_size,
                   families.ffn_size(teacher_config), n, hidden, ffn, mapping, stages,
                   frozenset(teacher_fields(list(stages))), total, non_embedding)


def _widths(teacher_config, cfg: DistillConfig) -> tuple[int, int]:
    """(hidden, ffn) of the student: the configuration's, 0 meaning the teacher's. Raises RaykdError (starting with
    the field's name) for a width over the teacher's, a hidden width the heads do not divide, or a narrower
    student of a family whose blocks raykd cannot cut."""
    heads = teacher_config.num_attention_heads
    teacher_ffn = families.ffn_size(teacher_config)
    hidden = cfg.student_hidden_size or teacher_config.hidden_size
    ffn = cfg.student_ffn_size or teacher_ffn
    for name, value, most in (("student_hidden_size", hidden, teacher_config.hidden_size),
                              ("student_ffn_size", ffn, teacher_ffn)):
        if value > most:
            raise RaykdError(f"{name}={value} is wider than the teacher's {most}: a student keeps a subset of the "
                             f"teacher's channels; choose at most {most} (0 = the teacher's)")
    if hidden % heads:
        raise RaykdError(f"student_hidden_size={hidden} is not a multiple of the teacher's {heads} heads (every head "
                         f"keeps the same share of channels); use a multiple of {heads}, such as {max(heads, hidden // heads * heads)}")
    narrowed = (hidden, ffn) != (teacher_config.hidden_size, teacher_ffn)
    if narrowed and not families.width_axes(teacher_config):
        name = "student_hidden_size" if hidden != teacher_config.hidden_size else "student_ffn_size"
        family = families.family_of(teacher_config).name
        raise RaykdError(f"{name}={hidden if name == 'student_hidden_size' else ffn}: the {family} teacher's widths "
                         f"cannot be cut (raykd narrows BERT-layout blocks without an embedding projection; depth "
                         f"applies to every family); keep {name} at 0 (the teacher's width)")
    return hidden, ffn


@functools.lru_cache(maxsize=64)
def _parameter_counts(teacher_config_json: str, layers: int, hidden: int, ffn: int) -> tuple[int, int]:
    """(total, non-embedding) parameters of a student of `layers` blocks, `hidden` and `ffn` wide: built on the
    meta device, where a module has shapes and no storage (a search checks hundreds of values)."""
    values = json.loads(teacher_config_json)
    config = families.reshaped(AutoConfig.for_model(values.pop("model_type"), **values), layers, hidden, ffn)
    with torch.device("meta"):
        student = AutoModelForSequenceClassification.from_config(config)
    counts = models.parameter_counts(student)
    return counts["total"], counts["non_embedding"]
