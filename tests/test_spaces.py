"""Search space files: the shipped ones load; bad ones give one line with file and line number."""

import pytest

from raykd.errors import RaykdError
from raykd.tuning.spaces import load_space
from conftest import REPO


@pytest.mark.parametrize("name", ["internal.py", "soft_label.py", "paper.py"])
def test_shipped_spaces_load_and_validate(name):
    space = load_space(REPO / "search_spaces" / name)
    assert space.mode == "max"
    if name == "internal.py":
        assert space.define_by_run
    if name == "paper.py":
        assert [p["algorithm"] for p in space.points_to_evaluate] == ["kd", "all", "pid", "sid"]


@pytest.mark.parametrize("source, message", [
    ('from ray import tune\nspace = {\n    "temprature": tune.uniform(1, 4),\n}\n', r"bad.py:3: unknown hyperparameter 'temprature'"),
    ('from ray import tune\nspace = {\n  "algorithm": tune.choice(["kd"]),\n  "temperature": tune.uniform(-1, 4),\n}\n',
     r"bad.py:4: temperature=-1.*out of range"),
    ('space = {"w_soft": -2.0}\n', r"bad.py:1: w_soft=-2.0 is out of range"),
    ('def space(trial):\n    trial.suggest_float("learning_rate", -1.0, 1.0)\n', r"bad.py:2: learning_rate=.* is out of range"),
    ('def space(trial):\n    trial.suggest_int("epochz", 1, 3)\n', r"bad.py:2: unknown hyperparameter 'epochz'"),
    ('x = 1\n', r"bad.py: defines no `space`"),
    ('space = {\n  "temperature": (\n}\n', r"bad.py:\d: syntax error"),
])
def test_bad_space_files(tmp_path, source, message):
    path = tmp_path / "bad.py"
    path.write_text(source)
    with pytest.raises(RaykdError, match=message) as err:
        load_space(path)
    assert "\n" not in str(err.value)


def test_missing_space_file(tmp_path):
    with pytest.raises(RaykdError, match="does not exist"):
        load_space(tmp_path / "none.py")
