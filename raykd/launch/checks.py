"""Checks that raykd.distill and raykd.search run on their inputs before Ray starts, anything is
computed, or anything is written: flags in range, the data files read and checked row by row, and
(for a search) every configuration the space can produce against the teacher.

Every check raises RaykdError, which the commands turn into one line `error: <problem>; <fix>` and
exit code 2.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from raykd import data, files, models, splits
from raykd.errors import RaykdError
from raykd.launch import cli
from raykd.student import offer, shape
from raykd.tasks import Task
from raykd.teacher_outputs.disk_cache import parse_size
from raykd.tuning import spaces


def check_arguments(args):
    """The flags distill and search share: Ray (--workers, --cpus-per-worker, --gpus-per-worker,
    --max-failures), data (--max-seq-length, --train-fraction, --data-seed) and the teacher-output
    budgets (--teacher-cache-memory, --teacher-cache-disk).
    Raises RaykdError for the first one out of range."""
    workers_flag = "--workers-per-trial" if hasattr(args, "space") else "--workers"
    if args.workers < 1:
        raise RaykdError(f"{workers_flag} {args.workers} must be at least 1; pass the number of DDP workers (default 2)")
    if args.cpus_per_worker <= 0:
        raise RaykdError(f"--cpus-per-worker {args.cpus_per_worker:g} must be > 0 (a worker needs a CPU); use 1")
    if args.gpus_per_worker < 0:
        raise RaykdError(f"--gpus-per-worker {args.gpus_per_worker:g} is negative; use 0 (CPU) or more")
    if args.max_failures < 0:
        raise RaykdError(f"--max-failures {args.max_failures} is negative; use 0 (no restart) or more")
    data.check_arguments(args.max_seq_length, args.train_fraction, args.data_seed)
    check_places(args)
    for flag in ("--teacher-cache-memory", "--teacher-cache-disk"):
        name = flag[2:].replace("-", "_")
        if hasattr(args, name):
            parse_size(getattr(args, name), flag)


# Free space a local Ray cluster needs in its temp folder for session logs and sockets before it writes anything
# else (its object store spills there too, but raykd keeps big arrays memory-mapped from the cache instead).
RAY_TMP_MIN = 256 * 2**20


def check_places(args):
    """The folders a run writes to, before Ray starts: --cache-dir (or RAYKD_CACHE) must be a writable folder,
    and, for a local cluster (no --address), Ray's temp folder (RAY_TMPDIR, else the system's) must be
    writable with RAY_TMP_MIN free. The teacher outputs' own size is checked against the cache disk once the
    plan knows it (raykd.launch.prepare). Raises RaykdError naming the folder and the fix."""
    cache = Path(args.cache_dir)
    if cache.exists() and not cache.is_dir():
        raise RaykdError(f"the cache folder {cache} is a file; pass a folder as --cache-dir (or RAYKD_CACHE)")
    try:  # in the folder, or the nearest one that exists: a refused command creates nothing
        files.try_writing(cache)
    except OSError as err:
        raise RaykdError(f"cannot write the cache to {cache} ({err.strerror}); pass a writable --cache-dir "
                         "(or RAYKD_CACHE)") from None
    if getattr(args, "address", None):
        return
    ray_tmp = Path(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir())
    try:
        files.try_writing(ray_tmp)
        free = shutil.disk_usage(ray_tmp).free
    except OSError as err:
        raise RaykdError(f"Ray cannot write its session files to {ray_tmp} ({err.strerror}); set RAY_TMPDIR to a "
                         "writable folder") from None
    if free < RAY_TMP_MIN:
        raise RaykdError(f"{ray_tmp} has {free / 2**20:.0f} MiB free, under the {RAY_TMP_MIN / 2**20:.0f} MiB a local "
                         "Ray cluster needs for its session files; free space there or set RAY_TMPDIR to a larger disk")


def check_search_arguments(args):
    """The search's own flags: ASHA's settings (--max-epochs, --grace-period, --reduction-factor),
    --num-samples, --max-concurrent-trials, --seed, the teacher recipe, the selection (--validation-fraction)
    and the confirmation (--confirm-top, --confirm-seeds); then check_arguments.
    Raises RaykdError for the first one out of range."""
    if args.num_samples < 1:
        raise RaykdError(f"--num-samples {args.num_samples} must be at least 1; pass the number of trials (default 12)")
    if args.max_epochs < 1:
        raise RaykdError(f"--max-epochs {args.max_epochs} must be at least 1; pass the classification epochs per trial (default 3)")
    if not 1 <= args.grace_period <= args.max_epochs:
        raise RaykdError(f"--grace-period {args.grace_period} must be in 1..--max-epochs ({args.max_epochs}); lower it or raise --max-epochs")
    if not args.reduction_factor > 1:
        raise RaykdError(f"--reduction-factor {args.reduction_factor:g} must be > 1 (ASHA keeps 1/reduction-factor of "
                         "the trials at each rung); use 2 (the default), 3 or 4")
    if args.max_concurrent_trials < 0:
        raise RaykdError(f"--max-concurrent-trials {args.max_concurrent_trials} is negative; use 0 (as many as fit) or more")
    if not 0 <= args.seed < 2**32:
        raise RaykdError(f"--seed {args.seed} must be in 0..2^32-1 (Optuna's sampler seed); pass a seed such as 0")
    if args.teacher_epochs < 1:
        raise RaykdError(f"--teacher-epochs {args.teacher_epochs} must be at least 1; pass 1 or more")
    if not 0 < args.teacher_learning_rate <= 1:
        raise RaykdError(f"--teacher-learning-rate {args.teacher_learning_rate:g} must be in (0, 1]; use e.g. 5e-5")
    if getattr(args, "select_on", "dev") == "validation":
        check_validation_fraction(args.validation_fraction, False, "or pass --select-on dev to select on the dev set")
    if getattr(args, "confirm_top", 0) < 0:
        raise RaykdError(f"--confirm-top {args.confirm_top} is negative; pass the number of configurations to confirm "
                         "(default 3), or 0 to skip the confirmation")
    if getattr(args, "confirm_seeds", 0) < 0:
        raise RaykdError(f"--confirm-seeds {args.confirm_seeds} is negative; pass the seeds per confirmed configuration "
                         "(default 3), or 0 to skip the confirmation")
    check_latency_examples(getattr(args, "latency_examples", 0))
    check_arguments(args)


def check_latency_examples(examples: int):
    """--latency-examples of search and export. Raises RaykdError when it is negative."""
    if examples < 0:
        raise RaykdError(f"--latency-examples {examples} is negative; pass 0 to skip the latency table")


def check_validation_fraction(value: float, allow_zero: bool, fix: str):
    """--validation-fraction is the share of the training set held out: in (0, 1), or [0, 1) where 0 means
    something (`allow_zero`: a teacher trained on every row). Raises RaykdError naming the range and `fix`."""
    if 0 < value < 1 or (allow_zero and value == 0):
        return
    raise RaykdError(f"--validation-fraction {value:g} is out of range; it must be in {'[0, 1)' if allow_zero else '(0, 1)'}, "
                     f"e.g. 0.1, {fix}")


def check_data(task: Task, args, validation_fraction: float = 0.0):
    """Read and check the train and dev data now (raykd.data.load_checked), and make the training and
    validation rows (raykd.splits.split_train), so that a bad row, an unusable dev set or a split that cannot
    be made stops the command before Ray starts. Raises RaykdError."""
    train, _ = data.load_checked(task, cli.data_source(args))
    splits.split_train(task, train, args.train_fraction, validation_fraction, args.data_seed)


def validation_fraction(args) -> float:
    """The share of the training set a search holds out to select on: --validation-fraction with
    --select-on validation (the default), 0 with --select-on dev."""
    return args.validation_fraction if getattr(args, "select_on", "dev") == "validation" else 0.0


def check_search(args, task: Task, space: spaces.SearchSpace, teacher_dir: str | None):
    """Everything a search needs checked before it starts: the flags, the space's metric, the teacher
    (or the base a teacher will be fine-tuned from), every configuration the space can produce against
    it (raykd.method.plan.resolve, as a single run gets; a space's `shape` offered as its whole grid), and the
    data. Returns the teacher's (or the base's) Hugging Face config. Raises RaykdError."""
    check_search_arguments(args)
    offer.check_arguments(args, space)
    spaces.check_metric(space, task)
    if teacher_dir:
        config = models.load_teacher(teacher_dir, task, args.max_seq_length, verbose=True)[0].config
    else:
        config = models.check_base(args.teacher_base, args.max_seq_length)
        models.load_base_tokenizer(args.teacher_base)
    if space.shape_axes:
        spaces.offer_shapes(space, [s.name for s in shape.grid(space.shape_axes, config)])
    spaces.check_plans(space, config, args.workers, {"epochs": args.max_epochs})
    check_data(task, args, validation_fraction(args))
    return config
