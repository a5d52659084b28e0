"""The selection rule, in one place: what an epoch scores (`selection_score`), which epochs may be chosen at all
(`NOT_ELIGIBLE`), how trials and confirmed configurations are ranked (`rank`, `best_checkpoint`,
`confirmed_choice`), and the cautions that say when a selection cannot be trusted. The worker scores every epoch
with it, Tune/Optuna/ASHA rank by that score, the confirmation and the export choose with `rank`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from raykd.tasks import Task

# The score of an epoch that may not be chosen (an internal stage's, a non-finite loss's): below every real score.
NOT_ELIGIBLE = -1e6

# GLUE's classification metrics (accuracy, F1, Matthews) lie in [-1, 1], so a score lowered by 3 is below
# every score that was not: a constant student ranks under every student that tells the classes apart.
CONSTANT_PENALTY = 3.0


def is_constant(scores: dict[str, float], metric: str) -> bool:
    """True when `scores` (compute's output, merged across splits) say the student predicted one class for
    every row of `metric`'s split (`val_f1` -> `val_top_class_share` == 1.0). False for regression, for a
    metric without a split prefix (`train_loss`) and when the share was not measured."""
    split = metric.split("_", 1)[0]
    return bool(split in ("val", "dev") and scores.get(f"{split}_top_class_share") == 1.0)


def selection_score(scores: dict[str, float], metric: str, mode: str = "max") -> float:
    """The number trials, epochs and confirmed configurations are ranked by (higher is better): `metric`
    from `scores`, negated when `mode` is "min", less CONSTANT_PENALTY when the student predicted one class
    for every row of the metric's split (is_constant). Without the penalty F1 can prefer a constant
    classifier: on MRPC's 37-row validation split of a 10% search the all-positive answer (F1 81.2) beat
    every student that learnt something (results/heldout/paper/notes.md). Raises KeyError when `metric`
    is not in `scores`."""
    score = scores[metric] if mode == "max" else -scores[metric]
    return score - CONSTANT_PENALTY if is_constant(scores, metric) else score


CONFIRM = "confirm.json"  # the multi-seed confirmation (raykd.tuning.confirm)


def best_checkpoint(exp_dir: Path, confirmed: bool = True) -> tuple[str, dict, str, dict]:
    """(trial id, metrics, checkpoint folder, configuration) of the experiment's student: with
    `confirmed` and a finished multi-seed confirmation (confirm.json's "chosen", raykd.tuning.confirm), the run
    it chose; else the epoch of any search trial with the highest `score`.

    `score` is the one rule for "best": each worker reports the search's metric there, negated for
    mode "min", and NOT_ELIGIBLE for internal-stage epochs and non-finite values (raykd.training.worker); Ray
    Train keeps checkpoints by the same column. Rows come from Tune's ExperimentAnalysis: the
    checkpoints are kept by each trial's inner Ray Train run (or, for a one-worker trial, by its
    raykd.training.session.TrialSession in the same layout), so ResultGrid's own best_checkpoints is empty.
    Raises RuntimeError when no trial saved a classification checkpoint yet."""
    import pandas  # the driver's tables only: the workers import this module for its scores

    chosen = confirmed_choice(exp_dir) if confirmed else None
    if chosen:
        return chosen["trial"], chosen["metrics"], chosen["checkpoint"], chosen["config"]
    candidates = []
    for trial, frame in _trial_rows(exp_dir):
        if frame.empty or "checkpoint_path" not in frame:
            continue
        score = pandas.to_numeric(frame["score"], errors="coerce")
        eligible = frame[(score > NOT_ELIGIBLE) & np.isfinite(score)].dropna(subset=["checkpoint_path"])
        for _, row in eligible.iterrows():
            if Path(row["checkpoint_path"]).is_dir():
                candidates.append((trial.trial_id, row.to_dict(), row["checkpoint_path"], dict(trial.config)))
    if not candidates:
        raise RuntimeError(f"no trial of {exp_dir} saved a classification checkpoint yet")
    return min(candidates, key=lambda c: rank(c[1]["score"], c[1].get("epoch"), c[3]))


def config_key(config: dict) -> str:
    """A configuration's identity, its seed left out (the confirmation replaces the seed)."""
    return json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True, default=str)


def rank(score: float, epoch, config: dict) -> tuple:
    """Sort key of "best first" among trial epochs: the higher `score`; on a tie (common: a 10-row
    validation split has 11 possible accuracies) the earlier epoch, then the configuration's key, then
    the whole configuration with its seed (trials that differ only in seed). Not the trial id: which of
    two trials started together gets the lower id varies from run to run, and the same search must
    pick the same student."""
    try:
        at = float(epoch)  # None, NaN or pd.NA (a row without an epoch) sorts last
    except (TypeError, ValueError):
        at = float("inf")
    return (-float(score), float("inf") if np.isnan(at) else at, config_key(config),
            json.dumps(config, sort_keys=True, default=str))


def confirmed_choice(exp_dir: Path) -> dict | None:
    """The run a finished confirmation chose (confirm.json's "chosen") when its checkpoint still
    exists, else None."""
    path = Path(exp_dir) / CONFIRM
    if not path.is_file():
        return None
    chosen = json.loads(path.read_text()).get("chosen")
    return chosen if chosen and chosen.get("checkpoint") and Path(chosen["checkpoint"]).is_dir() else None


class Caution(NamedTuple):
    """A caution that a search's numbers cannot show what they seem to: `what` is wrong, `why` it matters and
    what to do. Printed when the run starts (`console`) and kept in summary.md (`markdown`), worded alike."""
    what: str
    why: str

    @property
    def console(self) -> str:
        return f"caution: {self.what}; {self.why}"

    @property
    def markdown(self) -> str:
        return f"**caution: {self.what}.** {self.why[0].upper()}{self.why[1:]}."


def selection_cautions(selection: dict, task: Task) -> list[Caution]:
    """The cautions experiment.json's `selection` calls for (teacher_caution, small_validation_caution);
    empty when selection is on GLUE dev. Never raises."""
    rows = selection.get("validation_rows") if selection.get("select_on") == "validation" else None
    return [c for c in (teacher_caution(selection), small_validation_caution(rows, task)) if c]


def teacher_caution(selection: dict) -> Caution | None:
    """A Caution when experiment.json's `selection` says the teacher may have trained on the trials'
    validation rows; None otherwise, or when unknown (a teacher without raykd's record).

    The held-out rows depend on the data, the validation fraction and the data seed alone (raykd.splits.split_train),
    so a teacher whose record names the trials' fraction and seed never saw them, whatever either's
    --train-fraction. A teacher that held out another split, or none (from before raykd held them out, or made
    with --validation-fraction 0), gets the caution; an experiment from before `teacher_held_out` was kept
    gets it when its teacher trained on more rows than the trials."""
    seen = selection.get("teacher_train_rows")
    if selection.get("select_on") != "validation" or not seen:
        return None
    held = selection.get("teacher_held_out")
    ours = {"validation_fraction": selection["validation_fraction"], "data_seed": selection["data_seed"]}
    if held == ours or ("teacher_held_out" not in selection and seen <= selection["train_rows"]):
        return None
    if held and "of_train_fraction" in held:
        what = (f"the teacher held out {held['validation_fraction']:g} of a {held['of_train_fraction']:g} share of the "
                "training set (raykd then cut the share first), not the trials' rows")
    elif held:
        what = (f"the teacher held out {held['validation_fraction']:g} of the training set with data seed "
                f"{held['data_seed']}, not the trials' {ours['validation_fraction']:g} with data seed {ours['data_seed']}")
    elif "teacher_held_out" in selection:
        what = f"the teacher was fine-tuned on {seen} training rows and held none out"
    else:
        what = f"the teacher was fine-tuned on {seen} training rows, more than the trials' {selection['train_rows']}"
    return Caution(f"{what}, so it may have trained on the validation rows", "A student that mimics the teacher inherits "
            "what it memorized there (CoLA, results/paper/notes.md: such a teacher scores 61.8 Matthews on these rows "
            "against 29.0 on dev), so selection favours distillation that mimics it most; compare methods on GLUE dev")


# The methods in results/heldout/paper differ by 1 to 3 points on most tasks: a validation split on which an
# accuracy's standard error is above 2.5 points (under 400 rows) cannot rank them.
SMALL_VALIDATION_SE = 0.025


def small_validation_caution(validation_rows: int | None, task: Task) -> Caution | None:
    """A Caution when the validation split the trials are ranked on (`validation_rows` rows; None or 0 when
    there is none, e.g. selection on GLUE dev) is too small to rank them:
    an accuracy p measured on n rows has the binomial standard error sqrt(p (1 - p) / n), at most 0.5 / sqrt(n)
    (10 points on 25 rows, 3.2 on RTE's 249), and a caution is due when that is above SMALL_VALIDATION_SE.
    For a regression task (STS-B) the yardstick is Pearson's r: its standard error (1 - r^2) / sqrt(n - 1) is
    taken at r = 0.8. None when the split is large enough, or when there is none. Never raises.

    The search still selects on it (a second rule would be another selection); the user is told what the
    numbers can and cannot show, as the confirmation's `lead` does for the seeds' spread."""
    rows = validation_rows
    if not rows:
        return None
    if task.is_regression:
        se, unit = (1 - 0.8 ** 2) / max(rows - 1, 1) ** 0.5, "a Pearson correlation near 0.8"
    else:
        se, unit = 0.5 / rows ** 0.5, "an accuracy near 50%"
    if se <= SMALL_VALIDATION_SE:
        return None
    return Caution(f"the validation split has {rows} rows, so {unit} measured on it has a standard error of "
            f"{100 * se:.1f} points", f"trials less than about {200 * se:.0f} points apart are ranked by chance (RTE's "
            "249 rows chose finetune, last of five on dev: results/heldout/paper/notes.md); trust the confirmation's "
            "mean +- std over the seeds, or raise --validation-fraction at the cost of training rows")


def one_class_caution(best: dict | None) -> str | None:
    """A caution when the exported student predicts one class for every row of a split it was scored on
    (its `<split>_top_class_share` is 1.0, raykd.metrics.compute): its score is a constant classifier's, so
    the search found nothing better than always answering that class. None otherwise, and for regression."""
    splits = [split for split, name in (("validation", "val"), ("GLUE dev", "dev"))
              if best and best.get(f"{name}_top_class_share") == 1.0]
    if not splits:
        return None
    return (f"the exported student predicts one class for every row of {' and '.join(splits)}: its score is that of a "
            "constant classifier; give the trials more training rows or epochs, or other learning rates")


def _trial_rows(exp_dir: Path) -> list[tuple]:
    from raykd.tuning.trials import trial_rows  # Tune's tables import Ray Tune: only the driver needs them

    return trial_rows(exp_dir)
