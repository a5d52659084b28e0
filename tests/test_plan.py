"""raykd.method.plan: one configuration resolved against one teacher, the facts every part of a run reads."""

import pytest

from conftest import tiny_bert
from raykd import models
from raykd.errors import RaykdError
from raykd.method.config import DistillConfig
from raykd.method.plan import resolve


def test_the_plan_holds_depth_map_stages_fields_and_the_sizes_of_the_student_it_describes():
    teacher = tiny_bert(layers=6, heads=4)
    run = resolve(teacher.config, DistillConfig.from_dict({"algorithm": "sid", "layer_map": "skip", "stage_epochs": 2,
                                                           "epochs": 3, "w_hidden": 1.0}), workers=2)
    assert (run.teacher_depth, run.teacher_heads, run.student_layers, run.layer_map) == (6, 4, 3, (2, 4, 6))
    assert [s.name for s in run.stages][-1] == "classify" and run.epochs == 3 * 2 + 3
    assert run.teacher_fields == {"attentions", "cls", "logits"}
    built = models.parameter_counts(models.build_student(teacher, 3, run.layer_map, "mapped"))
    assert (run.student_params_total, run.student_params_non_embedding) == (built["total"], built["non_embedding"])
    record = run.to_dict()
    assert record["layer_map"] == [2, 4, 6] and record["config"]["algorithm"] == "sid" and len(record["stages"]) == 4


def test_kd_reads_only_the_teachers_logits_and_finetune_nothing():
    config = tiny_bert(layers=4).config
    assert resolve(config, DistillConfig.from_dict({"algorithm": "kd"})).teacher_fields == {"logits"}
    assert resolve(config, DistillConfig.from_dict({"algorithm": "finetune"})).teacher_fields == set()


@pytest.mark.parametrize("values, workers, message", [
    ({"student_layers": 5}, None, "student_layers=5"),
    ({"layer_map": "1,2,3"}, None, "layer_map=.1,2,3. has 3 entries for a 2-layer student"),
    ({"layer_map": "skip", "student_layers": 3}, None, "layer_map='skip' needs the teacher's 4 layers"),
    ({"batch_size": 1}, 2, "batch_size=1 is smaller than the 2 workers"),
    ({"algorithm": "pid", "w_attention": 0.0, "w_hidden": 0.0}, None, "leaves pid's stage pair1 with no loss"),
    ({"algorithm": "kd", "w_soft": 0.0, "w_hard": 0.0}, None, "w_soft and w_hard are all 0"),
])
def test_a_configuration_that_cannot_run_fails_naming_its_field(values, workers, message):
    with pytest.raises(RaykdError, match=message):
        resolve(tiny_bert(layers=4).config, DistillConfig.from_dict(values), workers)
