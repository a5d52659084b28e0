"""Searching a teacher's fine-tuning recipe with the search's own machinery: Ray Tune proposes recipes
with Optuna (TPE), each trial is a Ray Train fine-tuning run (raykd.training.finetune's job), and ASHA stops
weak recipes by epoch. The best trial's best epoch becomes the teacher.

A distillation result is only as good as its teacher; one fixed recipe left all-MiniLM-L6-v2 near
chance on RTE. Seeds are a searched field like any other: restarts are how small GLUE sets are won
(TinyBERT's authors "just fine-tuned a few more times").

By default the teacher is chosen on the validation split held out from the training set (the rows the
students are later selected on, which it never trains on), and GLUE dev only reports it. With
`--validation-fraction 0` it trains on every row and is chosen on GLUE dev: its dev score is then
optimistic by the winner's curse, and says how strong a teacher the students were given, not a result.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ray import tune

from raykd import files
from raykd.errors import Interrupted, RaykdError, sigint_restored
from raykd.selection import best_checkpoint, small_validation_caution
from raykd.tasks import Task, get_task
from raykd.training import finetune
from raykd.training.driver import Scaling, export_checkpoint, fit_trial
from raykd.tuning import settings, tuner
from raykd.tuning.console import SearchConsole
from raykd.tuning.settings import EXPERIMENT, keep
from raykd.tuning.spaces import SearchSpace
from raykd.tuning.trials import run_name, trials_dir, trials_table


def check_space(space: SearchSpace) -> None:
    """Raises RaykdError when the space names anything but a teacher recipe field (finetune.FIELDS)."""
    names = set(space.fixed) | (set(space.space) if isinstance(space.space, dict) else set())
    unknown = sorted(names - set(finetune.FIELDS))
    if unknown:
        raise RaykdError(f"{space.path}: {', '.join(unknown)} cannot be searched for a teacher; "
                         f"a teacher space may name {', '.join(finetune.FIELDS)}")


@dataclass
class Setup:
    """What every teacher trial needs; shipped once to the trials by tune.with_parameters."""
    task: str
    base: str
    fixed: dict
    data_ref: object
    tokenizer_dir: str
    scaling: Scaling
    trials_dir: str
    max_failures: int


def check_arguments(args, space: SearchSpace) -> None:
    """Raises RaykdError for a teacher search that cannot run as asked (`args`: raykd.teacher's flags), before
    anything starts: the space (check_space), the trial budget, and epochs the space can draw beyond --max-epochs."""
    check_space(space)
    for flag, value in (("--num-samples", args.num_samples), ("--max-epochs", args.max_epochs),
                        ("--grace-period", args.grace_period)):
        if value < 1:
            raise RaykdError(f"{flag} {value} must be at least 1")
    if args.grace_period > args.max_epochs:
        raise RaykdError(f"--grace-period {args.grace_period} exceeds --max-epochs {args.max_epochs}; lower it")
    epochs = space.space.get("epochs") if isinstance(space.space, dict) else None
    most = max(getattr(epochs, "categories", None) or [getattr(epochs, "upper", 0) or 0, space.fixed.get("epochs", 0)])
    if most > args.max_epochs:
        raise RaykdError(f"{space.path}: epochs up to {most} exceed --max-epochs {args.max_epochs}; raise --max-epochs")


def run_trial(values: dict, setup: Setup):
    """The Tune function trainable: one fine-tuning run of the recipe `values` (over `setup.fixed`,
    over finetune.DEFAULTS). Raises the run's error, so the trial ends as ERROR and the search goes on."""
    cfg = finetune.DEFAULTS.replace(**{**setup.fixed, **values})
    job = finetune.job(get_task(setup.task), setup.base, cfg, setup.data_ref, setup.tokenizer_dir)
    fit_trial(job, setup.scaling, Path(setup.trials_dir), run_name(tune.get_context().get_trial_id()), setup.max_failures)


# The flags a teacher search keeps in its experiment.json, and --resume restores: the search's own where the
# teacher command has them, and the teacher's base, sampler seed and recipe.
SETTINGS = tuple(dict.fromkeys((*settings.SETTINGS, "teacher_base", "search_seed", *finetune.FIELDS)))


def keep_settings(exp_dir: Path, task: Task, args, command: str) -> None:
    """Write `<exp_dir>/experiment.json` ({"task", "kind": "teacher search", "command", "settings"}) and a copy of
    the space file, as the student search does: what --resume restores and checks."""
    keep(exp_dir, args, {"task": task.name, "kind": "teacher search", "command": command}, SETTINGS)


def resume_settings(exp_dir: Path, args, argv: list[str]) -> None:
    """For --resume: set `args` to the flags the search `exp_dir` started with (settings.resume_settings). A
    search from before teacher searches kept their flags resumes with the flags as given. Raises
    RaykdError when there is neither a search's experiment.json nor Tune state there, or a typed flag or the space
    contradicts it."""
    exp_dir = Path(exp_dir).resolve()
    if not (exp_dir / EXPERIMENT).is_file() and not tuner.started(exp_dir):
        raise RaykdError(f"no teacher search to resume at {exp_dir} (or its Ray state stayed on the machine that ran it); "
                         "check --records and --name, or start a new search with another --name")
    if (exp_dir / EXPERIMENT).is_file():
        settings.resume_settings(exp_dir, args, argv, SETTINGS, flags={})


def search(task: Task, base: str, space: SearchSpace, data_ref, rows: dict, scaling: Scaling,
           exp_dir: Path, out: Path, tokenizer, command: str, num_samples: int, max_epochs: int,
           grace_period: int = 2, seed: int = 0, max_failures: int = 1, resume: bool = False) -> dict:
    """Search the teacher recipe over `space` (num_samples trials, ASHA on epochs up to max_epochs) and
    save the best epoch of the best trial to `out` (a teacher folder, finetune.is_usable) with its record
    (`rows` is finetune.split_record's). Trials and epochs are chosen on the validation split held out from
    the training set when `rows` says there is one, else on GLUE dev; the search's trials.csv and summary.md go to `exp_dir`. Returns the record. With
    `resume`, Tune restores the interrupted search in `exp_dir`: ended trials are kept, unfinished ones
    continue from their last checkpoint (tuner.restore).

    Raises Interrupted (a RaykdError) when the search was interrupted (Ctrl-C: fewer than num_samples trials ended), when no
    trial produced a checkpoint, or when `out` appeared meanwhile.
    """
    exp_dir, out = Path(exp_dir).resolve(), Path(out).resolve()
    held_out = "validation_examples" in rows
    metric = f"{'val' if held_out else 'dev'}_{task.main_metric}"
    small = small_validation_caution(rows.get("validation_examples"), task)
    if small:  # said now, and in summary.md
        print(small.console, flush=True)
    tokenizer_dir = exp_dir / "ray" / "tokenizer"
    tokenizer.save_pretrained(tokenizer_dir)
    setup = Setup(task.name, base, space.fixed, data_ref, str(tokenizer_dir), scaling,
                  str(trials_dir(exp_dir)), max_failures)
    trainable = tuner.trainable(run_trial, scaling, setup=setup)
    if resume and tuner.started(exp_dir):  # else stopped before Tune saved anything: its trials start now
        search = tuner.restore(trainable, exp_dir)
    else:
        searcher = tuner.optuna_searcher(space.space, tuner.SCORE, tuner.SCORE_MODE, seed, exp_dir, space.points_to_evaluate)
        search = tuner.tuner(trainable, exp_dir, tuner.SCORE, tuner.SCORE_MODE, searcher, tuner.asha(max_epochs, grace_period),
                             num_samples, tuner.concurrency(scaling), SearchConsole(metric, max_epochs, "finetune"),
                             scaling, max_failures)
    with sigint_restored():
        grid = search.fit()
    table = trials_table(exp_dir, metric, max_epochs)
    files.atomic_write(exp_dir / "trials.csv", table.to_csv(index=False))
    if not tuner.ended(exp_dir, num_samples):  # Ctrl-C: a teacher from part of the search is not the search's teacher
        raise Interrupted(f"the teacher search was interrupted ({int(table['status'].isin(['TERMINATED', 'ERROR']).sum())} of "
                         f"{num_samples} trials ended) and saved no teacher; continue it with the same command and --resume "
                         f"--name {exp_dir.name} (its trials so far are in {exp_dir / 'trials.csv'})")
    try:
        trial_id, metrics, checkpoint, config = best_checkpoint(exp_dir)
    except RuntimeError:
        errors = [str(e).strip().splitlines()[-1] for e in grid.errors if str(e).strip()]
        raise RaykdError(f"no teacher trial reported an epoch{f' (first error: {errors[0]})' if errors else ''}; "
                         f"see {exp_dir / 'trials.csv'}") from None
    recipe = finetune.DEFAULTS.replace(**{**space.fixed, **config})
    try:
        with files.publish_dir(out, replace=False) as partial:
            best = export_checkpoint(Path(checkpoint), partial)
            record = {"task": task.name, "base": base, "best_epoch": best["epoch"],
                      **{k: v for k, v in best.items() if k.startswith(("dev_", "val_"))}, "config": recipe.to_dict(),
                      # the trials' own seconds: Tune keeps them across --resume, where this process's clock
                      # would count only the last piece of an interrupted search
                      "selected_on": metric, **rows, "seconds": round(float(table["seconds"].sum()), 1),
                      "command": command, "search": {"experiment": exp_dir.name, "trial": trial_id, "trials": len(table),
                                                     "space": str(space.path), "selected_on": metric}}
            files.atomic_json(partial / finetune.RECORD, record)
    except FileExistsError:
        raise RaykdError(f"{out} appeared while the teacher search ran; choose another --out") from None
    shown = [c for c in ("trial", "status", *finetune.FIELDS, "epochs_run", "best_value", "best_constant", "stop_reason")
             if c in table]  # best_value: the metric of the epoch ranked best (best_constant: it predicted one class)
    files.atomic_write(exp_dir / "summary.md", "\n".join([
        f"# Teacher search: {task.name}", "", f"Command: `{command}`", "",
        f"Best: trial {trial_id}, epoch {best['epoch']}, {finetune.scores(best, task)}, " + (
            f"selected on {rows['validation_examples']} rows held out from the training set (GLUE dev only reports it)"
            if held_out else "selected on GLUE dev (the teacher's dev score is optimistic: it is also what chose it)") +
        f". Saved to the teacher folder `{out.name}`.", *([small.markdown] if small else []),
        "", "| " + " | ".join(shown) + " |", "|" + "---|" * len(shown),
        *("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row) + " |"
          for row in table[shown].itertuples(index=False)), ""]))
    return record
