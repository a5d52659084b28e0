"""Command-line options shared by raykd.teacher, raykd.distill and raykd.search."""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

from raykd.data import DEFAULT_CACHE, DataSource
from raykd.errors import RaykdError
from raykd.training.driver import Scaling


def add_data_arguments(parser: argparse.ArgumentParser):
    """Add the data flags to `parser`: --task, --data-dir, --train-file, --dev-file, --text-columns,
    --label-column, --max-seq-length (tokens), --train-fraction, --data-seed, --cache-dir."""
    g = parser.add_argument_group("data")
    g.add_argument("--task", required=True, help="GLUE task: cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli")
    g.add_argument("--data-dir", help="folder of GLUE TSVs (<dir>/RTE/train.tsv, ...); without it, the Hub's nyu-mll/glue")
    g.add_argument("--train-file", help="your own CSV/JSON train file instead of GLUE's")
    g.add_argument("--dev-file", help="your own CSV/JSON dev file instead of GLUE's")
    g.add_argument("--text-columns", default="", help="comma list of text columns in --train-file/--dev-file")
    g.add_argument("--label-column", default="label", help="label column in --train-file/--dev-file")
    g.add_argument("--max-seq-length", type=int, default=128, help="tokens per example after truncation (default: 128)")
    g.add_argument("--train-fraction", type=float, default=1.0, help="seeded, stratified share of the train set to use, for low-data runs; a held-out validation split "
                   "is cut to the same share (default: 1)")
    g.add_argument("--data-seed", type=int, default=42, help="seed of --train-fraction's subset and of the held-out validation split (default: 42)")
    g.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help=f"tokenized data and teacher outputs cache (default: {DEFAULT_CACHE})")


def add_ray_arguments(parser: argparse.ArgumentParser, workers_flag: str = "--workers"):
    """Add the Ray flags to `parser`: `workers_flag` (stored as `workers`), --cpus-per-worker,
    --gpus-per-worker, --address, --max-failures, --verbose."""
    g = parser.add_argument_group("Ray")
    g.add_argument(workers_flag, dest="workers", type=int, default=2, help="Ray Train DDP workers (default: 2)")
    g.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs per worker, also its torch threads (default: 1)")
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


def scaling(args) -> Scaling:
    """The Scaling of the parsed Ray flags. Raises RaykdError when --workers is below 1 (the other
    flags are checked by raykd.run.checks.check_arguments)."""
    if args.workers < 1:
        raise RaykdError(f"--workers {args.workers} must be at least 1")
    return Scaling(args.workers, args.cpus_per_worker, args.gpus_per_worker)


def check_output_dir(path: Path) -> Path:
    """Refuse a folder that already holds results: nothing finished is ever overwritten. Returns the
    absolute path. Raises RaykdError when `path` exists and is not an empty folder, or when its nearest
    existing parent folder is not writable."""
    path = Path(path).resolve()  # Ray workers run in another working directory
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise RaykdError(f"output folder {path} already exists and is not empty; choose another --out")
    parent = next(p for p in [path, *path.parents] if p.exists())
    try:  # try it: permission bits say nothing for root or read-only file systems
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as err:
        raise RaykdError(f"cannot write to {parent} ({err.strerror}); choose a writable --out") from None
    return path


def fresh_output_dir(path: Path) -> Path:
    """Check (check_output_dir, which raises RaykdError), then create, the output folder."""
    path = check_output_dir(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def command_line(command: str, argv: list[str] | None) -> str:
    """The command as a user would type it again: `python -m raykd.<command> <arguments>`, quoted for a
    POSIX shell; `argv` None means this process's own arguments (sys.argv[1:]). Every record keeps it."""
    return f"python -m raykd.{command} " + shlex.join(sys.argv[1:] if argv is None else [str(a) for a in argv])
