"""Mixed precision: losses stay fp32 and finite under bf16/fp16 autocast and agree with fp32 within
tolerance; `auto` follows the hardware; fp16 gets a gradient scaler. (A real bf16 run on 2 workers:
test_distill_integration.)"""

import pytest
import torch

from raykd.data import DataSource, load_split, tokenize
from raykd.method.algorithms import schedule
from raykd.method.config import DistillConfig
from raykd.method.objective import stage_loss
from raykd.models import build_student
from raykd.tasks import get_task
from raykd.teacher_outputs.cache import TeacherOutputs, compute_outputs
from raykd.training import precision
from raykd.training.batches import Collator
from conftest import tiny_bert

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def batch(glue_dir, tokenizer, tmp_path_factory):
    rows = tokenize(load_split(get_task("rte"), "dev", DataSource(data_dir=str(glue_dir))).select(range(16)),
                    tokenizer, 64, tmp_path_factory.mktemp("tok")).to_dict()
    teacher = tiny_bert(layers=4, init_range=0.3)  # peaked attention: probabilities near 0 that bf16 would lose
    teacher.config._attn_implementation = "eager"
    arrays = compute_outputs(teacher, rows["input_ids"], rows["token_type_ids"], {"logits", "cls", "attentions"})
    collate = Collator(tokenizer, rows, False, TeacherOutputs(arrays, 4, 4), (2, 4))
    return teacher, collate(list(range(16)))


@pytest.mark.parametrize("name, rel", [("bf16", 0.05), ("fp16", 0.01)])
def test_losses_are_fp32_finite_and_close_to_fp32(batch, name, rel):
    teacher, b = batch
    student = build_student(teacher, 2, (2, 4), "random").eval()
    cfg = DistillConfig(algorithm="all", temperature=2.0)
    stage = schedule(cfg, 2)[0]  # attention KL + [CLS] cosine + soft labels
    with torch.no_grad():
        ref, ref_parts = stage_loss(student, b, stage, cfg.temperature)
        low, low_parts = stage_loss(student, b, stage, cfg.temperature,
                                    torch.autocast("cpu", dtype=precision.DTYPES[name]))
    assert low.dtype == torch.float32 and torch.isfinite(low)
    assert ref_parts["attention_kl"] > 0.01
    for term in ref_parts:
        assert low_parts[term] == pytest.approx(ref_parts[term], rel=rel, abs=1e-4), term


def test_bf16_gradients_reach_the_fp32_weights(batch):
    teacher, b = batch
    student = build_student(teacher, 2, (2, 4), "mapped").train()
    cfg = DistillConfig(algorithm="all")
    loss, _ = stage_loss(student, b, schedule(cfg, 2)[0], cfg.temperature, precision.autocast("bf16", CPU))
    loss.backward()
    weights = student.bert.encoder.layer[0].attention.self.query.weight
    assert weights.dtype == torch.float32 and torch.isfinite(weights.grad).all() and weights.grad.abs().sum() > 0


def test_auto_follows_the_hardware_and_only_fp16_scales():
    assert precision.resolve("auto", CPU) == ("bf16" if precision.native_bf16(CPU) else "fp32")
    assert precision.resolve("fp32", CPU) == "fp32"
    with pytest.raises(ValueError):
        precision.resolve("int8", CPU)
    assert precision.grad_scaler("fp16", CPU).is_enabled()
    assert not precision.grad_scaler("bf16", CPU).is_enabled() and not precision.grad_scaler("auto", CPU).is_enabled()
