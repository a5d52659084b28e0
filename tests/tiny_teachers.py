"""Tiny, randomly initialised teacher folders for the field cases (the logic of
../shared/field-cases/make_tiny_teacher.py): 4 layers, width 32, 2 heads, all-MiniLM-L6-v2's tokenizer.
Their metrics mean nothing; they exist to test input handling."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer

from raykd.models import resolve_base

RTE = ("entailment", "not_entailment")


def make_teacher(out: Path, arch: str = "bert", labels: tuple[str, ...] | None = RTE, num_labels: int = 2,
                 max_positions: int = 512, tokenizer: bool = True, layers: int = 4, seed: int = 0) -> Path:
    """Save a teacher to `out`. `labels` become id2label in that order (None: generic LABEL_i)."""
    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(resolve_base("minilm"))
    common = {"num_labels": len(labels) if labels else num_labels}
    if labels:
        common["id2label"] = dict(enumerate(labels))
        common["label2id"] = {name: i for i, name in enumerate(labels)}
    shape = dict(vocab_size=len(tok), hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                 intermediate_size=64)
    if arch == "bert":
        from transformers import BertConfig, BertForSequenceClassification
        model = BertForSequenceClassification(BertConfig(**shape, max_position_embeddings=max_positions, **common))
    elif arch == "roberta":  # one token type, positions offset by padding_idx + 1
        from transformers import RobertaConfig, RobertaForSequenceClassification
        model = RobertaForSequenceClassification(RobertaConfig(
            **shape, max_position_embeddings=max_positions + 2, type_vocab_size=1, pad_token_id=tok.pad_token_id,
            bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id, **common))
    elif arch == "distilbert":
        from transformers import DistilBertConfig, DistilBertForSequenceClassification
        model = DistilBertForSequenceClassification(DistilBertConfig(
            vocab_size=len(tok), dim=32, n_layers=layers, n_heads=2, hidden_dim=64,
            max_position_embeddings=max_positions, **common))
    else:
        raise ValueError(arch)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    if tokenizer:
        tok.save_pretrained(out)
    return out
