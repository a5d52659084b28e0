"""Schedules: which terms, weights, pairs and trainable layers each stage has."""

import pytest

from raykd.method.algorithms import ALGORITHMS, Term, epoch_plan, schedule, teacher_fields
from raykd.method.config import DistillConfig

N = 3


def test_registry_has_the_five_algorithms():
    assert set(ALGORITHMS) == {"finetune", "kd", "all", "pid", "sid"}


def test_finetune_uses_gold_labels_only_and_no_teacher():
    stages = schedule(DistillConfig(algorithm="finetune", epochs=2), N)
    assert [s.terms for s in stages] == [(Term("hard_label", 1.0),)]
    assert stages[0].epochs == 2 and stages[0].trainable == (0, 1, 2, 3, 4)
    assert teacher_fields(stages) == set()


def test_kd_soft_labels_with_optional_hard_weight():
    assert schedule(DistillConfig(algorithm="kd"), N)[0].terms == (Term("soft_label", 1.0),)
    stage = schedule(DistillConfig(algorithm="kd", w_soft=0.5, w_hard=0.5), N)[0]
    assert stage.terms == (Term("soft_label", 0.5), Term("hard_label", 0.5))
    assert teacher_fields([stage]) == {"logits"}


def test_all_layers_at_once_with_soft_labels():
    (stage,) = schedule(DistillConfig(algorithm="all", epochs=4), N)
    assert stage.terms == (Term("attention_kl", 1.0, (1, 2, 3)), Term("cls_cosine", 1.0, (1, 2, 3)),
                           Term("soft_label", 1.0))
    assert stage.epochs == 4 and stage.classification
    assert teacher_fields([stage]) == {"attentions", "cls", "logits"}


def test_pid_one_pair_at_a_time_then_classification():
    stages = schedule(DistillConfig(algorithm="pid", stage_epochs=2, epochs=3), N)
    assert [s.name for s in stages] == ["pair1", "pair2", "pair3", "classify"]
    assert [t.pairs for t in stages[1].terms] == [(2,), (2,)]
    assert [s.classification for s in stages] == [False, False, False, True]
    assert stages[-1].terms == (Term("soft_label", 1.0),)
    assert stages[1].trainable == (0, 1, 2)
    assert len(epoch_plan(stages)) == 3 * 2 + 3


def test_pid_freeze_lower_trains_only_the_current_layer():
    stages = schedule(DistillConfig(algorithm="pid", freeze_lower=True), N)
    assert [s.trainable for s in stages[:3]] == [(1,), (2,), (3,)]
    assert stages[-1].trainable == (0, 1, 2, 3, 4)


def test_sid_stacks_pairs():
    stages = schedule(DistillConfig(algorithm="sid"), N)
    assert [s.terms[0].pairs for s in stages[:3]] == [(1,), (1, 2), (1, 2, 3)]
    assert all(t.loss != "soft_label" for s in stages[:3] for t in s.terms)


def test_zero_weights_drop_terms_and_other_losses_are_chosen_by_name():
    cfg = DistillConfig(algorithm="sid", w_attention=0.0, hidden_loss="hidden_mse")
    stages = schedule(cfg, N)
    assert [t.loss for t in stages[0].terms] == ["hidden_mse"]
    assert teacher_fields(stages) == {"hidden_states", "logits"}


@pytest.mark.parametrize("name", ["kd", "all", "pid", "sid", "finetune"])
def test_epoch_plan_ends_in_a_classification_stage(name):
    plan = epoch_plan(schedule(DistillConfig(algorithm=name), N))
    assert plan[-1][0].classification


@pytest.mark.parametrize("freeze_lower, changed", [(True, [2]), (False, [0, 1, 2])])
def test_pid_with_freeze_lower_trains_only_the_pairs_block(freeze_lower, changed):
    """One real optimisation step of PID's second stage (pair 2) on a tiny student: with freeze_lower only
    block 2 moves; without it the embeddings and block 1 below it move too. Nothing above ever moves."""
    import torch

    from conftest import tiny_bert
    from raykd import models
    from raykd.training import precision
    from raykd.training.worker import frozen_parameters, make_optimizer, train_epoch

    teacher = tiny_bert(layers=4)
    teacher.set_attn_implementation("eager")  # attention maps are returned by the eager implementation only
    cfg = DistillConfig(algorithm="pid", freeze_lower=freeze_lower, w_attention=1.0, w_hidden=1.0, learning_rate=1e-2)
    student = models.build_student(teacher, 2, (2, 4), "mapped")
    stage = schedule(cfg, 2)[1]
    assert stage.name == "pair2"
    ids = torch.randint(1000, 2000, (4, 12))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        out = teacher(input_ids=ids, attention_mask=mask, output_attentions=True, output_hidden_states=True)
    batch = {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1, 0, 1]),
             "teacher": {"attentions": torch.stack([out.attentions[1], out.attentions[3]], 1),
                         "cls": torch.stack([out.hidden_states[2][:, 0], out.hidden_states[4][:, 0]], 1)}}
    before = [[p.detach().clone() for p in group] for group in models.layer_parameters(student)]
    optimizer, scheduler = make_optimizer(student, cfg, stage, 1)
    scaler = precision.grad_scaler("fp32", torch.device("cpu"))
    train_epoch(student, [batch], stage, cfg, optimizer, scheduler, frozen_parameters(student, stage),
                torch.device("cpu"), scaler)
    moved = [i for i, (old, group) in enumerate(zip(before, models.layer_parameters(student)))
             if any(not torch.equal(a, p) for a, p in zip(old, group))]
    assert moved == changed


def test_the_optimizer_is_fused_adamw_with_no_decay_on_biases_and_layer_norms():
    """make_optimizer: torch's fused AdamW on CPU (one kernel for every parameter, results/epoch-speed.md), weight
    decay on weights only, and the linear schedule's warm-up starting at zero."""
    import torch

    from conftest import tiny_bert
    from raykd.training.worker import make_optimizer

    model = tiny_bert(layers=2)
    cfg = DistillConfig(algorithm="kd", weight_decay=0.01, warmup_ratio=0.1, learning_rate=1e-3)
    optimizer, scheduler = make_optimizer(model, cfg, schedule(cfg, 2)[0], 10)
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["fused"] is True
    decayed, plain = optimizer.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert decayed["weight_decay"] == 0.01 and plain["weight_decay"] == 0.0
    assert all(not names[id(p)].endswith(("bias", "LayerNorm.weight")) for p in decayed["params"])
    assert {names[id(p)].rsplit(".", 1)[-1] for p in plain["params"]} == {"bias", "weight"}
    assert len(decayed["params"]) + len(plain["params"]) == len(names)
    assert scheduler.get_last_lr()[0] == 0.0
