"""Serving exports of a tiny real student: the Hugging Face folder, ONNX (dynamic batch and sequence) and
int8 ONNX through real ONNX Runtime, their dev metric on real RTE dev rows against PyTorch, `pipeline`
returning the task's label names, the Hub model card read back by huggingface_hub, and the layer map
of the best trial's own plan."""

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoModelForSequenceClassification, pipeline

from conftest import tiny_bert
from raykd import export
from raykd.artifacts import card, deploy, results
from raykd.data import DataSource, as_columns, load_split, tokenize
from raykd.errors import RaykdError
from raykd.method.config import DistillConfig
from raykd.method.plan import FILE as PLAN_FILE, resolve
from raykd.tasks import get_task

RTE = get_task("rte")


@pytest.fixture(scope="module")
def dev(glue_dir, tokenizer, tmp_path_factory):
    """The first 48 RTE dev rows, tokenized to at most 64 tokens (both labels occur in them)."""
    rows = load_split(RTE, "dev", DataSource(data_dir=str(glue_dir))).select(range(48))
    return as_columns(tokenize(rows, tokenizer, 64, tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tokenizer, dev):
    """A 2-layer student (generic LABEL_i names, as a checkpoint has them) exported in every format."""
    folder = tmp_path_factory.mktemp("student")
    model = tiny_bert(layers=2, seed=3, init_range=0.5)  # wide weights: logits far from ties
    model.config.architectures = ["BertForSequenceClassification"]
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    checks = deploy.export(folder, RTE, deploy.FORMATS, dev)
    return folder, checks


def test_every_format_is_written_and_matches_pytorch_on_dev(exported, dev):
    folder, checks = exported
    assert (folder / "model.safetensors").is_file() and (folder / deploy.ONNX_FILE).is_file() and (folder / deploy.INT8_FILE).is_file()
    assert checks["metric"] == "dev_accuracy" and checks["examples"] == 48
    assert checks["onnx"]["max_logit_diff"] <= deploy.LOGIT_TOLERANCE
    assert checks["onnx"]["value"] == pytest.approx(checks["hf"]["value"], abs=deploy.METRIC_TOLERANCE)
    assert np.isfinite(checks["onnx-int8"]["value"]) and checks["onnx-int8"]["max_logit_diff"] > 0
    assert checks["onnx-int8"]["drop"] == pytest.approx(checks["hf"]["value"] - checks["onnx-int8"]["value"])
    # int8 weights: the file is much smaller than the fp32 one
    assert (folder / deploy.INT8_FILE).stat().st_size < 0.5 * (folder / deploy.ONNX_FILE).stat().st_size


def test_onnx_axes_are_dynamic_and_logits_match_at_other_shapes(exported, tokenizer):
    folder, _ = exported
    session = ort.InferenceSession(str(folder / deploy.ONNX_FILE), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask", "token_type_ids"]
    assert all(isinstance(d, str) for i in session.get_inputs() for d in i.shape)  # symbolic batch and sequence
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    for texts in (["one"], ["a first sentence", "a much longer second sentence with many more words in it", "three"]):
        inputs = tokenizer(texts, padding=True, return_tensors="np")
        got = session.run(["logits"], {k: inputs[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")})[0]
        with torch.inference_mode():
            want = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits.numpy()
        assert got.shape == (len(texts), 2)
        np.testing.assert_allclose(got, want, atol=deploy.LOGIT_TOLERANCE)


def test_pipeline_returns_the_tasks_label_names(exported):
    folder, _ = exported
    classify = pipeline("text-classification", model=str(folder))
    out = classify({"text": "A man is sleeping.", "text_pair": "Nobody sleeps."})
    out = out[0] if isinstance(out, list) else out
    assert out["label"] in RTE.labels and 0 <= out["score"] <= 1
    config = json.loads((folder / "config.json").read_text())
    assert config["id2label"] == {"0": "entailment", "1": "not_entailment"}


def test_sst2_gets_the_hubs_class_names_not_digits():
    id2label, label2id = deploy.label_maps(get_task("sst2"))
    assert id2label == {0: "negative", 1: "positive"} and label2id["positive"] == 1
    assert deploy.label_maps(get_task("stsb"))[0] == {0: "score"}


def test_latency_table_measures_each_format(exported, dev):
    folder, _ = exported
    measured = deploy.measure({"student": folder}, dev, examples=3, batches_of_32=1, threads=(1,))
    assert [r["format"] for r in measured["rows"]] == ["PyTorch fp32", "ONNX fp32", "ONNX int8"]
    assert all(0 < r["p50_ms"] <= r["p95_ms"] and r["examples_per_s"] > 0 for r in measured["rows"])
    assert measured["rows"][2]["disk_mib"] < measured["rows"][1]["disk_mib"]
    assert measured["examples"] == 3 and measured["batch_32_examples"] == 32
    table = deploy.latency_table(measured)
    assert table[0].startswith("Machine: ") and "torch " in table[0] and len(table) == 4 + 3


def info_of(tmp_path, teacher_dir):
    return {"task": RTE, "metric": "val_accuracy", "mode": "max", "teacher_dir": str(teacher_dir), "max_epochs": 2,
            "sizes": {"student_layers": 3, "layer_map": [2, 4, 6], "student_params_total": 1000, "student_params_non_embedding": 10},
            "teacher_info": {"layers": 6, "teacher_params_total": 2000, "teacher_params_non_embedding": 20},
            "command": f"python -m raykd.search --task rte --space {tmp_path}/spaces/internal.py --data-dir {tmp_path}/glue",
            "settings": {"num_samples": 12, "seed": 0, "grace_period": 1, "reduction_factor": 2, "max_seq_length": 64,
                         "train_fraction": 0.5, "data_seed": 42, "data_dir": str(tmp_path / "glue"), "precision": None}}


def plan_of(values: dict) -> dict:
    """The plan.json a run of `values` against a 6-layer teacher writes into its checkpoints."""
    return resolve(tiny_bert(layers=6).config, DistillConfig.from_dict(values)).to_dict()


def test_the_card_is_rendered_from_the_best_trials_own_plan(tmp_path):
    (tmp_path / PLAN_FILE).write_text(json.dumps(plan_of({"algorithm": "sid", "layer_map": "last", "stage_epochs": 2})))
    plan = results.read_plan(tmp_path)
    assert (plan["student_layers"], plan["layer_map"], plan["config"]["stage_epochs"]) == (3, [4, 5, 6], 2)
    (tmp_path / PLAN_FILE).unlink()
    with pytest.raises(RaykdError, match="has no plan.json"):
        results.read_plan(tmp_path)


def test_model_card_yaml_reads_back_with_huggingface_hub(exported, tmp_path):
    folder, checks = exported
    teacher = tmp_path / "teachers" / "rte-minilm-abc123"
    teacher.mkdir(parents=True)
    (teacher / "teacher.json").write_text(json.dumps({"task": "rte", "base": "minilm", "best_epoch": 4, "dev_accuracy": 0.5884,
                                                      "config": {"epochs": 6, "learning_rate": 5e-5}, "train_examples": 2241,
                                                      "validation_examples": 249,
                                                      "command": f"python -m raykd.teacher --out {teacher}"}))
    info = info_of(tmp_path, teacher)
    plan = plan_of({"algorithm": "sid", "layer_map": "last"})
    recipe = plan["config"]
    measured = deploy.measure({"student": folder}, {k: v[:8] for k, v in dev_rows(folder).items()}, examples=2,
                              batches_of_32=1, threads=(1,))
    text = card.model_card(RTE, "raykd-rte-test", {"trial": "abc", "epoch": 2, "dev_accuracy": 0.55, "val_accuracy": 0.6,
                                                   "searched": {"algorithm": "sid", "layer_map": "last"}},
                           recipe, plan, card.teacher_record(teacher), info, checks, deploy.latency_table(measured),
                           {"seeds": [43, 44, 45], "metric": "dev_accuracy", "mean": 0.55, "std": 0.01})
    (tmp_path / "README.md").write_text(text)
    loaded = ModelCard.load(tmp_path / "README.md")
    data = loaded.data
    assert data.library_name == "transformers" and data.pipeline_tag == "text-classification"
    assert data.base_model == "sentence-transformers/all-MiniLM-L6-v2" and data.license == "apache-2.0"
    assert data.datasets == ["nyu-mll/glue"] and data.metrics == ["accuracy"]
    first = data.eval_results[0]
    assert (first.dataset_type, first.dataset_config, first.dataset_split, first.metric_type, first.metric_value) == \
        ("nyu-mll/glue", "rte", "validation", "accuracy", 0.55)
    assert "layer map 4, 5, 6" in text and "0.5884" in text and "0.5500 +- 0.0100" in text
    assert "2241 training examples (another 249 held out to choose its epoch: the students' validation split)" in text
    assert "| student | ONNX int8 |" in text and 'pipeline("text-classification"' in text
    assert str(tmp_path) not in text and "/work/" not in text and "/root/" not in text  # no path of the machine


def dev_rows(folder):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    enc = tok(["a b c", "the cat sat on the mat", "yes", "no way", "one two", "x", "y z", "w"], truncation=True)
    return {**{k: list(v) for k, v in enc.items()}, "labels": [0, 1, 0, 1, 0, 1, 0, 1]}


def test_bad_format_is_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        export.main([str(tmp_path), "--format", "hf,tflite"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown export format(s) 'tflite'; choose from hf,onnx,onnx-int8") and "\n" not in err
    assert deploy.parse_formats("onnx-int8") == ("hf", "onnx", "onnx-int8")
