"""Tiny, randomly initialised teacher folders for the field cases (the logic of
../shared/field-cases/make_tiny_teacher.py): 4 layers, width 32, 2 heads, all-MiniLM-L6-v2's tokenizer.
Their metrics mean nothing; they exist to test input handling."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

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
    config = family_config(arch, shape, max_positions, tok)
    for key, value in common.items():
        setattr(config, key, value)
    model = AutoModelForSequenceClassification.from_config(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    if tokenizer:
        tok.save_pretrained(out)
    return out


ARCHS = ("bert", "roberta", "xlm-roberta", "electra", "deberta-v2", "mpnet", "distilbert", "modernbert")


def family_config(arch: str, shape: dict, max_positions: int, tok):
    """A tiny config of `arch` (one of ARCHS, or gpt2: a family raykd does not distil) for the MiniLM tokenizer,
    with each family's own modules switched on: ELECTRA's embedding projection, DeBERTa-v2's relative-position
    table and its norm, ModernBERT's sliding-window blocks (a window of 8 tokens, so RTE rows cross it)."""
    import transformers as tf

    special = dict(pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id)
    if arch == "bert":
        return tf.BertConfig(**shape, max_position_embeddings=max_positions)
    if arch in ("roberta", "xlm-roberta"):  # one token type, positions offset by padding_idx + 1
        kind = tf.RobertaConfig if arch == "roberta" else tf.XLMRobertaConfig
        return kind(**shape, max_position_embeddings=max_positions + 2, type_vocab_size=1, **special)
    if arch == "electra":
        return tf.ElectraConfig(**shape, embedding_size=16, max_position_embeddings=max_positions)
    if arch == "deberta-v2":
        return tf.DebertaV2Config(**shape, max_position_embeddings=max_positions, relative_attention=True,
                                  pos_att_type=["p2c", "c2p"], position_buckets=16, norm_rel_ebd="layer_norm",
                                  position_biased_input=False, share_att_key=True, **special)
    if arch == "mpnet":
        return tf.MPNetConfig(**shape, max_position_embeddings=max_positions + 2, **special)
    if arch == "distilbert":
        return tf.DistilBertConfig(vocab_size=shape["vocab_size"], dim=32, n_layers=shape["num_hidden_layers"],
                                   n_heads=2, hidden_dim=64, max_position_embeddings=max_positions)
    if arch == "modernbert":
        return tf.ModernBertConfig(**shape, max_position_embeddings=max_positions, global_attn_every_n_layers=2,
                                   local_attention=8, cls_token_id=tok.cls_token_id, sep_token_id=tok.sep_token_id,
                                   **special)
    if arch == "gpt2":
        return tf.GPT2Config(vocab_size=shape["vocab_size"], n_embd=32, n_layer=2, n_head=2, n_positions=max_positions,
                             pad_token_id=tok.pad_token_id)
    raise ValueError(arch)
