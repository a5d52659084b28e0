"""The teacher's outputs on disk: computed once per (teacher weights, tokenized train set, max length),
then read by every later run and search on the same task without a teacher forward pass.

    <cache-dir>/teacher-outputs/<key>/
      manifest.json   {"key", "files": {array: {"bytes", "sha256", "shape", "dtype"}}}
      <array>.npy     one file per array of raykd.teacher_outputs.cache (logits, cls, attentions, att_offsets, ...)

A file is used only when the manifest lists it and its size and SHA-256 match; a file left partial by
a kill, or corrupted later, is reported and rebuilt, never read. Arrays are written through
`open_memmap`, so building SST-2's attention maps needs no RAM for them, and read back memory-mapped.
`place` then puts what fits the memory budget into Ray's object store and leaves the rest mapped.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
from datasets.fingerprint import Hasher

from raykd import files
from raykd.errors import RaykdError
from raykd.teacher_outputs.cache import LAYER_ARRAYS, compute_outputs

FORMAT = 3  # bump when the array layout of raykd.teacher_outputs.cache changes: old entries are then never matched
ARRAYS = {"logits": ("logits",), "cls": ("cls", "cls_layers"), "attentions": ("attentions", "att_offsets", "att_layers"),
          "hidden_states": ("hidden_states", "tok_offsets", "hid_layers")}
WEIGHT_FILES = (".safetensors", ".bin")


def _hash_file(path: Path, h=None):
    h = h or hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h


def cache_key(teacher_dir: str | Path, train: dict, max_seq_length: int) -> str:
    """SHA-256 of the teacher's weights and config, the tokenized training inputs (their fingerprint by
    datasets' Hasher, as raykd.training.finetune keys teachers) and the max length; 24 hex digits."""
    h = hashlib.sha256(json.dumps({"format": FORMAT, "max_seq_length": max_seq_length}).encode())
    for f in sorted(Path(teacher_dir).iterdir()):
        if f.suffix in WEIGHT_FILES or f.name == "config.json":
            h.update(f.name.encode())
            _hash_file(f, h)
    h.update(Hasher.hash([train.get("input_ids"), train.get("token_type_ids")]).encode())
    return h.hexdigest()[:24]


def arrays_of(fields) -> list[str]:
    """The .npy arrays that hold `fields`: "lengths", then each field's arrays (ARRAYS), fields sorted."""
    return ["lengths", *(name for f in sorted(fields) for name in ARRAYS[f])]


class DiskCache:
    """One cache entry: the teacher outputs of one (teacher, data, max length)."""

    def __init__(self, root: str | Path, key: str):
        self.key = key
        self.dir = Path(root) / "teacher-outputs" / key
        self.manifest_path = self.dir / "manifest.json"

    def manifest(self) -> dict:
        """The entry's manifest.json, or an empty one ({"key", "files": {}}) when it is missing or unreadable."""
        try:
            return json.loads(self.manifest_path.read_text())
        except (OSError, ValueError):
            return {"key": self.key, "files": {}}

    def _write_manifest(self, manifest: dict):
        files.atomic_json(self.manifest_path, manifest)

    def lock(self):
        """Two processes building the same entry take turns; the second then finds it built:
        `with entry.lock(): ...`."""
        return files.lock(self.dir)

    def problem(self, name: str, manifest: dict) -> str | None:
        """Why array `name` cannot be used, or None when its file matches the manifest."""
        entry, path = manifest["files"].get(name), self.dir / f"{name}.npy"
        if entry is None:
            return "not built"
        if not path.is_file():
            return "file missing"
        if path.stat().st_size != entry["bytes"]:
            return f"{path.stat().st_size} bytes instead of {entry['bytes']} (partial write)"
        if _hash_file(path).hexdigest() != entry["sha256"]:
            return "checksum mismatch (corrupted)"
        return None

    def stored_layers(self, field: str) -> set[int]:
        """The teacher layers a built field holds (empty for logits, or when it is not built)."""
        if field not in LAYER_ARRAYS or self.problem(LAYER_ARRAYS[field], self.manifest()):
            return set()
        return {int(x) for x in np.load(self.dir / f"{LAYER_ARRAYS[field]}.npy")}

    def missing(self, fields, layers=None) -> set[str]:
        """The fields whose arrays are absent, fail their check (reported, so a rebuild is visible), or
        lack some of the teacher layers `layers` (None: do not check layers)."""
        manifest, bad = self.manifest(), set()
        for field in fields:
            for name in arrays_of([field]):
                reason = self.problem(name, manifest)
                if reason:
                    if reason != "not built":
                        print(f"teacher cache {self.dir / name}.npy: {reason}; rebuilding it", flush=True)
                    bad.add(field)
            if field not in bad and layers and field in LAYER_ARRAYS and not set(layers) <= self.stored_layers(field):
                bad.add(field)
        return bad

    def open(self, fields) -> dict[str, np.ndarray]:
        """Memory-mapped, read-only arrays of `fields` (check them with `missing` first)."""
        return {name: np.load(self.dir / f"{name}.npy", mmap_mode="r") for name in arrays_of(fields)}

    def build(self, teacher, train: dict, fields, progress=None, batch_size: int = 64, layers=None) -> float:
        """Compute `fields` for the teacher layers `layers` (default all) with the teacher straight into
        the entry's files; seconds spent."""
        self.dir.mkdir(parents=True, exist_ok=True)
        manifest = self.manifest()
        keep_lengths = self.problem("lengths", manifest) is None  # shared by all fields: rewrite only if bad
        for name in arrays_of(fields):  # stale entries go first: a kill mid-build leaves them unlisted
            if not (name == "lengths" and keep_lengths):
                manifest["files"].pop(name, None)
        self._write_manifest(manifest)

        reserved = []  # bytes of each array asked for: what the entry needed when the disk filled

        def allocate(name, shape, dtype):
            """A memory-mapped `<name>.partial.npy` of `shape` and `dtype` in the entry's folder, its blocks reserved."""
            path = self.dir / f"{name}.partial.npy"
            reserved.append(int(np.prod(shape)) * np.dtype(dtype).itemsize)
            array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
            # open_memmap leaves a sparse file: on a full disk the first store to a page with no block behind it
            # is SIGBUS, which kills the process without a word. Reserving the blocks turns that into ENOSPC here.
            with open(path, "r+b") as f:
                os.posix_fallocate(f.fileno(), 0, path.stat().st_size)
            return array

        started = time.perf_counter()
        try:
            arrays = compute_outputs(teacher, train["input_ids"], train.get("token_type_ids"), set(fields),
                                     batch_size=batch_size, allocate=allocate, progress=progress, layers=layers)
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            for partial in self.dir.glob("*.partial.npy"):  # never listed in the manifest: no later run trusts them
                partial.unlink()
            raise RaykdError(f"no space left in {self.dir} for the teacher outputs ({', '.join(sorted(fields))}): they "
                             f"needed at least {sum(reserved) / 2**20:.1f} MiB, {shutil.disk_usage(self.dir).free / 2**20:.1f} "
                             "MiB are free; free space there or point --cache-dir (or RAYKD_CACHE) to a larger disk") from None
        seconds = time.perf_counter() - started
        for name, array in arrays.items():
            array.flush()
            partial, final = self.dir / f"{name}.partial.npy", self.dir / f"{name}.npy"
            if name == "lengths" and keep_lengths:
                partial.unlink()
                continue
            os.replace(partial, final)
            manifest["files"][name] = {"bytes": final.stat().st_size, "sha256": _hash_file(final).hexdigest(),
                                       "shape": list(array.shape), "dtype": str(array.dtype)}
        self._write_manifest(manifest)
        return seconds

    def check_space(self, planned: dict[str, int]):
        """`planned` is {field: bytes} (raykd.teacher_outputs.cache.estimate_bytes); the fields not built yet must
        fit the free space of the disk that holds the entry. Raises RaykdError saying how much is needed and free."""
        listed = self.manifest()["files"]
        need = sum(b for f, b in planned.items() if any(a not in listed for a in ARRAYS[f]))
        folder = next(p for p in [self.dir, *self.dir.parents] if p.exists())
        free = shutil.disk_usage(folder).free
        if need > free:
            raise RaykdError(f"the teacher outputs need {need / 2**20:.0f} MiB in {self.dir} but its disk has "
                             f"{free / 2**20:.0f} MiB free; free space, point --cache-dir (or RAYKD_CACHE) to a larger "
                             f"disk, or pass --teacher-cache-disk {free // 2**20}MiB (what is free) to compute the attention "
                             "maps live")

    def nbytes(self) -> int:
        """Bytes of the arrays the manifest lists: the entry's size on disk."""
        return sum(e["bytes"] for e in self.manifest()["files"].values())


def ensure(cache: DiskCache, teacher, train: dict, fields, progress=None, layers=None) -> tuple[dict[str, np.ndarray], float]:
    """The verified arrays of `fields` holding at least the teacher layers `layers` (None: all of the
    teacher's), building what is missing, broken or short of layers; (arrays, forward seconds). A field
    rebuilt for more layers keeps the ones it had: later runs need not rebuild it again."""
    with cache.lock():
        if layers is None and teacher is not None:
            layers = range(1, teacher.config.num_hidden_layers + 1)
        missing = cache.missing(fields, layers)
        seconds = 0.0
        if missing:
            union = set(layers or ()) | {t for f in missing for t in cache.stored_layers(f)}
            seconds = cache.build(teacher, train, missing, progress, layers=sorted(union) or None)
        return cache.open(fields), seconds


def parse_size(text: str, flag: str = "--teacher-cache-memory") -> int:
    """'4GiB', '512MiB', '0' -> bytes. Raises RaykdError naming `flag` for anything else."""
    units = {"": 1, "B": 1, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40,
             "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
    s = text.strip().upper()
    number = s.rstrip("KMGTIB")
    try:
        value = float(number) * units[s[len(number):]]
    except (ValueError, KeyError):
        value = -1
    if not 0 <= value < float("inf"):  # also nan and inf, which float() reads
        raise RaykdError(f"{flag} {text!r} is not a size; write it like 4GiB, 512MiB or 0")
    return int(value)


def place(arrays: dict[str, np.ndarray], budget: int, put) -> dict:
    """{name: object ref} for the arrays that fit `budget` bytes together (smallest first), and
    {name: file path} for the rest, which workers then memory-map. `put` is `ray.put`."""
    placed, used = {}, 0
    for name, array in sorted(arrays.items(), key=lambda kv: kv[1].nbytes):
        if used + array.nbytes <= budget:
            # A plain ndarray view: Ray pickles np.memmap in-band, and every reader would get a private copy.
            placed[name] = put(np.asarray(array))
            used += array.nbytes
        else:
            placed[name] = str(array.filename)
    return placed


def open_placed(placed: dict, get) -> dict[str, np.ndarray]:
    """The arrays behind `place`'s result, in a worker: object refs through `get` (`ray.get`,
    zero-copy on the node), file paths memory-mapped read-only (shared through the page cache)."""
    refs = {n: v for n, v in placed.items() if not isinstance(v, str)}
    arrays = dict(zip(refs, get(list(refs.values())))) if refs else {}
    arrays.update({n: np.load(v, mmap_mode="r") for n, v in placed.items() if isinstance(v, str)})
    return arrays
