"""Encoder families raykd distils: the one place that names an architecture.

A student is a plain model of its teacher's family (`AutoModelForSequenceClassification.from_config` of the
teacher's config with fewer blocks): its blocks are copies of the mapped teacher blocks, and every other weight of
the teacher (the `shared` modules: embeddings and their projection, relative-position tables and biases, final
norms, pooler and head) is copied whole. Each family says where its blocks live, what is shared, whether it reads
token types, where its positions start, which config fields hold the FFN width and the attention dropout, and
which of the student search's shape axes apply. The run plan, the student builder, the teacher outputs, the
shape costs and the exports read this table.

Every family's attention probabilities come from `output_attentions=True` under eager attention ([B, H, L, L]
per block) and its [CLS] vector is position 0 of `hidden_states[i]` (Aguilar et al., AAAI 2020, sec. 3), so the
losses need no per-family code. ModernBERT alternates global and sliding-window blocks (`config.layer_types`): a
student block takes the kind of the teacher block it is copied from, so its attention map is compared with a map
of the same support (a sliding-window map is zero outside the window; a global student block learning it would be
pushed towards a window it does not have, and the KL of a windowed student against a global map is unbounded).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

from raykd.errors import RaykdError


@dataclass(frozen=True)
class Family:
    """How raykd reads and copies one encoder family (torchdistill-style registry entry)."""
    name: str
    model_types: tuple[str, ...]   # config.model_type values of the family
    blocks: str                    # attribute path of the block list under `model.base_model`
    shared: str                    # what a student copies besides its blocks (every non-block weight)
    token_types: bool              # the model reads token_type_ids (and has more than one type in its config)
    positions_from_pad: bool       # positions start after the padding index (RoBERTa: max_position_embeddings - 2)
    ffn_key: str = "intermediate_size"
    dropout_key: str = "attention_probs_dropout_prob"
    widths: bool = False           # BERT's block layout: raykd.student.pruning can cut hidden and FFN widths
    layer_kinds: bool = False      # blocks of several kinds in config.layer_types (ModernBERT)
    first_block_drops: tuple[str, ...] = ()  # block weights the family's first block has no place for
    padding_idx: int | None = None  # a padding index fixed by the model's code (MPNet: 1), else pad_token_id

    def block_list(self, model):
        """The model's transformer blocks (an nn.ModuleList), found under `model.base_model`."""
        found = model.base_model
        for part in self.blocks.split("."):
            found = getattr(found, part)
        return found

    def block_index(self, key: str) -> tuple[int, str] | None:
        """(block index from 0, the key with `{i}` in place of the index) for a state_dict key inside a block,
        or None for a shared weight."""
        match = re.search(rf"(?:^|\.){re.escape(self.blocks)}\.(\d+)\.", key)
        if match is None:
            return None
        start, end = match.span(1)
        return int(match.group(1)), key[:start] + "{i}" + key[end:]


FAMILIES = (
    Family("BERT", ("bert",), "encoder.layer", "embeddings (word, position, token type, LayerNorm), pooler, classifier",
           token_types=True, positions_from_pad=False, widths=True),
    Family("RoBERTa", ("roberta", "xlm-roberta", "camembert", "data2vec-text", "xmod"), "encoder.layer",
           "embeddings (word, position, LayerNorm), classifier (dense, out_proj)",
           token_types=True, positions_from_pad=True, widths=True),
    Family("ELECTRA", ("electra",), "encoder.layer",
           "embeddings, embeddings_project (when embedding_size differs from hidden_size), classifier",
           token_types=True, positions_from_pad=False, widths=True),
    Family("DeBERTa-v2", ("deberta-v2",), "encoder.layer",
           "embeddings, encoder.rel_embeddings and encoder.LayerNorm (relative positions), pooler, classifier",
           token_types=True, positions_from_pad=False),
    Family("MPNet", ("mpnet",), "encoder.layer", "embeddings, encoder.relative_attention_bias, classifier",
           token_types=False, positions_from_pad=True, padding_idx=1),
    Family("DistilBERT", ("distilbert",), "transformer.layer", "embeddings (word, position, LayerNorm), pre_classifier, classifier",
           token_types=False, positions_from_pad=False, ffn_key="hidden_dim", dropout_key="attention_dropout"),
    Family("ModernBERT", ("modernbert",), "layers", "embeddings (tok_embeddings, norm), final_norm, head (dense, norm), classifier",
           token_types=False, positions_from_pad=False, dropout_key="attention_dropout", layer_kinds=True,
           first_block_drops=("attn_norm",)),  # block 0 reads the embeddings' norm instead of its own attn_norm
)
WIDTH_AXES = ("student_hidden_size", "student_ffn_size")


def known() -> str:
    """The families raykd distils, for messages: "BERT (bert), RoBERTa (roberta, xlm-roberta, ...), ..."."""
    return ", ".join(f"{f.name} ({', '.join(f.model_types)})" for f in FAMILIES)


def family_of(config) -> Family:
    """The Family of a Hugging Face config. Raises RaykdError naming the families raykd knows."""
    for family in FAMILIES:
        if config.model_type in family.model_types:
            return family
    kind = (getattr(config, "architectures", None) or [config.model_type])[0]
    raise RaykdError(f"a {config.model_type} model ({kind}) is not an encoder family raykd knows; raykd distils "
                     f"{known()}; use a teacher of one of these families")


def ffn_size(config) -> int:
    """The FFN (intermediate) width of every block of `config`'s model."""
    return getattr(config, family_of(config).ffn_key)


def has_token_types(config) -> bool:
    """True when the model reads token_type_ids and has a second type for the second sentence."""
    return family_of(config).token_types and getattr(config, "type_vocab_size", 0) > 1


def positions(config) -> int:
    """Tokens a model of `config` can read: its position table, less the pad offset where positions start after
    the padding id (RoBERTa's `max_position_embeddings - 2` with pad id 1)."""
    family = family_of(config)
    if not family.positions_from_pad:
        return config.max_position_embeddings
    padding_idx = config.pad_token_id if family.padding_idx is None else family.padding_idx
    return config.max_position_embeddings - padding_idx - 1


def width_axes(config) -> tuple[str, ...]:
    """The shape axes raykd can cut for `config`'s family: both widths for BERT's block layout without an
    embedding projection, none otherwise (depth applies to every family)."""
    family = family_of(config)
    projected = getattr(config, "embedding_size", config.hidden_size) != config.hidden_size
    return WIDTH_AXES if family.widths and not projected else ()


def student_config(teacher_config, mapping: tuple[int, ...]):
    """The config of a student whose block k is copied from teacher layer mapping[k] (1-based): the teacher's
    with len(mapping) blocks, attention dropout 0 (the attention loss compares maps taken after dropout) and,
    for a family with block kinds, each block of its teacher block's kind."""
    family = family_of(teacher_config)
    config = copy.deepcopy(teacher_config)
    config.num_hidden_layers = len(mapping)
    setattr(config, family.dropout_key, 0.0)
    if family.layer_kinds:
        config.layer_types = [teacher_config.layer_types[t - 1] for t in mapping]
    return config


def reshaped(config, layers: int, hidden: int, ffn: int):
    """A copy of `config` with `layers` blocks, `hidden` channels and `ffn` FFN neurons (block kinds, for a
    family that has them, taken in the teacher's order: a shape's cost is measured before its layer map is drawn)."""
    family = family_of(config)
    values = config.to_dict()
    values.update(num_hidden_layers=layers, hidden_size=hidden, **{family.ffn_key: ffn})
    if family.layer_kinds:
        values["layer_types"] = list(config.layer_types[:layers])
    out = type(config).from_dict(values)
    out.num_hidden_layers, out.hidden_size = layers, hidden  # through attribute maps (DistilBERT's n_layers, dim)
    return out
