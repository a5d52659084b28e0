"""Cached teacher outputs are what a live teacher forward pass gives, and so are the losses."""

import numpy as np
import pytest
import torch

from raykd.data import DataSource, load_split, tokenize
from raykd.method.algorithms import schedule
from raykd.method.config import DistillConfig
from raykd.method.objective import stage_loss
from raykd.models import build_student
from raykd.tasks import get_task
from raykd.teacher_outputs.cache import TeacherOutputs, compute_outputs
from raykd.training.batches import Collator
from conftest import tiny_bert

FIELDS = {"logits", "cls", "attentions", "hidden_states"}


@pytest.fixture(scope="module")
def rows(glue_dir, tokenizer, tmp_path_factory):
    dev = load_split(get_task("rte"), "dev", DataSource(data_dir=str(glue_dir))).select(range(24))
    return tokenize(dev, tokenizer, 48, tmp_path_factory.mktemp("tok")).to_dict()


def test_cached_batch_equals_live_forward(rows, tokenizer):
    teacher = tiny_bert(layers=4)
    teacher.config._attn_implementation = "eager"
    arrays = compute_outputs(teacher, rows["input_ids"], rows["token_type_ids"], FIELDS, batch_size=5)
    cache = TeacherOutputs(arrays, num_layers=4, num_heads=4)
    indices = [3, 17, 0, 9]
    batch = Collator(tokenizer, rows, regression=False)(indices)
    with torch.no_grad():
        live = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       token_type_ids=batch["token_type_ids"], output_attentions=True, output_hidden_states=True)
    cached = cache.batch(indices, (2, 4), batch["input_ids"].shape[1])
    real = batch["attention_mask"].bool()
    assert torch.allclose(cached["logits"], live.logits, atol=1e-5)
    for j, layer in enumerate((2, 4)):
        assert torch.allclose(cached["cls"][:, j], live.hidden_states[layer][:, 0], atol=2e-3)
        att = live.attentions[layer - 1] * real[:, None, :, None]  # padded rows hold no information
        assert torch.allclose(cached["attentions"][:, j].float(), att, atol=1e-3)
        assert torch.allclose(cached["hidden_states"][:, j][real].float(), live.hidden_states[layer][real], atol=2e-3)
    # the maps and hidden states stay in their stored fp16 (the losses cast them up): half the bytes to fill
    assert cached["attentions"].dtype == cached["hidden_states"].dtype == torch.float16


@pytest.mark.parametrize("algorithm", ["all", "sid"])
def test_losses_with_cache_equal_losses_with_live_teacher(rows, tokenizer, algorithm):
    teacher = tiny_bert(layers=4, init_range=0.3)  # peaked attention, so the losses are far from 0
    teacher.config._attn_implementation = "eager"
    student = build_student(teacher, 2, (2, 4), "random").eval()  # far from the teacher: losses well above fp16 noise
    cfg = DistillConfig(algorithm=algorithm, hidden_loss="hidden_mse", temperature=2.0)
    stage = schedule(cfg, 2)[-2] if algorithm == "sid" else schedule(cfg, 2)[0]
    arrays = compute_outputs(teacher, rows["input_ids"], rows["token_type_ids"], FIELDS, batch_size=7)
    cached = Collator(tokenizer, rows, False, TeacherOutputs(arrays, 4, 4), (2, 4))(list(range(0, 24, 3)))
    with torch.no_grad():
        live = teacher(input_ids=cached["input_ids"], attention_mask=cached["attention_mask"],
                       token_type_ids=cached["token_type_ids"], output_attentions=True, output_hidden_states=True)
        live_batch = {**cached, "teacher": {
            "logits": live.logits,
            "attentions": torch.stack([live.attentions[1], live.attentions[3]], 1),
            "cls": torch.stack([live.hidden_states[2][:, 0], live.hidden_states[4][:, 0]], 1),
            "hidden_states": torch.stack([live.hidden_states[2], live.hidden_states[4]], 1)}}
        loss_cached, parts_cached = stage_loss(student, cached, stage, cfg.temperature)
        loss_live, parts_live = stage_loss(student, live_batch, stage, cfg.temperature)
    assert set(parts_cached) == {t.loss for t in stage.terms}
    assert float(loss_live) > 0.01
    assert float(loss_cached) == pytest.approx(float(loss_live), rel=2e-3)


def test_outputs_are_stored_unpadded(rows):
    teacher = tiny_bert(layers=4)
    teacher.config._attn_implementation = "eager"
    arrays = compute_outputs(teacher, rows["input_ids"], None, {"attentions"}, batch_size=8)
    lengths = np.array([len(x) for x in rows["input_ids"]])
    assert arrays["attentions"].dtype == np.float16
    assert arrays["attentions"].size == int((4 * 4 * lengths ** 2).sum())
