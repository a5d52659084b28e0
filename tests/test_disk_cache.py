"""The on-disk teacher cache: keys, corruption and partial files, memory-mapped reads, placement."""

import json

import numpy as np
import pytest
import torch

from raykd.data import DataSource, load_split, tokenize
from raykd.errors import RaykdError
from raykd.tasks import get_task
from raykd.teacher_outputs.cache import LiveTeacher, TeacherOutputs, compute_outputs
from raykd.teacher_outputs.disk_cache import DiskCache, cache_key, ensure, open_placed, parse_size, place
from raykd.training.batches import Collator
from conftest import tiny_bert

FIELDS = {"logits", "cls", "attentions", "hidden_states"}


@pytest.fixture(scope="module")
def rows(glue_dir, tokenizer, tmp_path_factory):
    dev = load_split(get_task("rte"), "dev", DataSource(data_dir=str(glue_dir))).select(range(20))
    return tokenize(dev, tokenizer, 40, tmp_path_factory.mktemp("tok")).to_dict()


@pytest.fixture
def teacher():
    model = tiny_bert(layers=4, init_range=0.3)
    model.config._attn_implementation = "eager"
    return model


def save(model, folder):
    model.save_pretrained(folder)
    return folder


def test_key_changes_with_weights_data_and_max_length(teacher, rows, tmp_path):
    a = save(teacher, tmp_path / "a")
    same = save(teacher, tmp_path / "same")
    other = save(tiny_bert(layers=4, seed=1), tmp_path / "other")
    key = cache_key(a, rows, 40)
    assert cache_key(same, rows, 40) == key  # content, not the folder's name
    assert cache_key(other, rows, 40) != key
    assert cache_key(a, rows, 64) != key
    changed = {**rows, "input_ids": [rows["input_ids"][1], *rows["input_ids"][1:]]}
    assert cache_key(a, changed, 40) != key
    types = {**rows, "token_type_ids": [[0] * len(x) for x in rows["input_ids"]]}
    assert cache_key(a, types, 40) != key


def test_built_once_then_read_without_the_teacher(teacher, rows, tmp_path):
    cache = DiskCache(tmp_path, "k")
    arrays, seconds = ensure(cache, teacher, rows, FIELDS)
    assert seconds > 0
    expected = compute_outputs(teacher, rows["input_ids"], rows["token_type_ids"], FIELDS)
    assert set(arrays) == set(expected)
    for name in expected:
        assert isinstance(arrays[name], np.memmap)
        np.testing.assert_array_equal(arrays[name], expected[name])
    again, seconds = ensure(cache, None, rows, FIELDS)  # no teacher: a forward pass would fail
    assert seconds == 0.0 and set(again) == set(arrays)


def test_missing_field_is_added_without_touching_the_others(teacher, rows, tmp_path):
    cache = DiskCache(tmp_path, "k")
    ensure(cache, teacher, rows, {"logits"})
    before = json.loads(cache.manifest_path.read_text())["files"]["logits"]
    arrays, seconds = ensure(cache, teacher, rows, {"logits", "cls"})
    assert seconds > 0 and {"logits", "cls", "lengths"} <= set(arrays)
    assert json.loads(cache.manifest_path.read_text())["files"]["logits"] == before


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "manifest"])
def test_corrupt_or_partial_file_is_detected_and_rebuilt(teacher, rows, tmp_path, capsys, damage):
    cache = DiskCache(tmp_path, "k")
    original = {n: np.array(a) for n, a in ensure(cache, teacher, rows, FIELDS)[0].items()}
    path = cache.dir / "attentions.npy"
    if damage == "flip":  # one byte inside the data, same size
        data = bytearray(path.read_bytes())
        data[-7] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncate":  # what a kill during a copy leaves
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "delete":
        path.unlink()
    else:  # a kill between writing the arrays and the manifest
        cache.manifest_path.unlink()
    assert "attentions" in cache.missing(FIELDS)
    arrays, seconds = ensure(cache, teacher, rows, FIELDS)
    assert seconds > 0
    if damage != "manifest":
        assert "rebuilding" in capsys.readouterr().out
    for name in original:
        np.testing.assert_array_equal(arrays[name], original[name])
    assert not cache.missing(FIELDS)


def test_memory_mapped_and_in_memory_reads_agree(teacher, rows, tokenizer, tmp_path):
    mapped, _ = ensure(DiskCache(tmp_path, "k"), teacher, rows, FIELDS)
    in_memory = compute_outputs(teacher, rows["input_ids"], rows["token_type_ids"], FIELDS)
    indices = [4, 0, 13, 19, 7]
    length = Collator(tokenizer, rows, False)(indices)["input_ids"].shape[1]
    a = TeacherOutputs(mapped, 4, 4).batch(indices, (1, 3), length)
    b = TeacherOutputs(in_memory, 4, 4).batch(indices, (1, 3), length)
    assert set(a) == set(FIELDS)
    for name in a:
        assert torch.equal(a[name], b[name])


def test_placement_within_the_memory_budget(ray_cluster, teacher, rows, tmp_path):
    import ray

    arrays, _ = ensure(DiskCache(tmp_path, "k"), teacher, rows, FIELDS)
    small = arrays["logits"].nbytes + arrays["lengths"].nbytes
    placed = place(arrays, small, ray.put)
    mapped = {n for n, v in placed.items() if isinstance(v, str)}
    assert "attentions" in mapped and "hidden_states" in mapped and "lengths" not in mapped
    everything = place(arrays, 2**40, ray.put)
    assert not any(isinstance(v, str) for v in everything.values())
    nothing = place(arrays, 0, ray.put)
    assert all(isinstance(v, str) for v in nothing.values())
    for variant in (placed, everything, nothing):
        opened = open_placed(variant, ray.get)
        for name in arrays:
            np.testing.assert_array_equal(opened[name], arrays[name])


def test_live_teacher_gives_the_cached_view(teacher, rows, tokenizer):
    arrays = compute_outputs(teacher, rows["input_ids"], rows["token_type_ids"], FIELDS)
    indices = [2, 11, 5]
    length = Collator(tokenizer, rows, False)(indices)["input_ids"].shape[1]
    cached = TeacherOutputs(arrays, 4, 4).batch(indices, (2, 4), length)
    live = LiveTeacher(teacher, rows, FIELDS).batch(indices, (2, 4), length)
    for name in FIELDS:
        assert torch.allclose(cached[name].float(), live[name], atol=2e-3), name  # fp16 storage


def test_parse_size():
    assert parse_size("4GiB") == 4 * 2**30 and parse_size("512mib") == 512 * 2**20 and parse_size("0") == 0
    for text in ("lots", "nan", "inf", "-1GiB"):
        with pytest.raises(RaykdError, match="not a size"):
            parse_size(text)


def test_only_the_mapped_layers_are_stored_and_a_new_map_extends_them(teacher, rows, tmp_path):
    """A 4 -> 2 map on layers 2, 4 stores half the attention maps; a map on layer 3 later adds it once
    (keeping 2 and 4); every view equals the all-layers cache's."""
    from raykd.teacher_outputs.cache import estimate_bytes

    cache = DiskCache(tmp_path, "k")
    arrays, seconds = ensure(cache, teacher, rows, {"cls", "attentions"}, layers=[2, 4])
    assert seconds > 0 and list(arrays["att_layers"]) == [2, 4] and arrays["cls"].shape[1] == 2
    full = compute_outputs(teacher, rows["input_ids"], rows["token_type_ids"], {"cls", "attentions"})
    assert arrays["attentions"].size * 2 == full["attentions"].size
    lengths = [len(x) for x in rows["input_ids"]]
    estimate = estimate_bytes(teacher.config, lengths, {"cls", "attentions"}, [2, 4])
    assert estimate["attentions"] == pytest.approx(arrays["attentions"].nbytes, rel=0.01)
    indices, length = [4, 0, 11], max(lengths[i] for i in (4, 0, 11))
    with pytest.raises(KeyError, match=r"teacher layer\(s\) \[3\]"):
        TeacherOutputs(arrays, 4, 4).batch(indices, (3, 4), length)
    assert ensure(cache, None, rows, {"cls", "attentions"}, layers=[4])[1] == 0.0  # a subset: no forward pass
    arrays, seconds = ensure(cache, teacher, rows, {"cls", "attentions"}, layers=[3])
    assert seconds > 0 and list(arrays["att_layers"]) == [2, 3, 4]
    got, want = TeacherOutputs(arrays, 4, 4).batch(indices, (3, 4), length), TeacherOutputs(full, 4, 4).batch(indices, (3, 4), length)
    assert torch.equal(got["attentions"], want["attentions"]) and torch.equal(got["cls"], want["cls"])
