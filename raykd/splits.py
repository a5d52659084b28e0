"""Which rows a run trains on and which it selects on: the validation split held out of the training set,
the low-data share (--train-fraction), both seeded and stratified by label (scikit-learn's train_test_split),
and the check that every class keeps a row on each side."""

from __future__ import annotations

import datasets
import numpy as np
from sklearn.model_selection import train_test_split

from raykd.errors import RaykdError
from raykd.metrics import check_defined
from raykd.tasks import Task


def check_classes(task: Task, labels, where: str, fix: str):
    """Every class of a classification task must have a row in `labels` (class ids): a student never shown a
    class learns no output for it, and a split without it selects on a metric that cannot see it. Regression
    tasks are not checked. Raises RaykdError naming the missing classes, `where` and `fix`."""
    if task.is_regression:
        return
    present = set(int(y) for y in labels)
    missing = [name for i, name in enumerate(task.labels) if i not in present]
    if missing:
        raise RaykdError(f"{where} has no row of {task.name}'s class(es) {', '.join(map(repr, missing))} "
                         f"({len(labels)} rows, all of {', '.join(repr(task.labels[i]) for i in sorted(present))}); {fix}")


def subsample(task: Task, ds: datasets.Dataset, fraction: float, seed: int, what: str = "training rows",
              fix: str = "raise --train-fraction") -> datasets.Dataset:
    """A seeded share of the rows, for low-data runs: round(fraction * N) rows (at least 1), in the file's
    order, drawn by scikit-learn's `train_test_split`, stratified by label for classification tasks (each
    class keeps its share, which a 10% subset of a small set can otherwise lose) and plain for regression.
    Raises RaykdError when `fraction` is outside (0, 1] or the rows are too few to keep every class."""
    if not 0 < fraction <= 1:
        raise RaykdError(f"--train-fraction {fraction} is out of range; it must be in (0, 1]")
    keep = max(1, round(len(ds) * fraction))
    if keep >= len(ds):
        return ds
    labels = None if task.is_regression else np.asarray(ds["label"])
    try:
        rows, _ = train_test_split(np.arange(len(ds)), train_size=keep, random_state=seed, stratify=labels)
    except ValueError as err:  # a class with a single row, or fewer rows kept than classes
        raise RaykdError(f"cannot keep {fraction:g} of the {len(ds)} {what} ({' '.join(str(err).split())}); {fix}") from None
    return _rows(ds, rows)


def _rows(ds: datasets.Dataset, rows: np.ndarray) -> datasets.Dataset:
    """The given rows of `ds` in file order, written out as a dataset of their own (`flatten_indices`), without
    datasets' progress bar: a split of a few thousand rows takes milliseconds, and its bar was console noise in
    every command that splits."""
    shown = not datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        return ds.select(np.sort(rows)).flatten_indices()
    finally:
        if shown:
            datasets.enable_progress_bars()


HOLD_OUT_FIX = ("raise --validation-fraction or --train-fraction, or select on the dev set: --select-on dev for a search, "
                "--validation-fraction 0 for a teacher")


def hold_out(task: Task, ds: datasets.Dataset, fraction: float, seed: int) -> tuple[datasets.Dataset, datasets.Dataset]:
    """(train, validation): a share `fraction` of the rows of `ds` held out to select models on, and
    the rest to train on; both keep the file's row order and are disjoint.

    scikit-learn's `train_test_split` on the row indices: ceil(fraction * N) validation rows, seeded by
    `seed` (the same rows for the same data, fraction and seed), stratified by label for classification
    tasks (each class keeps its share on both sides); a plain seeded split for regression.

    Raises RaykdError when `fraction` is outside (0, 1), when a side would be empty or too small to hold
    every class, or when one of the task's metrics is undefined on the validation labels.
    """
    if not 0 < fraction < 1:
        raise RaykdError(f"--validation-fraction {fraction:g} is out of range; it must be in (0, 1), e.g. 0.1, "
                         "or pass --select-on dev to select on the dev set")
    labels = np.asarray(ds["label"])
    try:
        train_rows, validation_rows = train_test_split(np.arange(len(ds)), test_size=fraction, random_state=seed,
                                                       stratify=None if task.is_regression else labels)
    except ValueError as err:  # too few rows, or a class with a single row
        raise RaykdError(f"cannot hold out {fraction:g} of the {len(ds)} training rows for validation "
                         f"({' '.join(str(err).split())}); {HOLD_OUT_FIX}") from None
    check_defined(task, labels[validation_rows], "validation split", HOLD_OUT_FIX)
    return _rows(ds, train_rows), _rows(ds, validation_rows)


def split_train(task: Task, train: datasets.Dataset, train_fraction: float, validation_fraction: float,
                seed: int) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    """(train, validation or None): the rows to train on and the rows to select on.

    The validation split is held out of the *whole* training set first (`hold_out`), and only then is each
    side cut to `train_fraction` (`subsample`, the same seed). So the rows a run selects on depend on the
    data, `validation_fraction` and `seed` alone, never on `train_fraction`: a low-data run selects on a share
    of the rows a full-data run selects on, and a teacher that held out the same fraction with the same seed
    never trained on them (raykd.selection.teacher_caution). A validation split taken from the
    subset instead would hold rows that the full-data teacher learnt. With 0 nothing is held out.

    Raises RaykdError as hold_out and subsample do, and when the subsampled validation rows leave a
    metric undefined."""
    validation = None
    if validation_fraction:
        train, validation = hold_out(task, train, validation_fraction, seed)
        if train_fraction < 1:
            validation = subsample(task, validation, train_fraction, seed, "held-out validation rows", HOLD_OUT_FIX)
            check_defined(task, validation["label"], "validation split", HOLD_OUT_FIX)
        check_classes(task, validation["label"], "the held-out validation split", HOLD_OUT_FIX)
    train = subsample(task, train, train_fraction, seed)
    check_classes(task, train["label"], f"the training rows kept by --train-fraction {train_fraction:g}",
                  "raise --train-fraction")
    return train, validation
