"""The model card (README.md) of an exported student, in the Hub's format: YAML metadata that
huggingface_hub's ModelCard reads (library, pipeline tag, base model, data set, metrics, a model-index
with the dev result), then the recipe from the run's own records, the teacher, how the student was
selected, its speed, and how to load it. No path of the machine that made it appears in it."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from huggingface_hub import EvalResult, ModelCardData

from raykd.tasks import Task

# raykd's base names -> Hub ids, and what is known of their licences.
HUB_IDS = {"minilm": "sentence-transformers/all-MiniLM-L6-v2"}
LICENSES = {"sentence-transformers/all-MiniLM-L6-v2": "apache-2.0"}
# raykd.metrics names -> the Hub's (evaluate) metric ids.
HUB_METRICS = {"accuracy": "accuracy", "f1": "f1", "matthews": "matthews_correlation", "pearson": "pearsonr",
               "spearman": "spearmanr"}


def teacher_record(teacher_dir: str | Path) -> dict:
    """What the card says of the teacher, from its folder's teacher.json (raykd.training.finetune): {"name": folder
    name, "base": raykd base name or None, "hub_id": Hub id or None, "record": the record without history
    and command, or {}}. A folder without a record (a user's own teacher) gives name only."""
    folder = Path(teacher_dir)
    path = folder / "teacher.json"
    record = json.loads(path.read_text()) if path.is_file() else {}
    base = record.get("base")
    if base in HUB_IDS:
        hub_id = HUB_IDS[base]
    elif base and not Path(base).is_absolute() and not Path(base).exists():
        hub_id = base  # a Hub id, such as bert-base-uncased
    else:
        hub_id = None  # a local folder: not a name anyone else can load
    kept = {k: v for k, v in record.items() if k not in ("history", "command", "folder")}
    return {"name": folder.name, "base": None if base is None else Path(base).name, "hub_id": hub_id, "record": kept}


def _metadata(task: Task, value: float, name: str, teacher: dict, dataset: dict, extra: dict[str, float]) -> str:
    hub_metric = HUB_METRICS[task.main_metric]
    results = [EvalResult(task_type="text-classification", task_name="Text Classification",
                          dataset_type=dataset["type"], dataset_name=dataset["name"], dataset_config=dataset.get("config"),
                          dataset_split=dataset["split"], metric_type=hub_metric, metric_name=f"dev {task.main_metric}",
                          metric_value=round(float(value), 4))]
    results += [EvalResult(task_type="text-classification", dataset_type=dataset["type"], dataset_name=dataset["name"],
                           dataset_config=dataset.get("config"), dataset_split=dataset["split"], metric_type=hub_metric,
                           metric_name=f"dev {task.main_metric} ({fmt})", metric_value=round(float(v), 4))
                for fmt, v in extra.items()]
    data = ModelCardData(language="en", license=LICENSES.get(teacher["hub_id"]), library_name="transformers",
                         pipeline_tag="text-classification", base_model=teacher["hub_id"],
                         datasets=[dataset["type"]] if dataset["type"] != "custom" else None,
                         metrics=sorted({HUB_METRICS[m] for m in task.metrics}),
                         tags=["knowledge-distillation", "raykd", "onnx", task.name], model_name=name, eval_results=results)
    return data.to_yaml()


def dataset_of(task: Task, settings: dict) -> dict:
    """{"type", "name", "config", "split"} of the dev set the metric is on: GLUE (its TSVs or the Hub), or the
    user's dev file (named by its file name only)."""
    if settings.get("dev_file"):
        return {"type": "custom", "name": Path(settings["dev_file"]).name, "split": "dev"}
    return {"type": "nyu-mll/glue", "name": f"GLUE {task.tsv_dir}", "config": task.name, "split": task.hub_dev_split}


def _portable(command: str) -> str:
    """The command with every path reduced to its last part (no path of the machine in a card)."""
    words = shlex.split(command)
    return shlex.join([Path(w).name if "/" in w and not w.startswith("--") else w for w in words])


def _held_out(record: dict) -> str:
    """' (another 856 held out to choose its epoch: the students' validation split)', or '' for a teacher that
    trained on every row."""
    rows = record.get("validation_examples")
    return f" (another {rows} held out to choose its epoch: the students' validation split)" if rows else ""


def _fmt(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def model_card(task: Task, name: str, best: dict, recipe: dict, plan: dict, teacher: dict, info: dict,
               checks: dict | None, latency: list[str] | None, confirmation: dict | None = None) -> str:
    """The card's text. `best`: the exported epoch's metrics with "trial" and "searched" (the values the
    search chose); `recipe`: the full DistillConfig of the best trial; `plan`: that trial's plan.json
    (raykd.method.plan: "student_layers", "layer_map", "student_params_total", ...); `teacher`: teacher_record(); `info`: experiment.json;
    `checks`: raykd.artifacts.deploy.check_exports (None for an HF-only export); `latency`: latency_table lines;
    `confirmation`: {"seeds", "metric", "mean", "std"} when the recipe was rerun over seeds (confirm.json)."""
    main = f"dev_{task.main_metric}"
    settings, tinfo = info.get("settings") or {}, info.get("teacher_info") or {}
    value = best.get(main, best.get(info["metric"]))
    checked = checks or {}
    extra = {fmt: checked[fmt]["value"] for fmt in ("onnx", "onnx-int8") if fmt in checked}
    yaml = _metadata(task, value, name, teacher, dataset_of(task, settings), extra)
    record = teacher["record"]
    teacher_value = record.get(main)
    base = teacher["hub_id"] or teacher["base"] or "its own base"
    layers = plan["student_layers"]
    lines = ["---", yaml.strip(), "---", "", f"# raykd student for {task.name}", "",
             f"A {layers}-layer student distilled from a {tinfo.get('layers', '?')}-layer {base} teacher fine-tuned on "
             f"{dataset_of(task, settings)['name']}, by raykd (knowledge distillation from internal "
             "representations, Aguilar et al., AAAI 2020): the student learns the teacher's self-attention maps and "
             "[CLS] vectors as well as its soft labels.", "",
             "## Results (dev set)", "", f"| model | layers | parameters | dev {task.main_metric} |", "|---|---|---|---|",
             f"| teacher ({base}, fine-tuned) | {tinfo.get('layers', '?')} | {tinfo.get('teacher_params_total', 0):,} | "
             f"{'not recorded' if teacher_value is None else f'{teacher_value:.4f}'} |",
             f"| this student | {layers} | {plan['student_params_total']:,} | {value:.4f} |"]
    for fmt, label in (("onnx", "ONNX fp32"), ("onnx-int8", "ONNX int8")):
        if fmt in checked:
            c = checked[fmt]
            lines.append(f"| this student, {label} (`{'onnx/model.onnx' if fmt == 'onnx' else 'onnx/model_quantized.onnx'}`)"
                         f" | {layers} | {plan['student_params_total']:,} | {c['value']:.4f} "
                         f"({-c['drop']:+.4f}; largest logit difference {c['max_logit_diff']:.2g}) |")
    if confirmation and confirmation.get("mean") is not None:
        std = confirmation.get("std")
        lines += ["", f"This recipe was run again with seeds {', '.join(map(str, confirmation['seeds']))} (a multi-seed "
                  f"confirmation of the search's best configurations): {confirmation['metric']} {confirmation['mean']:.4f}"
                  + (f" +- {std:.4f} (mean +- std)" if std is not None else " (one seed)")
                  + "; this folder holds the seed closest to the mean."]
    if checks:
        lines += ["", f"Every file was checked before it was written as done: the dev metric recomputed through PyTorch "
                  f"(fp32) is {checked['hf']['value']:.4f} on {checked['examples']} examples; through ONNX Runtime the "
                  "fp32 ONNX model must match it within 0.001 in the metric and 0.001 in every logit; the int8 model's "
                  "drop is reported as measured."]
    searched = best.get("searched") or {}
    recipe_rows = [f"| `{k}` | {_fmt(v)} | {'searched' if k in searched else ''} |" for k, v in recipe.items()]
    space = next((Path(w).name for w, prev in zip(shlex.split(info.get("command", "")) + [""],
                                                 [""] + shlex.split(info.get("command", ""))) if prev == "--space"), "?")
    lines += ["", "## Teacher", "",
              f"- base: {teacher['hub_id'] or teacher['base'] or 'not recorded'}"
              + (f" (raykd name `{teacher['base']}`)" if teacher["base"] and teacher["base"] != teacher["hub_id"] else ""),
              f"- fine-tuned teacher `{teacher['name']}`, record `{teacher['name']}/teacher.json`"
              + (" (copy in `results/teachers/`)" if record else " (no raykd record: a teacher folder of the user's)")]
    if record:
        cfg = record.get("config", {})
        lines.append(f"- recipe: {cfg.get('epochs', '?')} epochs, learning rate {cfg.get('learning_rate', '?')}, batch "
                     f"{cfg.get('batch_size', '?')}, seed {cfg.get('seed', '?')}, {record.get('train_examples', '?')} "
                     f"training examples{_held_out(record)}; best epoch {record.get('best_epoch', '?')}, dev {task.main_metric} "
                     f"{'?' if teacher_value is None else f'{teacher_value:.4f}'}")
    lines += ["", "## Distillation recipe (the best trial's configuration)", "",
              f"- algorithm `{recipe.get('algorithm')}`, {layers} student layers"
             + (f" of hidden width {plan['student_hidden']} and FFN width {plan['student_ffn']} (the teacher's most active "
                "channels, raykd.student.pruning)" if "student_hidden" in plan else "") + ", layer map "
              f"{', '.join(map(str, plan['layer_map']))} (student layer k learns from teacher layer map[k]; "
              f"spec `{recipe.get('layer_map')}`), student initialised `{recipe.get('student_init')}`",
              f"- training seed {recipe.get('seed')}; precision {recipe.get('precision')}", "",
              "| hyperparameter | value | |", "|---|---|---|", *recipe_rows, "",
              "## How it was selected", "",
              f"Best of {settings.get('num_samples', '?')} trials of a Ray Tune search (Optuna TPE sampler, seed "
              f"{settings.get('seed', '?')}; ASHA on classification epochs, grace period {settings.get('grace_period', '?')}, "
              f"reduction factor {settings.get('reduction_factor', '?')}, at most {info.get('max_epochs', '?')} epochs) over "
              f"the space `{space}`, by `{info['metric']}` ({info.get('mode', 'max')}), at the trial's best classification "
              f"epoch: trial `{best.get('trial')}`, epoch {best.get('epoch')}. Training data: "
              f"{_train_data(settings)}. Command: `{_portable(info.get('command', ''))}`."]
    if latency:
        lines += ["", "## Speed", "", *latency]
    lines += ["", "## How to use", "", "```python", "from transformers import pipeline", "",
              'classifier = pipeline("text-classification", model="path/to/this/folder")',
              ('classifier({"text": "A first sentence.", "text_pair": "A second one."})'
               if len(task.hub_text_fields) == 2 else 'classifier("A sentence.")')
              + f"  # [{{'label': '{_first_label(task)}', 'score': ...}}]", "```"]
    if "onnx" in checked:
        names = ", ".join(f'"{n}"' for n in ("input_ids", "attention_mask", "token_type_ids"))
        lines += ["", "With ONNX Runtime (`onnx/model.onnx`, or the int8 `onnx/model_quantized.onnx`; inputs of shape "
                  "[batch, sequence], both dynamic):", "", "```python", "import onnxruntime as ort",
                  "from transformers import AutoTokenizer", "",
                  'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
                  'session = ort.InferenceSession("path/to/this/folder/onnx/model_quantized.onnx")',
                  'inputs = tokenizer(["A first sentence."], ["A second one."], return_tensors="np")',
                  "names = [i.name for i in session.get_inputs()]  # " + names,
                  'logits = session.run(["logits"], {n: inputs[n] for n in names})[0]', "```"]
    return "\n".join(lines) + "\n"


def _first_label(task: Task) -> str:
    return "score" if task.is_regression else (task.label_names or task.labels)[0]


def _train_data(settings: dict) -> str:
    if not settings:
        return "not recorded"
    source = Path(settings["train_file"]).name if settings.get("train_file") else "the task's train set"
    fraction = settings.get("train_fraction", 1.0)
    return (f"{source}" + (f", a seeded {fraction:g} of it (data seed {settings.get('data_seed')})" if fraction != 1 else "")
            + f", at most {settings.get('max_seq_length', '?')} tokens per example")
