"""The student's shape (depth, hidden width, FFN width) as one search dimension.

A space file lists each axis's values in `shape` (raykd.tuning.spaces):

    shape = {"student_layers": [1, 2, 3, 6], "student_hidden_size": [0.5, 1.0], "student_ffn_size": [0.25, 1.0]}

An int is a size, a float in (0, 1] a share of the teacher's (a hidden width rounded down to a multiple of the
heads), so one space serves any teacher. The search offers Optuna one categorical `student_shape` over the
grid's names ("L3-H384-F1536"), not three axes: a latency budget then removes whole shapes, which per-axis
choices cannot (a deep narrow student may fit where a deep wide one does not), and every shape offered has been
measured before the first trial (raykd.student.cost).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from raykd import families
from raykd.errors import RaykdError

AXES = ("student_layers", "student_hidden_size", "student_ffn_size")
PARAMETER = "student_shape"  # the categorical a search draws; expand() turns it back into AXES


@dataclass(frozen=True, order=True)
class Shape:
    """A student's depth and widths, in the teacher's units (layers, channels, neurons)."""
    layers: int
    hidden: int
    ffn: int

    @property
    def name(self) -> str:
        """`L<layers>-H<hidden>-F<ffn>`, as RunPlan.shape writes it."""
        return f"L{self.layers}-H{self.hidden}-F{self.ffn}"

    def values(self) -> dict[str, int]:
        """The DistillConfig fields of this shape."""
        return dict(zip(AXES, (self.layers, self.hidden, self.ffn)))

    @classmethod
    def parse(cls, name: str) -> "Shape":
        """The Shape named `name`. Raises RaykdError for a name not of the form L3-H384-F1536."""
        match = re.fullmatch(r"L(\d+)-H(\d+)-F(\d+)", str(name))
        if not match:
            raise RaykdError(f"student_shape={name!r} is not a shape name; write it as L3-H384-F1536")
        return cls(*(int(g) for g in match.groups()))


def of_teacher(teacher_config) -> Shape:
    """The teacher's own shape."""
    return Shape(teacher_config.num_hidden_layers, teacher_config.hidden_size, families.ffn_size(teacher_config))


def paper_student(teacher_config) -> Shape:
    """The paper's student: half the teacher's layers at its full width (Aguilar et al., AAAI 2020)."""
    return Shape(max(1, teacher_config.num_hidden_layers // 2), teacher_config.hidden_size,
                 families.ffn_size(teacher_config))


def _size(value, full: int, multiple: int = 1) -> int:
    """A size from an axis value: an int as it is, a float in (0, 1] as that share of `full`, rounded down to a
    multiple of `multiple` (at least one multiple)."""
    if isinstance(value, float):
        return max(multiple, int(value * full) // multiple * multiple)
    return int(value)


def grid(axes: dict[str, list], teacher_config) -> list[Shape]:
    """Every combination of the axes' values against a teacher (an axis left out keeps the teacher's value, and
    student_layers 0 means half its depth), sorted, without repeats. The values are checked by
    raykd.method.plan.resolve as every configuration is."""
    teacher = of_teacher(teacher_config)
    heads = teacher_config.num_attention_heads
    layers = [_size(v, teacher.layers) or max(1, teacher.layers // 2) for v in axes.get("student_layers", [teacher.layers])]
    hidden = [_size(v, teacher.hidden, heads) for v in axes.get("student_hidden_size", [teacher.hidden])]
    ffn = [_size(v, teacher.ffn) for v in axes.get("student_ffn_size", [teacher.ffn])]
    return sorted({Shape(*combo) for combo in itertools.product(layers, hidden, ffn)})


def expand(values: dict) -> dict:
    """A trial's values with `student_shape` replaced by the three fields it names (other values unchanged)."""
    if PARAMETER not in values:
        return values
    both = sorted(set(values) & set(AXES))
    if both:
        raise RaykdError(f"{both[0]} is drawn by the space and by `shape`; list the student's shape in `shape` only")
    rest = {k: v for k, v in values.items() if k != PARAMETER}
    return {**rest, **Shape.parse(values[PARAMETER]).values()}


def check_axes(axes) -> None:
    """A space file's `shape`: a dict of AXES names to non-empty lists of ints >= 1 or floats in (0, 1].
    Raises RaykdError starting with the offending name (raykd.tuning.spaces adds the file and line)."""
    if not isinstance(axes, dict):
        raise RaykdError(f"shape is a {type(axes).__name__}; make it a dict such as {{'student_layers': [2, 3, 6]}}")
    for name, values in axes.items():
        if name not in AXES:
            raise RaykdError(f"{name}: not a shape axis; shape takes {', '.join(AXES)}")
        if not isinstance(values, (list, tuple)) or not values:
            raise RaykdError(f"{name}: give a list of values such as [2, 3, 6]; a shape axis is a list")
        for v in values:
            ok = (isinstance(v, int) and not isinstance(v, bool) and v >= 1) or (isinstance(v, float) and 0 < v <= 1)
            if not ok:
                raise RaykdError(f"{name}={v!r} is neither a size >= 1 nor a share of the teacher's in (0, 1]; "
                                 "write sizes such as 384 or shares such as 0.5")
