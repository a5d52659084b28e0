"""Search spaces: plain Python files under search_spaces/.

A space file defines `space`, either
  - a dict {hyperparameter: Tune domain or fixed value}, e.g. {"temperature": tune.uniform(1, 8)}, or
  - a define-by-run function `space(trial: optuna.Trial) -> dict | None` for conditional parameters
    (stage lengths only when the algorithm is pid or sid, say); it may return fixed values too;
and optionally `fixed` (values every trial gets), `metric`, `mode` and `points_to_evaluate` (configurations
tried first). Names are those of
raykd.config.DistillConfig. A space file is Python code: it runs with the user's rights.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import optuna
from ray.tune.search.sample import Categorical, Domain, Float, Integer

from raykd.config import DistillConfig
from raykd.errors import RaykdError


@dataclass
class SearchSpace:
    path: Path
    space: dict | Callable
    fixed: dict = field(default_factory=dict)
    metric: str | None = None
    mode: str = "max"
    points_to_evaluate: list = field(default_factory=list)

    @property
    def define_by_run(self) -> bool:
        return callable(self.space)

    def config(self, trial_values: dict) -> DistillConfig:
        return DistillConfig.from_dict({**self.fixed, **trial_values})


def _line_of(path: Path, name: str) -> int | None:
    """First line where `name` appears as a string or dict key in the file."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and node.value == name:
            return node.lineno
    return None


def _fail(path: Path, name: str | None, problem: str):
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
    path = Path(path)
    if not path.is_file():
        raise RaykdError(f"search space file {path} does not exist; pass one such as search_spaces/internal.py")
    try:
        namespace = vars(_import(path))
    except SyntaxError as err:
        raise RaykdError(f"{path}:{err.lineno}: syntax error ({err.msg}); fix the space file") from None
    except Exception as err:  # the file is user code: any error in it is the user's to fix
        raise RaykdError(f"{path}: running the space file failed ({type(err).__name__}: {err})") from None
    if "space" not in namespace:
        raise RaykdError(f"{path}: defines no `space`; add space = {{...}} or def space(trial): ...")
    space = SearchSpace(path, namespace["space"], dict(namespace.get("fixed", {})), namespace.get("metric"),
                        namespace.get("mode", "max"), list(namespace.get("points_to_evaluate", [])))
    if not isinstance(space.space, dict) and not callable(space.space):
        raise RaykdError(f"{path}: `space` must be a dict of Tune domains or a function of an optuna.Trial")
    if isinstance(space.space, dict):  # plain values in `space` are fixed values: Optuna takes only domains
        space.fixed.update({k: v for k, v in space.space.items() if not isinstance(v, Domain)})
        space.space = {k: v for k, v in space.space.items() if isinstance(v, Domain)}
        if not space.space:
            raise RaykdError(f"{path}: `space` has no Tune domain to search; add one such as tune.uniform(1, 8), "
                             "or run python -m raykd.distill for a single configuration")
    if space.mode not in ("max", "min"):
        raise RaykdError(f"{path}: mode {space.mode!r} must be 'max' or 'min'")
    check(space)
    return space


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


def check(space: SearchSpace, samples: int = 20):
    """Every name must be a DistillConfig field and every value in its range: checked on the domains'
    edges for a dict, on `samples` draws of a define-by-run function."""
    valid = set(DistillConfig.names())
    names = set(space.fixed) | (set(space.space) if isinstance(space.space, dict) else set())
    for name in sorted(names - valid):
        _fail(space.path, name, f"unknown hyperparameter {name!r}; valid names: {', '.join(DistillConfig.names())}")
    _try(space, space.fixed, None)
    for point in space.points_to_evaluate:
        _try(space, point, None)
    if isinstance(space.space, dict):
        for name, domain in space.space.items():
            for value in _extremes(domain):
                _try(space, {name: value}, name)
        return
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(samples):
        trial = study.ask()
        returned = space.space(trial) or {}
        values = {**trial.params, **returned}
        for name in sorted(set(values) - valid):
            _fail(space.path, name, f"unknown hyperparameter {name!r}; valid names: {', '.join(DistillConfig.names())}")
        _try(space, values, None)
        study.tell(trial, 0.0)


def _try(space: SearchSpace, values: dict, name: str | None):
    try:
        space.config(values)
    except RaykdError as err:
        bad = name or next((n for n in values if str(err).startswith(f"{n}=")), None)
        _fail(space.path, bad, f"{err}")
