"""Search spaces: plain Python files under search_spaces/.

A space file defines `space`, either
  - a dict {hyperparameter: Tune domain or fixed value}, e.g. {"temperature": tune.uniform(1, 8)}, or
  - a define-by-run function `space(trial: optuna.Trial) -> dict | None` for conditional parameters
    (stage lengths only when the algorithm is pid or sid, say); it may return fixed values too;
and optionally `fixed` (values every trial gets), `metric`, `mode`, `points_to_evaluate` (configurations
tried first) and `shape` (the student's depth and widths to search, raykd.student.shape). Names are those of
raykd.method.config.DistillConfig. A space file is Python code: it runs with the user's rights.
"""

from __future__ import annotations

import ast
import importlib.util
import itertools
import math
import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import optuna
from ray.tune.search.optuna import OptunaSearch
from ray.tune.search.sample import Categorical, Domain, Float, Integer

from raykd.errors import RaykdError
from raykd.method.config import DistillConfig
from raykd.method.plan import resolve
from raykd.models import first_line
from raykd.student.shape import AXES, PARAMETER, check_axes
from raykd.tasks import Task


@dataclass
class SearchSpace:
    """A loaded space file: `space` (Tune domains by name, or a define-by-run function), the `fixed` values,
    the `metric` and `mode` ("max" or "min") to search by, and the `points_to_evaluate` tried first."""
    path: Path
    space: dict | Callable
    fixed: dict = field(default_factory=dict)
    metric: str | None = None
    mode: str = "max"
    points_to_evaluate: list = field(default_factory=list)
    shape_axes: dict | None = None  # the file's `shape`: lists of depths and widths (raykd.student.shape)

    @property
    def define_by_run(self) -> bool:
        """True when `space` is a define-by-run function of an optuna.Trial."""
        return callable(self.space)

    def config(self, trial_values: dict) -> DistillConfig:
        """The DistillConfig of one trial: `fixed` with `trial_values` over it. Raises RaykdError for an unknown
        name or a value out of range."""
        return DistillConfig.merged(self.fixed, trial_values)


def _line_of(path: Path, name: str) -> int | None:
    """First line where `name` appears as a string or dict key in the file."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and node.value == name:
            return node.lineno
    return None


def _fail(path: Path, name: str | None, problem: str):
    if "; " not in problem:  # every error names a fix
        problem += "; fix the space file"
    line = _line_of(path, name) if name else None
    raise RaykdError(f"{path}{f':{line}' if line else ''}: {problem}")


def _import(path: Path):
    """Import the file as a named module: Tune pickles the searcher, and a define-by-run function
    pickles only as a function of a module that is in sys.modules."""
    name = "raykd_space_" + "".join(c if c.isalnum() else "_" for c in path.stem)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_space(path: str | Path) -> SearchSpace:
    """Import the space file at `path` and check it (its names and every value it can produce: `check`).
    Plain values of a dict `space` move to `fixed`; layer maps written as lists become "2,4" texts.
    Raises RaykdError naming the file (and the offending name's line) for a missing file, a failing import,
    no `space`, a grid search or a domain Optuna cannot take, a bad `mode`, a bad value, or nothing to search."""
    path = Path(path)
    if not path.is_file():
        raise RaykdError(f"search space file {path} does not exist; pass one such as search_spaces/internal.py")
    try:
        namespace = vars(_import(path))
    except SyntaxError as err:
        raise RaykdError(f"{path}:{err.lineno}: syntax error ({err.msg}); fix the space file") from None
    except Exception as err:  # the file is user code: any error in it is the user's to fix
        raise RaykdError(f"{path}: running the space file failed ({type(err).__name__}: {first_line(err)}); fix the space file") from None
    if "space" not in namespace:
        raise RaykdError(f"{path}: defines no `space`; add space = {{...}} or def space(trial): ...")
    space = SearchSpace(path, namespace["space"], dict(namespace.get("fixed", {})), namespace.get("metric"),
                        namespace.get("mode", "max"), list(namespace.get("points_to_evaluate", [])),
                        namespace.get("shape"))
    if not isinstance(space.space, dict) and not callable(space.space):
        raise RaykdError(f"{path}: `space` is a {type(space.space).__name__}; make it a dict of Tune domains or a function of an optuna.Trial")
    if isinstance(space.space, dict):  # plain values in `space` are fixed values: Optuna takes only domains
        for name, value in space.space.items():
            if isinstance(value, dict) and "grid_search" in value:
                _fail(path, name, f"{name}: tune.grid_search is not supported by Optuna; use tune.choice({value['grid_search']!r})")
        space.fixed.update({k: v for k, v in space.space.items() if not isinstance(v, Domain)})
        space.space = {k: v for k, v in space.space.items() if isinstance(v, Domain)}
    if space.mode not in ("max", "min"):
        raise RaykdError(f"{path}: mode {space.mode!r} is neither 'max' nor 'min'; set mode = 'max' or 'min'")
    _lists_as_layer_maps(space)
    if isinstance(space.space, dict):
        for name, domain in space.space.items():
            try:
                OptunaSearch.convert_search_space({name: domain})
            except (ValueError, TypeError) as err:
                _fail(path, name, f"{name}: {first_line(err)}; use tune.choice, uniform, loguniform, randint or a plain value")
    _check_shape_axes(space)
    check(space)  # before the next check: a bad value with its line says more than "nothing to search"
    if not space.space and not space.shape_axes:
        raise RaykdError(f"{path}: `space` has no Tune domain to search; add one such as tune.uniform(1, 8), "
                         "or run python -m raykd.distill for a single configuration")
    return space


def _check_shape_axes(space: SearchSpace):
    """The file's `shape` (raykd.student.shape.check_axes), and no shape axis drawn or fixed elsewhere too."""
    if space.shape_axes is None:
        return
    try:
        check_axes(space.shape_axes)
    except RaykdError as err:
        _fail(space.path, str(err).split("=")[0].split(":")[0], str(err))
    names = set(space.fixed) | (set(space.space) if isinstance(space.space, dict) else set())
    for name in sorted(names & set(space.shape_axes)):
        _fail(space.path, name, f"{name} is set in `space` or `fixed` and in `shape`; list it in `shape` only")


def offer_shapes(space: SearchSpace, names: list[str]):
    """Make the space draw `student_shape` among `names` (a grid, or the shapes within a budget): a categorical of
    a dict space, or the first draw of a define-by-run function (ShapeChoice), replacing an earlier offer."""
    if isinstance(space.space, dict):
        space.space[PARAMETER] = Categorical(list(names)).uniform()
    else:
        function = space.space.function if isinstance(space.space, ShapeChoice) else space.space
        space.space = ShapeChoice(function, list(names))


class ShapeChoice:
    """A define-by-run space that first draws `student_shape` among `names`, then runs the space's function.
    Picklable, for Tune's checkpoints."""

    def __init__(self, function: Callable, names: list[str]):
        self.function, self.names = function, names

    def __call__(self, trial):
        trial.suggest_categorical(PARAMETER, self.names)
        return self.function(trial)


def _layer_map_text(value):
    """A list or tuple of teacher layers, as a space may write a layer map, as the text "2,4"."""
    return ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else value


def _lists_as_layer_maps(space: SearchSpace):
    """Layer maps written as lists ([2, 4]) become "2,4": a text Optuna can store, DistillConfig takes."""
    for values in (space.fixed, *space.points_to_evaluate):
        if "layer_map" in values:
            values["layer_map"] = _layer_map_text(values["layer_map"])
    if isinstance(space.space, dict):
        domain = space.space.get("layer_map")
        if isinstance(domain, Categorical):
            domain.categories = [_layer_map_text(c) for c in domain.categories]
    else:
        space.space = LayerMapLists(space.space)


class LayerMapLists:
    """A define-by-run space whose layer_map choices may be lists: Optuna sees (and stores) them as
    "2,4" texts, the space's function still gets the list it offered. Picklable, for Tune's checkpoints."""

    def __init__(self, function: Callable):
        self.function = function

    def __call__(self, trial):
        returned = self.function(_TextChoices(trial))
        if isinstance(returned, dict) and "layer_map" in returned:
            returned = {**returned, "layer_map": _layer_map_text(returned["layer_map"])}
        return returned


class _TextChoices:
    def __init__(self, trial):
        self._trial = trial

    def __getattr__(self, name):
        return getattr(self._trial, name)

    def suggest_categorical(self, name, choices):
        """`trial.suggest_categorical`, with layer_map choices offered to Optuna as "2,4" texts and returned as given."""
        if name != "layer_map":
            return self._trial.suggest_categorical(name, choices)
        texts = [_layer_map_text(c) for c in choices]
        return list(choices)[texts.index(self._trial.suggest_categorical(name, texts))]


def _extremes(domain: Any) -> list:
    """The values a domain can take at its edges (all of them for a choice)."""
    if isinstance(domain, Categorical):
        return list(domain.categories)
    if isinstance(domain, (Float, Integer)):
        upper = domain.upper - 1 if isinstance(domain, Integer) else domain.upper
        return [domain.lower, upper]
    if isinstance(domain, Domain):
        return []
    return [domain]


def candidates(space: SearchSpace, samples: int = 50, limit: int = 4096) -> list[tuple[dict, str | None]]:
    """The trial values a space can produce, each with the name it varies (None for several):
    `fixed` and every point to evaluate; for a dict, every combination of each domain's edges and
    choices (each domain alone, plus seeded random combinations, when there are more than `limit`);
    for a define-by-run function, `samples` random draws.

    Raises RaykdError (file:line) for an unknown name, or when the function fails or returns no dict.
    """
    found = [({}, None), *((dict(p), None) for p in space.points_to_evaluate)]
    if isinstance(space.space, dict):
        names = list(space.space)
        edges = [_extremes(space.space[n]) or [None] for n in names]
        found += [({name: value}, name) for name, values in zip(names, edges) for value in values if value is not None]
        if math.prod(len(e) for e in edges) <= limit:
            combos = itertools.product(*edges)
        else:
            rng = random.Random(0)
            combos = ([rng.choice(e) for e in edges] for _ in range(limit))
        found += [({n: v for n, v in zip(names, combo) if v is not None}, None) for combo in combos]
        return found
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created" line per check
    try:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    finally:
        optuna.logging.set_verbosity(verbosity)
    valid = set(DistillConfig.names()) | {PARAMETER}
    for _ in range(samples):
        trial = study.ask()
        try:
            returned = space.space(trial)
        except Exception as err:  # user code
            raise RaykdError(f"{space.path}: the space function failed on a random draw ({type(err).__name__}: "
                             f"{first_line(err)}); fix the space file") from None
        if returned is not None and not isinstance(returned, dict):
            raise RaykdError(f"{space.path}: the space function returned {type(returned).__name__}; return a dict of "
                             "fixed values or None")
        values = {**trial.params, **(returned or {})}
        for name in sorted(set(values) - valid):
            _fail(space.path, name, f"unknown hyperparameter {name!r}; valid names: {', '.join(DistillConfig.names())}")
        found.append((values, None))
        study.tell(trial, 0.0)
    return found


def check(space: SearchSpace, samples: int = 50):
    """Every name must be a DistillConfig field and every value the space can produce (candidates)
    in its range. Raises RaykdError with the space file and the line of the offending name."""
    valid = set(DistillConfig.names()) | {PARAMETER}
    names = set(space.fixed) | (set(space.space) if isinstance(space.space, dict) else set())
    for name in sorted(names - valid):
        _fail(space.path, name, f"unknown hyperparameter {name!r}; valid names: {', '.join(DistillConfig.names())}")
    for values, name in candidates(space, samples):
        _try(space, lambda: space.config(values), values, name)


def check_plans(space: SearchSpace, teacher_config, workers: int | None = None, defaults: dict | None = None,
                samples: int = 50):
    """Every value the space can produce, checked against the teacher by the rule a single run gets
    (raykd.method.plan.resolve: student depth, layer map, batch against `workers`); `defaults` are values every
    trial gets unless the space sets them (the search's epochs). Raises RaykdError with file:line."""
    for values, name in candidates(space, samples):
        def plan():
            """Resolve this candidate's plan; raises RaykdError when it fails."""
            cfg = DistillConfig.merged(defaults or {}, space.fixed, values)
            resolve(teacher_config, cfg, workers)
        _try(space, plan, values, name)


def check_metric(space: SearchSpace, task: Task):
    """The space's `metric` must be one raykd reports for the task (its dev metrics, or train_loss).
    Raises RaykdError with file:line."""
    reported = [f"dev_{m}" for m in task.metrics] + ["train_loss"]
    if space.metric is not None and space.metric not in reported:
        _fail(space.path, space.metric, f"metric {space.metric!r} is not reported for {task.name}; use one of "
                                        f"{', '.join(reported)}, or drop `metric` for {reported[0]}")


PLAN_NAMES = ("algorithm", PARAMETER, "student_layers", "layer_map", "batch_size")


def _try(space: SearchSpace, check_values: Callable, values: dict, name: str | None):
    """Run a check; on RaykdError fail with the line of the offending name and the values of the other
    plan names (algorithm, depth, layer map, batch) it was drawn with."""
    try:
        check_values()
    except RaykdError as err:
        message = str(err)
        shape_axes = AXES if PARAMETER in values else ()  # a drawn shape's sizes: the line of `shape`'s axis
        named = [n for n in [*values, *space.fixed, *shape_axes] if re.search(rf"\b{n}=", message)]
        bad = name if name in named else (named[0] if named else name)
        context = {n: values[n] for n in PLAN_NAMES if n in values and n != bad}
        if context:
            problem, _, fix = message.partition("; ")
            with_values = ", ".join(f"{k}={v!r}" for k, v in context.items())
            message = f"{problem} (with {with_values}); {fix}" if fix else f"{problem} (with {with_values})"
        _fail(space.path, bad, message)
