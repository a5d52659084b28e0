"""The student's shape: depth and widths cut from a real teacher by activation importance (raykd.student.pruning),
checked in the run plan, trained with every internal loss, exported and served; latency bands (raykd.tuning.bands);
the Pareto front (raykd.artifacts.front)."""

import numpy as np
import pytest
import torch
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

from raykd import models
from raykd.artifacts import deploy
from raykd.student.pareto import non_dominated, spread
from raykd.data import DataSource, as_columns, load_split, tokenize
from raykd.errors import RaykdError
from raykd.method.algorithms import Stage, Term
from raykd.method.config import DistillConfig
from raykd.method.objective import stage_loss
from raykd.method.plan import resolve
from raykd.student import pruning
from raykd.student.shape import Shape, grid
from raykd.tasks import get_task
from raykd.training.batches import Collator
from raykd.teacher_outputs.cache import LiveTeacher
from raykd.tuning.bands import BandedASHA, latency_bands
from raykd.tuning.spaces import load_space


def teacher_model(hidden=32, heads=4, ffn=64, layers=4, seed=0):
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=ffn, max_position_embeddings=128, num_labels=2)
    return BertForSequenceClassification._from_config(config, attn_implementation="eager").eval()


@pytest.fixture(scope="module")
def rte_rows(glue_dir, tokenizer, tmp_path_factory):
    """48 real RTE training rows, tokenized (raykd.data.as_columns)."""
    rows = load_split(get_task("rte"), "train", DataSource(data_dir=str(glue_dir))).select(range(48))
    return as_columns(tokenize(rows, tokenizer, 64, tmp_path_factory.mktemp("tok")))


def outputs(model, batch):
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     token_type_ids=batch["token_type_ids"], output_attentions=True, output_hidden_states=True)


def test_identity_student_is_the_teacher(rte_rows, tokenizer):
    """Every teacher layer in order at full width, through the pruning path: the teacher's logits, attention maps
    and [CLS] vectors on real rows (within 1e-5 in fp32): nothing dropped or re-initialised."""
    teacher = teacher_model()
    importance = pruning.measure(teacher, rte_rows, tokenizer.pad_token_id, rows=32)
    kept = pruning.keep(importance, (1, 2, 3, 4), 32, 64)
    student = models.build_student(teacher, 4, (1, 2, 3, 4), "mapped", kept).eval()
    batch = Collator(tokenizer, rte_rows, False)(list(range(16)))
    t, s = outputs(teacher, batch), outputs(student, batch)
    assert torch.allclose(t.logits, s.logits, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(t.attentions, s.attentions))
    assert all(torch.allclose(a[:, 0], b[:, 0], atol=1e-5) for a, b in zip(t.hidden_states, s.hidden_states))


def test_narrow_student_holds_the_teachers_kept_weights(rte_rows, tokenizer):
    teacher = teacher_model()
    importance = pruning.measure(teacher, rte_rows, tokenizer.pad_token_id, rows=32)
    assert importance.hidden.shape == (32,) and importance.ffn.shape == (4, 64)
    assert importance.query_key.shape == importance.value.shape == (4, 4, 8)
    kept = pruning.keep(importance, (2, 4), 16, 24)
    student = models.build_student(teacher, 2, (2, 4), "mapped", kept)
    assert (student.config.hidden_size, student.config.intermediate_size, student.config.num_hidden_layers) == (16, 24, 2)
    assert len(kept.hidden) == 16 and all(len(q) == 16 for q in kept.query_key)  # 4 of 8 channels of each head
    t_block, s_block = teacher.bert.encoder.layer[3], student.bert.encoder.layer[1]  # student layer 2 <- teacher 4
    assert torch.equal(s_block.intermediate.dense.weight, t_block.intermediate.dense.weight[kept.ffn[1]][:, kept.hidden])
    assert torch.equal(s_block.attention.self.value.weight,
                       t_block.attention.self.value.weight[kept.value[1]][:, kept.hidden])
    assert torch.equal(s_block.output.LayerNorm.weight, t_block.output.LayerNorm.weight[kept.hidden])
    assert torch.equal(student.bert.embeddings.word_embeddings.weight,
                       teacher.bert.embeddings.word_embeddings.weight[:, kept.hidden])
    assert torch.equal(student.classifier.weight, teacher.classifier.weight[:, kept.hidden])
    # the most active FFN neurons are kept: each kept one scores at least as high as each one left out
    scores = importance.ffn[3]
    left = np.setdiff1d(np.arange(64), kept.ffn[1].numpy())
    assert scores[kept.ffn[1].numpy()].min() >= scores[left].max()


def test_every_axis_trains_with_every_internal_loss_exports_and_serves(rte_rows, tokenizer, tmp_path):
    """Depth, hidden and FFN narrowed at once: one step of soft labels, attention KL, [CLS] cosine and hidden MSE
    against the live teacher (its [CLS] and hidden states cut to the kept channels), then save_pretrained, a plain
    transformers load and ONNX Runtime within 1e-3 of PyTorch."""
    teacher = teacher_model()
    importance = pruning.measure(teacher, rte_rows, tokenizer.pad_token_id, rows=32)
    kept = pruning.keep(importance, (2, 4), 16, 32)
    student = models.build_student(teacher, 2, (2, 4), "mapped", kept)
    live = LiveTeacher(teacher, rte_rows, {"logits", "attentions", "cls", "hidden_states"}, tokenizer.pad_token_id)
    batch = Collator(tokenizer, rte_rows, False, live, (2, 4), kept.hidden)(list(range(8)))
    assert batch["teacher"]["cls"].shape == (8, 2, 16) and batch["teacher"]["hidden_states"].shape[-1] == 16
    stage = Stage("all", 1, (Term("soft_label", 1.0), Term("attention_kl", 1.0, (1, 2)),
                             Term("cls_cosine", 1.0, (1, 2)), Term("hidden_mse", 1.0, (1, 2))), (0, 1, 2, 3), True)
    student.train()
    loss, parts = stage_loss(student, batch, stage, 2.0)
    loss.backward()
    assert torch.isfinite(loss) and set(parts) == {"soft_label", "attention_kl", "cls_cosine", "hidden_mse"}
    assert all(p.grad is not None for p in student.bert.encoder.parameters())
    folder = tmp_path / "student"
    student.eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    loaded = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    assert loaded.config.hidden_size == 16 and loaded.config.intermediate_size == 32
    deploy.export_onnx(folder, folder / "model.onnx")
    inputs = deploy.batches(tokenizer, rte_rows, 8, 16)
    reference = deploy.predict(deploy.TorchModel(folder), inputs)
    served = deploy.predict(deploy.OnnxModel(folder / "model.onnx"), inputs)
    assert np.abs(reference - served).max() < 1e-3


@pytest.mark.parametrize("values, message", [
    ({"student_hidden_size": 30}, "student_hidden_size=30 is not a multiple of the teacher's 4 heads"),
    ({"student_ffn_size": 128}, "student_ffn_size=128 is wider than the teacher's 64"),
    ({"student_hidden_size": 64}, "student_hidden_size=64 is wider than the teacher's 32"),
    ({"student_layers": 5}, "student_layers=5"),
])
def test_a_shape_the_teacher_cannot_give_is_refused_by_the_plan(values, message):
    with pytest.raises(RaykdError, match=message.replace("(", r"\(")):
        resolve(teacher_model().config, DistillConfig(layer_map="uniform", **values))


def test_the_plan_records_the_shape_and_counts_its_parameters():
    teacher = teacher_model()
    plan = resolve(teacher.config, DistillConfig(student_layers=2, student_hidden_size=16, student_ffn_size=32,
                                                 layer_map="uniform"))
    assert plan.narrowed and plan.shape == "L2-H16-F32" == Shape(2, 16, 32).name
    kept = pruning.keep(pruning.Importance(np.ones(32), np.ones((4, 64)), np.ones((4, 4, 8)), np.ones((4, 4, 8))),
                        plan.layer_map, 16, 32)
    built = models.build_student(teacher, 2, plan.layer_map, "mapped", kept)
    assert plan.student_params_total == sum(p.numel() for p in built.parameters())
    assert not resolve(teacher.config, DistillConfig()).narrowed


def test_grid_takes_sizes_and_shares_of_the_teacher():
    config = teacher_model().config
    shapes = grid({"student_layers": [1, 2], "student_hidden_size": [0.5, 32], "student_ffn_size": [0.25]}, config)
    assert [s.name for s in shapes] == ["L1-H16-F16", "L1-H32-F16", "L2-H16-F16", "L2-H32-F16"]
    assert grid({"student_hidden_size": [0.3]}, config)[0].hidden == 8  # 9.6 rounded down to a multiple of 4 heads


@pytest.mark.parametrize("shape, message", [
    ('{"student_layers": [0, 2]}', "student_layers=0 is neither a size >= 1"),
    ('{"student_width": [2]}', "student_width: not a shape axis"),
    ('{"student_ffn_size": 0.5}', "student_ffn_size: give a list of values"),
])
def test_a_bad_shape_axis_names_the_space_file_line(tmp_path, shape, message):
    path = tmp_path / "space.py"
    path.write_text(f"from ray import tune\nspace = {{'temperature': tune.uniform(1, 4)}}\nshape = {shape}\n")
    with pytest.raises(RaykdError, match=message) as err:
        load_space(path)
    assert str(err.value).startswith(f"{path}:3: ")


def test_a_shape_axis_may_not_also_be_drawn(tmp_path):
    path = tmp_path / "space.py"
    path.write_text("from ray import tune\nspace = {'student_layers': tune.choice([1, 2])}\n"
                    "shape = {'student_layers': [1, 2]}\n")
    with pytest.raises(RaykdError, match="list it in `shape` only"):
        load_space(path)


def trial(shape: str) -> Trial:
    return Trial("run_trial", config={"student_shape": shape}, stub=True)


def test_latency_bands_keep_a_fast_weaker_shape_that_plain_asha_stops():
    """Two slow, accurate trials and a fast, weaker one reach the first rung. Plain ASHA (reduction factor 2) stops
    the fast one; inside latency bands it competes only with shapes of its own cost and goes on."""
    latencies = {"L1-H16-F16": 0.5, "L6-H32-F64": 4.0}
    assert latency_bands(latencies, 2) == {"L1-H16-F16": 0, "L6-H32-F64": 1}
    results = [("L6-H32-F64", 0.80), ("L6-H32-F64", 0.78), ("L1-H16-F16", 0.70)]

    def last_action(scheduler):
        scheduler.set_search_properties("score", "max")
        trials = [trial(shape) for shape, _ in results]
        actions = []
        for t in trials:
            scheduler.on_trial_add(None, t)
        for t, (_, score) in zip(trials, results):
            actions.append(scheduler.on_trial_result(None, t, {"cls_epoch": 1, "score": score}))
        return actions[-1]

    asha = dict(time_attr="cls_epoch", max_t=4, grace_period=1, reduction_factor=2)
    assert last_action(ASHAScheduler(**asha)) == TrialScheduler.STOP
    assert last_action(BandedASHA(latency_bands(latencies, 2), **asha)) == TrialScheduler.CONTINUE


def test_the_front_is_the_non_dominated_trials():
    metric = np.array([0.80, 0.70, 0.75, 0.60, np.nan, 0.70])
    latency = np.array([4.0, 1.0, 4.5, 0.5, 0.1, 2.0])
    assert non_dominated(metric, latency).tolist() == [True, True, False, True, False, False]
    assert spread(["a", "b", "c", "d", "e"], 3) == ["a", "c", "e"] and spread(["a", "b"], 3) == ["a", "b"]


def test_confirmed_shapes_are_set_against_the_papers_student(tmp_path):
    """summary.md's comparison: each confirmed shape's dev mean against the paper's student's, over the same seeds,
    with the one-std rule (a difference within the larger std is no difference)."""
    import json

    import pandas as pd

    from raykd.artifacts.front import against_paper, with_confirmation

    frame = pd.DataFrame({"trial": ["a", "b", "c", "d"], "student_shape": ["L3-H384-F1536", "L1-H192-F768", "L2-H384-F768",
                                                                           "L6-H384-F1536"],
                          "latency_ms": [8.0, 1.0, 4.0, 9.0], "best_value": [0.6, 0.55, 0.62, 0.5]})
    configs = [{"search_trial": t, "n": 3, "val_accuracy_mean": v, "val_accuracy_std": 0.01, "dev_accuracy_mean": d,
                "dev_accuracy_std": s, "constant_runs": k} for t, v, d, s, k in (
                    ("a", 0.6, 0.60, 0.01, 0), ("b", 0.55, 0.595, 0.02, 1), ("c", 0.62, 0.65, 0.01, 0), ("e", 0.7, 0.7, 0.0, 3))]
    frame = pd.concat([frame, pd.DataFrame({"trial": ["e"], "student_shape": ["L1-H192-F1536"], "latency_ms": [0.5],
                                            "best_value": [0.7]})], ignore_index=True)
    (tmp_path / "confirm.json").write_text(json.dumps({"selection_metric": "val_accuracy", "dev_metric": "dev_accuracy",
                                                       "configs": configs}))
    merged = with_confirmation(frame, tmp_path)
    assert merged["confirmed_n"].tolist()[:3] == [3, 3, 3] and pd.isna(merged["confirmed_n"].iloc[3])
    lines = against_paper(merged, {"paper": "L3-H384-F1536"})
    assert "trial a" in lines[0] and "0.6000 +- 0.0100" in lines[0]
    e, b, c = lines[-3:]
    # a student that predicts one class on every seed scores the majority class's metric: no verdict on its shape
    assert e.startswith("| e |") and "constant on every seed (predicts one class): not comparable" in e
    assert b.startswith("| b | L1-H192-F768") and "0.12" in b and "no difference" in b       # -0.005 within 0.02
    assert c.startswith("| c |") and "better by more than one std" in c                         # +0.05 over 0.01


def test_latencies_timed_while_the_cores_are_busy_are_flagged(tmp_path):
    """A shape's latency measured while other processes load the CPUs is noise (up to 9x on these 2 cores): the
    measurement records how busy the machine was and the search is told, in a `caution:` line, what to do."""
    import multiprocessing
    import os

    from raykd.student import cost
    from raykd.student.shape import Shape
    from conftest import tiny_bert

    def spin():
        while True:
            pass

    spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(os.cpu_count() or 2)]
    for p in spinners:
        p.start()
    said = []
    try:
        costs = cost.measure([Shape(1, 32, 64)], tiny_bert().config, 8, 1, tmp_path, said.append)
    finally:
        for p in spinners:
            p.kill()
    assert costs["L1-H32-F64"]["busy_percent"] > cost.BUSY_PERCENT
    assert said[-1].startswith("caution: 1 of 1 shapes were timed while other processes used up to") and str(tmp_path) in said[-1]
