"""The configuration dataclass: names, coercion, ranges."""

import argparse

import pytest

from raykd.errors import RaykdError
from raykd.method.config import DistillConfig, add_config_arguments, config_from_args


def test_from_dict_rejects_unknown_names_and_lists_valid_ones():
    with pytest.raises(RaykdError, match="unknown hyperparameter.*temprature.*valid names:.*temperature"):
        DistillConfig.from_dict({"temprature": 2.0})


@pytest.mark.parametrize("values, message", [
    ({"temperature": 0.0}, "temperature=0.0 is out of range; it must be > 0"),
    ({"w_attention": -1.0}, "w_attention=-1.0 is out of range"),
    ({"learning_rate": 0.0}, "learning_rate=0.0 is out of range"),
    ({"algorithm": "magic"}, "algorithm='magic' is not one of"),
    ({"epochs": 0}, "epochs=0 is out of range"),
    ({"epochs": 2.5}, "not a valid int"),
])
def test_bad_values_are_one_line_errors(values, message):
    with pytest.raises(RaykdError, match=message) as err:
        DistillConfig.from_dict(values)
    assert "\n" not in str(err.value)


def test_numpy_like_values_are_coerced():
    cfg = DistillConfig.from_dict({"epochs": 3.0, "temperature": 2, "freeze_lower": "true"})
    assert cfg.epochs == 3 and isinstance(cfg.temperature, float) and cfg.freeze_lower is True


def test_every_field_is_a_flag_with_help():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    args = parser.parse_args(["--algorithm", "pid", "--w-soft", "0.5", "--freeze-lower"])
    cfg = config_from_args(args)
    assert (cfg.algorithm, cfg.w_soft, cfg.freeze_lower) == ("pid", 0.5, True)
    helps = {a.dest: a.help for a in parser._actions if a.dest in DistillConfig.names()}
    assert set(helps) == set(DistillConfig.names()) and all(helps.values())
