"""Command-line options shared by raykd.teacher, raykd.distill and raykd.search."""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from filelock import FileLock, Timeout

from raykd import files
from raykd.data import DEFAULT_CACHE, DataSource
from raykd.errors import RaykdError
from raykd.launch.cluster import local_cpus
from raykd.training.driver import Scaling


def add_data_arguments(parser: argparse.ArgumentParser):
    """Add the data flags to `parser`: --task, --data-dir, --train-file, --dev-file, --text-columns,
    --label-column, --max-seq-length (tokens), --train-fraction, --data-seed, --cache-dir."""
    g = parser.add_argument_group("data")
    g.add_argument("--task", required=True, help="GLUE task: cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli")
    g.add_argument("--data-dir", help="folder of GLUE TSVs (<dir>/RTE/train.tsv, ...); without it, the Hub's nyu-mll/glue")
    g.add_argument("--train-file", help="your own CSV/JSON train file instead of GLUE's (default: GLUE's)")
    g.add_argument("--dev-file", help="your own CSV/JSON dev file instead of GLUE's (default: GLUE's)")
    g.add_argument("--text-columns", default="", help="comma list of text columns in --train-file/--dev-file (default: the task's GLUE field names, e.g. sentence1,sentence2)")
    g.add_argument("--label-column", default="label", help="label column in --train-file/--dev-file (default: label)")
    g.add_argument("--max-seq-length", type=int, default=128, help="tokens per example after truncation (default: 128)")
    g.add_argument("--train-fraction", type=float, default=1.0, help="seeded, stratified share of the train set to use, for low-data runs; a held-out validation split "
                   "is cut to the same share (default: 1)")
    g.add_argument("--data-seed", type=int, default=42, help="seed of --train-fraction's subset and of the held-out validation split (default: 42)")
    g.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help=f"tokenized data and teacher outputs cache (default: {DEFAULT_CACHE})")


def add_ray_arguments(parser: argparse.ArgumentParser, workers_flag: str = "--workers", workers: int = 2,
                      workers_help: str = "Ray Train DDP workers", cpus_per_worker: float | None = 1.0):
    """Add the Ray flags to `parser`: `workers_flag` (stored as `workers`, default `workers`, described by
    `workers_help`), --cpus-per-worker (default `cpus_per_worker`; None: default_cpus_per_worker's),
    --gpus-per-worker, --address, --max-failures, --verbose."""
    g = parser.add_argument_group("Ray")
    g.add_argument(workers_flag, dest="workers", type=int, default=workers, help=f"{workers_help} (default: {workers})")
    default = (f"{cpus_per_worker:g}" if cpus_per_worker is not None else
               "the local cluster's CPUs shared among the workers, at least 1; 1 with --address")
    g.add_argument("--cpus-per-worker", type=float, default=cpus_per_worker,
                   help=f"CPUs per worker, also its torch threads (default: {default})")
    g.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per worker; 0 trains on CPU with gloo (default: 0)")
    g.add_argument("--address", help="address of a running Ray cluster; without it a local cluster starts")
    g.add_argument("--max-failures", type=int, default=1,
                   help="worker failures a run survives, restarting from its last checkpoint (default: 1)")
    g.add_argument("--verbose", action="store_true",
                   help="print the Ray workers' output on the console too (default: only to a log file in the run's folder)")


def add_teacher_cache_arguments(parser: argparse.ArgumentParser):
    """Add the teacher-output flags to `parser`: --teacher-cache-memory and --teacher-cache-disk (sizes
    such as 4GiB, read by raykd.teacher_outputs.disk_cache.parse_size) and --live-teacher."""
    g = parser.add_argument_group("teacher outputs")
    g.add_argument("--teacher-cache-memory", default="4GiB",
                   help="object-store budget for the cached teacher outputs; what does not fit is memory-mapped "
                        "from <cache-dir>/teacher-outputs (default: 4GiB)")
    g.add_argument("--teacher-cache-disk", default="50GiB",
                   help="disk budget of the teacher-output cache; when the attention maps of the needed teacher layers "
                        "would exceed it, the workers compute them live and only logits and [CLS] vectors are cached "
                        "(default: 50GiB)")
    g.add_argument("--live-teacher", action="store_true",
                   help="run the teacher at every training step instead of reading the cache (slower; for comparison)")


def data_source(args) -> DataSource:
    """The DataSource of the parsed data flags (--text-columns split on commas)."""
    return DataSource(data_dir=args.data_dir, train_file=args.train_file, dev_file=args.dev_file,
                      text_columns=tuple(c for c in args.text_columns.split(",") if c),
                      label_column=args.label_column)


def default_cpus_per_worker(args) -> float:
    """--cpus-per-worker as given, else the local cluster's CPUs (raykd.launch.cluster.local_cpus) divided among
    --workers, at least 1 (one run uses the machine); 1 on a cluster given by --address, whose nodes raykd cannot
    see before it connects."""
    if args.cpus_per_worker is not None:
        return args.cpus_per_worker
    return 1.0 if args.address else float(max(1, local_cpus() // max(1, args.workers)))


def scaling(args) -> Scaling:
    """The Scaling of the parsed Ray flags. Raises RaykdError when --workers is below 1 (the other
    flags are checked by raykd.launch.checks.check_arguments)."""
    if args.workers < 1:
        raise RaykdError(f"--workers {args.workers} must be at least 1")
    return Scaling(args.workers, args.cpus_per_worker, args.gpus_per_worker,
                   one_worker_on_train=os.environ.get("RAYKD_ONE_WORKER_ON_TRAIN", "0") == "1")


# In a folder raykd created and has not yet made into a run or an experiment (an interrupted start): the next
# start on the same path replaces it instead of refusing a name that nothing finished in.
UNFINISHED = ".unfinished"
_CLAIMS: dict = {}  # the locks this process holds on its output folders, {path: FileLock}, released when it exits


def lock_file(path: Path) -> Path:
    """The lock of output folder `path`: `<temp>/raykd-locks/<hash of its absolute path>.lock`, outside it, so that
    a start refused for bad input leaves no trace under --out, and one machine's processes share it."""
    digest = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:20]
    return Path(tempfile.gettempdir()) / "raykd-locks" / f"{digest}.lock"


def claim(path: Path) -> Path:
    """Lock the output folder `path` for this process (filelock on `lock_file(path)`: flock, so a holder that
    dies, even by SIGKILL, frees it). A second process starting on the same folder is refused at once, before
    it reads or writes anything there. Returns the absolute path; idempotent within one process.
    Raises RaykdError when another process holds it, or the parent folder cannot be written."""
    path = Path(path).resolve()
    if path in _CLAIMS:
        return path
    try:
        files.try_writing(path.parent)
        lock_file(path).parent.mkdir(exist_ok=True)
        lock = FileLock(str(lock_file(path)))
        lock.acquire(timeout=0)
    except Timeout:
        raise RaykdError(f"{path} is in use by another raykd process (it holds {lock.lock_file}); wait for it to "
                         "end, or choose another --name or --out") from None
    except OSError as err:
        raise RaykdError(f"cannot write to {err.filename or path.parent} ({err.strerror}); choose a writable --out") from None
    _CLAIMS[path] = lock
    return path


def check_output_dir(path: Path) -> Path:
    """Claim (`claim`) and check a folder to write a run into: nothing finished is ever overwritten, and a
    folder left by an interrupted start (it holds UNFINISHED) is removed, with a note, so that its name is
    usable again. Returns the absolute path. Raises RaykdError when another process holds it, when it exists
    and is not an empty folder (and not an unfinished start), or when its parent is not writable."""
    path = claim(path)
    if (path / UNFINISHED).is_file():
        print(f"note: replacing {path}, left by a start that was interrupted before it finished", flush=True)
        shutil.rmtree(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise RaykdError(f"output folder {path} already exists and is not empty; choose another --out")
    return path


def fresh_output_dir(path: Path) -> Path:
    """Check (check_output_dir, which raises RaykdError), then create the output folder, marked UNFINISHED
    until `finished` is called on it."""
    path = check_output_dir(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / UNFINISHED).touch()
    return path


def finished(path: Path):
    """Mark a folder of `fresh_output_dir` as holding a run (or an experiment a --resume continues): from now
    on no later start replaces it."""
    (Path(path) / UNFINISHED).unlink(missing_ok=True)


def continue_command(command: str, argv: list[str] | None, name: str) -> str:
    """The command that continues the search `name`: the arguments as given, without --resume and --name, then
    `--resume --name <name>`, quoted for a POSIX shell, e.g. `python -m raykd.search --task rte ... --resume --name s1`."""
    args = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    kept, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a == "--name":
            skip = True
        elif a != "--resume" and not a.startswith("--name="):
            kept.append(a)
    return f"python -m raykd.{command} " + shlex.join([*kept, "--resume", "--name", name])


def command_line(command: str, argv: list[str] | None) -> str:
    """The command as a user would type it again: `python -m raykd.<command> <arguments>`, quoted for a
    POSIX shell; `argv` None means this process's own arguments (sys.argv[1:]). Every record keeps it."""
    return f"python -m raykd.{command} " + shlex.join(sys.argv[1:] if argv is None else [str(a) for a in argv])
