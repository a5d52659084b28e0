"""Every encoder family in raykd.families as the teacher, proven on real RTE rows with tiny random teachers built
here (no network; the MiniLM tokenizer): a student of every teacher layer in order is the teacher, a half-depth
student holds exactly the mapped blocks and every shared module, one epoch of sid and kd trains, and the student
exports to a folder transformers loads and an ONNX file that gives its logits. ModernBERT and DistilBERT also run
the whole distill command on a real Ray cluster."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification

from raykd import distill, families, models
from raykd.artifacts import deploy
from raykd.data import DataSource, as_columns, load_split, tokenize
from raykd.errors import RaykdError
from raykd.method.algorithms import schedule
from raykd.method.config import DistillConfig
from raykd.method.plan import resolve
from raykd.tasks import get_task
from raykd.teacher_outputs.cache import LiveTeacher
from raykd.training import precision
from raykd.training.batches import Collator
from raykd.training.worker import frozen_parameters, make_optimizer, train_epoch
from tiny_teachers import ARCHS, make_teacher

RTE = get_task("rte")


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    """{arch: (teacher in eval mode, tokenizer)} loaded through raykd's own checks."""
    root = tmp_path_factory.mktemp("families")
    return {arch: models.load_teacher(make_teacher(root / arch, arch=arch), RTE, max_seq_length=64) for arch in ARCHS}


@pytest.fixture(scope="module")
def rows(teachers, glue_dir, tmp_path_factory):
    """{arch: 24 real RTE training rows tokenized by that teacher's tokenizer (raykd.data.as_columns)}."""
    split = load_split(RTE, "train", DataSource(data_dir=str(glue_dir))).select(range(24))
    cache = tmp_path_factory.mktemp("tok")
    return {arch: as_columns(tokenize(split, tok, 64, cache)) for arch, (_, tok) in teachers.items()}


def outputs(model, batch):
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
    with torch.no_grad():
        return model(**inputs, output_attentions=True, output_hidden_states=True)


@pytest.mark.parametrize("arch", ARCHS)
def test_a_student_of_every_teacher_layer_is_the_teacher(arch, teachers, rows):
    """Identity map at the teacher's depth: the teacher's logits, attention maps and [CLS] vectors on real rows
    within 1e-5 (fp32). A shared module dropped or re-initialised (DeBERTa's relative positions, MPNet's
    attention bias, ELECTRA's projection, ModernBERT's final norm or a block of the wrong kind) fails here."""
    teacher, tokenizer = teachers[arch]
    depth = teacher.config.num_hidden_layers
    student = models.build_student(teacher, depth, tuple(range(1, depth + 1)), "mapped").eval()
    batch = Collator(tokenizer, rows[arch], False)(list(range(16)))
    assert ("token_type_ids" in batch) == families.has_token_types(teacher.config)
    t, s = outputs(teacher, batch), outputs(student, batch)
    assert torch.allclose(t.logits, s.logits, atol=1e-5)
    assert len(s.attentions) == depth and all(torch.allclose(a, b, atol=1e-5) for a, b in zip(t.attentions, s.attentions))
    assert all(torch.allclose(a[:, 0], b[:, 0], atol=1e-5) for a, b in zip(t.hidden_states, s.hidden_states))
    assert not torch.allclose(t.logits, t.logits.mean(0))  # the rows are told apart: a real check, not constants


@pytest.mark.parametrize("arch", ARCHS)
def test_a_half_depth_student_holds_the_mapped_blocks_and_every_shared_module(arch, teachers):
    teacher, _ = teachers[arch]
    family = families.family_of(teacher.config)
    mapping = (2, 4)
    student = models.build_student(teacher, 2, mapping, "mapped")
    t_state, s_state = teacher.state_dict(), student.state_dict()
    copied = set()
    for key, value in s_state.items():
        block = family.block_index(key)
        source = key if block is None else block[1].format(i=mapping[block[0]] - 1)
        assert torch.equal(value, t_state[source]), key
        copied.add(source)
    left = {k for k in t_state if k not in copied}
    # what stays behind: the blocks not mapped, and the weights the family's first block has no place for
    expected = {k for k in t_state if (b := family.block_index(k)) and b[0] + 1 not in mapping}
    expected |= {f"{family.block_index(k)[1].format(i=1)}" for k in t_state
                 if (b := family.block_index(k)) and b[0] == 1 and any(f".{d}." in b[1] for d in family.first_block_drops)}
    assert left == expected
    assert len(family.block_list(student)) == 2
    if family.layer_kinds:  # each block is of its teacher block's kind: teacher 2 and 4 slide, 1 and 3 are global
        assert teacher.config.layer_types == ["full_attention", "sliding_attention"] * 2
        assert student.config.layer_types == ["sliding_attention", "sliding_attention"]
        reloaded = families.student_config(teacher.config, (1, 2))
        assert reloaded.layer_types == ["full_attention", "sliding_attention"]


@pytest.mark.parametrize("arch", ARCHS)
def test_sid_and_kd_train_an_epoch_and_the_student_exports(arch, teachers, rows, tmp_path):
    """One epoch (3 batches of 8) of sid's first stage (attention KL + [CLS] cosine on layer 1's pair) and of kd
    against the live teacher, through the worker's own train_epoch; then the kd student saved, loaded by plain
    transformers, exported to ONNX and checked against PyTorch on the rows (raykd.artifacts.deploy.export)."""
    teacher, tokenizer = teachers[arch]
    fields = {"logits", "attentions", "cls"}
    live = LiveTeacher(teacher, rows[arch], fields, tokenizer.pad_token_id)
    for algorithm in ("sid", "kd"):
        cfg = DistillConfig(algorithm=algorithm, learning_rate=1e-3, batch_size=8)
        plan = resolve(teacher.config, cfg)
        student = models.build_student(teacher, plan.student_layers, plan.layer_map, "mapped")
        stage = schedule(cfg, plan.student_layers)[0]
        collate = Collator(tokenizer, rows[arch], False, live, plan.layer_map)
        loader = [collate(list(range(i, i + 8))) for i in range(0, 24, 8)]
        optimizer, scheduler = make_optimizer(student, cfg, stage, len(loader))
        before = [p.detach().clone() for p in student.parameters()]
        loss = train_epoch(student, loader, stage, cfg, optimizer, scheduler, frozen_parameters(student, stage),
                           torch.device("cpu"), precision.grad_scaler("fp32", torch.device("cpu")))
        assert np.isfinite(loss) and loss > 0, (algorithm, loss)
        assert any(not torch.equal(a, p) for a, p in zip(before, student.parameters())), algorithm
    folder = tmp_path / "student"
    student.eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    checks = deploy.export(folder, RTE, ("hf", "onnx"), rows[arch])
    loaded = AutoModelForSequenceClassification.from_pretrained(folder)
    assert loaded.config.model_type == teacher.config.model_type and loaded.config.num_hidden_layers == 2
    assert checks["onnx"]["max_logit_diff"] < 1e-3


def test_shape_axes_a_family_does_not_have_are_refused_before_any_compute(teachers):
    deberta = teachers["deberta-v2"][0].config
    with pytest.raises(RaykdError, match="student_ffn_size=32: the DeBERTa-v2 teacher's widths cannot be cut"):
        resolve(deberta, DistillConfig(student_ffn_size=32))
    electra = teachers["electra"][0].config  # embeddings projected from 16 to 32 channels
    with pytest.raises(RaykdError, match="the ELECTRA teacher's widths cannot be cut"):
        resolve(electra, DistillConfig(student_hidden_size=16))
    assert resolve(teachers["modernbert"][0].config, DistillConfig(student_layers=1)).student_layers == 1
    assert families.width_axes(teachers["roberta"][0].config) == families.WIDTH_AXES
    assert families.width_axes(teachers["distilbert"][0].config) == ()


def test_position_limits_follow_each_familys_offset(teachers):
    limits = {arch: families.positions(teachers[arch][0].config) for arch in ("bert", "roberta", "mpnet", "distilbert")}
    assert limits == {"bert": 512, "roberta": 513, "mpnet": 512, "distilbert": 512}  # roberta: pad id 0, +2 table


@pytest.mark.parametrize("arch", ["modernbert", "distilbert"])
def test_the_new_families_distil_on_a_real_cluster(arch, ray_cluster, glue_dir, tmp_path):
    """The distill command end to end (two DDP workers on Ray Train, the teacher-output cache, sid's stages) for
    the two families raykd refused before; the saved student loads in plain transformers."""
    teacher = make_teacher(tmp_path / "teacher", arch=arch)
    out = tmp_path / "run"
    record = distill.main(["--task", "rte", "--data-dir", str(glue_dir), "--teacher", str(teacher),
                           "--algorithm", "sid", "--epochs", "1", "--train-fraction", "0.02", "--max-seq-length", "64",
                           "--workers", "2", "--out", str(out), "--cache-dir", str(tmp_path / "cache")])
    assert record["layer_map"] == [2, 4] and [h["stage"] for h in record["history"]][-1] == "classify"
    assert all(np.isfinite(h["train_loss"]) for h in record["history"])
    student = AutoModelForSequenceClassification.from_pretrained(out / "student")
    assert student.config.model_type == arch and student.config.num_hidden_layers == 2
    assert json.loads((out / "student" / "plan.json").read_text())["layer_map"] == [2, 4]


def test_the_docs_table_has_a_row_for_every_family():
    from pathlib import Path

    lines = (Path(__file__).parents[1] / "docs" / "families.md").read_text().splitlines()
    for family in families.FAMILIES:
        row = f"| {family.name} | {', '.join(family.model_types)} | {family.blocks} |"
        assert any(line.startswith(row) for line in lines), row
