"""Layer maps, students built from teachers, parameter counts, teacher checks."""

import pytest
import torch

from raykd.errors import RaykdError
from raykd.models import (build_student, layer_map, layer_parameters, load_teacher,
                          parameter_counts, student_depth)
from raykd.tasks import get_task
from conftest import tiny_bert


@pytest.mark.parametrize("spec, t, n, expected", [
    ("skip", 12, 6, (2, 4, 6, 8, 10, 12)), ("skip", 6, 3, (2, 4, 6)), ("last", 6, 3, (4, 5, 6)),
    ("bottom", 6, 3, (1, 2, 3)), ("uniform", 6, 4, (2, 3, 4, 6)), ("1, 3,6", 6, 3, (1, 3, 6))])
def test_layer_maps(spec, t, n, expected):
    assert layer_map(spec, t, n) == expected


@pytest.mark.parametrize("spec, t, n, message", [
    ("2,4,6,6", 6, 3, "has 4 entries for a 3-layer student"),
    ("2,4,7", 6, 3, r"teacher layer\(s\) \[7\] outside 1..6"),
    ("skip", 6, 4, "use --layer-map uniform"),
    ("sideways", 6, 3, "neither skip, last, bottom, uniform nor a list")])
def test_layer_map_errors(spec, t, n, message):
    with pytest.raises(RaykdError, match=message):
        layer_map(spec, t, n)


def test_default_student_is_half_the_teacher():
    assert student_depth(12, 0) == 6 and student_depth(6, 0) == 3 and student_depth(6, 2) == 2


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_mapped_init_copies_embeddings_and_matched_layers():
    teacher = tiny_bert(layers=4)
    student = build_student(teacher, 2, (2, 4), "mapped")
    assert student.config.num_hidden_layers == 2 and student.config.attention_probs_dropout_prob == 0.0
    assert student.config._attn_implementation == "eager"
    assert _same(student.bert.embeddings, teacher.bert.embeddings)
    assert _same(student.bert.encoder.layer[0], teacher.bert.encoder.layer[1])
    assert _same(student.bert.encoder.layer[1], teacher.bert.encoder.layer[3])
    assert _same(student.classifier, teacher.classifier)


def test_bottom_and_random_init():
    teacher = tiny_bert(layers=4)
    bottom = build_student(teacher, 2, (2, 4), "bottom")
    assert _same(bottom.bert.encoder.layer[1], teacher.bert.encoder.layer[1])
    fresh = build_student(teacher, 2, (2, 4), "random")
    assert _same(fresh.bert.embeddings, teacher.bert.embeddings)
    assert not _same(fresh.bert.encoder.layer[0], teacher.bert.encoder.layer[1])


def test_student_deeper_than_teacher_is_an_error():
    with pytest.raises(RaykdError, match="a student of 5 layers is not possible from a 4-layer teacher"):
        build_student(tiny_bert(layers=4), 5, (1, 2, 3, 4, 4), "mapped")


def test_parameter_counts_and_layer_groups():
    teacher = tiny_bert(layers=4)
    student = build_student(teacher, 2, (2, 4), "mapped")
    counts, total = parameter_counts(student), sum(p.numel() for p in student.parameters())
    embedding = sum(p.numel() for p in student.bert.embeddings.parameters())
    assert counts == {"total": total, "non_embedding": total - embedding}
    groups = layer_parameters(student)
    assert len(groups) == 4 and sum(p.numel() for g in groups for p in g) == total


def test_load_teacher_checks_folder_head_and_labels(tiny_teacher_dir, tmp_path):
    teacher, tokenizer = load_teacher(tiny_teacher_dir, get_task("rte"))
    assert not teacher.training and teacher.config._attn_implementation == "eager"
    with pytest.raises(RaykdError, match="has 2 outputs but mnli needs 3"):
        load_teacher(tiny_teacher_dir, get_task("mnli"))
    with pytest.raises(RaykdError, match="has no config.json; fine-tune one"):
        load_teacher(tmp_path, get_task("rte"))
    tiny_bert().bert.save_pretrained(tmp_path / "base")
    with pytest.raises(RaykdError, match="is not a classification model"):
        load_teacher(tmp_path / "base", get_task("rte"))


def test_another_tasks_teacher_as_base_keeps_its_encoder_and_gets_a_fresh_head(tiny_teacher_dir):
    """Intermediate-task transfer (e.g. RTE from MRPC's teacher): from_pretrained would load the old head,
    whose label count matches; the encoder is the teacher's, the head is drawn again."""
    from transformers import AutoModelForSequenceClassification

    from raykd.models import load_base_for_finetuning
    from raykd.tasks import get_task

    old = AutoModelForSequenceClassification.from_pretrained(tiny_teacher_dir)
    old.classifier.bias.data.fill_(1.0)  # a head that a fresh draw (bias 0) cannot reproduce by chance
    old.save_pretrained(tiny_teacher_dir.parent / "mrpc-teacher")
    new = load_base_for_finetuning(str(tiny_teacher_dir.parent / "mrpc-teacher"), get_task("rte"))
    assert new.config.id2label == {0: "entailment", 1: "not_entailment"}
    assert torch.equal(new.bert.encoder.layer[0].attention.self.query.weight, old.bert.encoder.layer[0].attention.self.query.weight)
    assert torch.equal(new.classifier.bias, torch.zeros(2))
    assert not torch.equal(new.classifier.weight, old.classifier.weight)
    assert abs(new.classifier.weight.std().item() - old.config.initializer_range) < 0.01


def test_a_regression_teachers_encoder_serves_a_classification_task(tiny_teacher_dir):
    """STS-B's teacher (one output, problem_type regression) as RTE's base: the head's size differs, which
    from_pretrained refuses unless told; the new model has RTE's two outputs and reads them as classes."""
    from transformers import AutoModelForSequenceClassification

    from raykd.models import load_base_for_finetuning

    old = AutoModelForSequenceClassification.from_pretrained(tiny_teacher_dir, num_labels=1, problem_type="regression",
                                                             ignore_mismatched_sizes=True)
    old.save_pretrained(tiny_teacher_dir.parent / "stsb-teacher")
    new = load_base_for_finetuning(str(tiny_teacher_dir.parent / "stsb-teacher"), get_task("rte"))
    assert new.classifier.weight.shape == (2, old.config.hidden_size)
    assert new.config.problem_type == "single_label_classification"
    assert torch.equal(new.bert.encoder.layer[1].output.dense.weight, old.bert.encoder.layer[1].output.dense.weight)
    back = load_base_for_finetuning(str(tiny_teacher_dir), get_task("stsb"))  # and the other way round
    assert back.classifier.weight.shape[0] == 1 and back.config.problem_type == "regression"
