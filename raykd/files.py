"""Writes that never leave half a file, and the lock that lets two processes share a folder.

Every file and folder raykd leaves under `results/` or the cache goes through here: it is written under
a hidden temporary name beside its target and renamed into place (`os.replace` is atomic on one file
system), so a kill mid-write leaves the old version or none, never a torn one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock


def try_writing(folder: str | Path) -> Path:
    """Write and delete a file in `folder`, or in its nearest existing parent when it does not exist yet (nothing
    is created): permission bits say nothing for root or a read-only file system. Returns the folder written in.
    Raises OSError when the write fails."""
    folder = Path(folder).resolve()
    existing = next(p for p in [folder, *folder.parents] if p.exists())
    with tempfile.TemporaryFile(dir=existing):
        pass
    return existing


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Replace `path` with `data` (text is written as UTF-8) in one rename; creates the parent folder.
    Returns the path. Raises OSError when the folder is not writable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data, encoding="utf-8")
    os.replace(tmp, path)
    return path


def atomic_json(path: str | Path, record) -> Path:
    """`atomic_write` of `record` as indented JSON (values JSON cannot hold are written as str)."""
    return atomic_write(path, json.dumps(record, indent=2, default=str))


def atomic_savefig(fig, path: str | Path, dpi: int = 120) -> Path:
    """Save a matplotlib figure to `path` (PNG) in one rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")  # the suffix tells matplotlib the format
    fig.savefig(tmp, dpi=dpi)
    os.replace(tmp, path)
    return path


@contextmanager
def publish_dir(out: str | Path, replace: bool = True, keep_on_error: bool = False):
    """Build a folder in `.<name>.partial` beside `out` and rename it to `out` when the block succeeds.

    Yields the partial folder (a Path), emptied first: a leftover of a killed run is never resumed. On
    an exception it is removed, or kept for its logs with `keep_on_error`, and `out` is untouched. With
    `replace=False`, an `out` that exists when the block ends (someone else published first) raises
    FileExistsError and the new folder is discarded.
    """
    out = Path(out)
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        if not keep_on_error:
            shutil.rmtree(partial, ignore_errors=True)
        raise
    if out.exists():
        if not replace:
            shutil.rmtree(partial, ignore_errors=True)
            raise FileExistsError(f"{out} appeared while it was being built")
        shutil.rmtree(out)  # the one non-atomic moment: a kill here leaves the new folder as .partial
    os.replace(partial, out)


def lock(folder: str | Path) -> FileLock:
    """An exclusive lock on `folder` (its `.lock` file) shared by every process on the machine:
    `with files.lock(folder): ...`. Uses filelock (flock on POSIX), released when the holder dies."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    return FileLock(str(Path(folder) / ".lock"))
