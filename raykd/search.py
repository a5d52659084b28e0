"""The search: Ray Tune with Optuna (TPE) proposing configurations and ASHA stopping weak ones; every
trial is a Ray Train run of DDP workers against the one TeacherService of the experiment.

    python -m raykd.search --task rte --space search_spaces/internal.py --data-dir ../shared/data/glue

ASHA measures a trial's progress in classification epochs (`cls_epoch`), not in epochs: PID and SID
spend their first stages on internal losses with an untrained classifier, report cls_epoch = 0 there,
and so never meet a rung (and are never stopped) before their classification stage.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import ray

from raykd import errors, models
from raykd.artifacts import deploy, front, results
from raykd.data import load_task_data
from raykd.errors import Interrupted, RaykdError, exits_cleanly
from raykd.launch import checks, cli, cluster
from raykd.launch.prepare import SHARED_FIELDS, prepare
from raykd.method.plan import resolve
from raykd.selection import selection_cautions
from raykd.student import offer
from raykd.tasks import get_task
from raykd.training import finetune, precision
from raykd.training.driver import Scaling
from raykd.tuning import confirm, spaces, tuner
from raykd.tuning.settings import EXPERIMENT, experiment_info, keep, resume_settings
from raykd.tuning.spaces import SearchSpace, load_space
from raykd.tuning.trial import Experiment, run_trial
from raykd.tuning.trials import trials_dir


def parser() -> argparse.ArgumentParser:
    """The search command's argument parser: every option with its default (`--help`)."""
    p = argparse.ArgumentParser(prog="python -m raykd.search", description="Search distillation algorithms and hyperparameters with Ray Tune, Optuna and ASHA.")
    cli.add_data_arguments(p)
    p.add_argument("--space", required=True, help="search space file (search_spaces/internal.py, soft_label.py, paper.py)")
    p.add_argument("--teacher", help="fine-tuned teacher folder; without it a teacher is fine-tuned from --teacher-base on the same data "
                        "into <cache-dir>/teachers/ (once: later searches with the same recipe reuse it)")
    p.add_argument("--teacher-base", default=models.OFFLINE_BASE, help="base model when a teacher must be fine-tuned first (default: minilm)")
    p.add_argument("--teacher-epochs", type=int, default=finetune.DEFAULTS.epochs,
                   help=f"epochs when a teacher must be fine-tuned first (default: {finetune.DEFAULTS.epochs})")
    p.add_argument("--teacher-learning-rate", type=float, default=finetune.DEFAULTS.learning_rate,
                   help=f"learning rate when a teacher must be fine-tuned first (default: {finetune.DEFAULTS.learning_rate:g})")
    p.add_argument("--precision", choices=precision.CHOICES,
                   help="autocast precision of every trial (unless the space searches it) and of a teacher fine-tuned "
                        "first (default: the space's, else auto for trials and fp32 for the teacher)")
    p.add_argument("--num-samples", type=int, default=12, help="trials to run (default: 12)")
    p.add_argument("--max-epochs", type=int, default=3, help="classification epochs per trial, ASHA's max_t (default: 3)")
    p.add_argument("--grace-period", type=int, default=1, help="classification epochs before ASHA may stop a trial (default: 1)")
    p.add_argument("--reduction-factor", type=float, default=2, help="ASHA's reduction factor (default: 2)")
    p.add_argument("--max-concurrent-trials", type=int, default=0, help="trials at once; 0 = as many as the cluster's CPUs hold (default: 0)")
    p.add_argument("--name", help="experiment name (default: the space file's name and the time)")
    p.add_argument("--out", type=Path, default=Path("results"), help="results root; the experiment goes to <out>/<task>/<name> (default: results)")
    p.add_argument("--seed", type=int, default=0, help="seed of Optuna's TPE sampler (default: 0)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted experiment <out>/<task>/<name>")
    g = p.add_argument_group("selection and confirmation")
    g.add_argument("--select-on", choices=("validation", "dev"), default="validation",
                   help="what trials are selected on: validation, a split held out from the training set (GLUE dev then "
                        "only reports the chosen student), or dev (the old behaviour: train on the whole train set, select "
                        "on dev; the reported number is then optimistically biased) (default: validation)")
    g.add_argument("--validation-fraction", type=float, default=0.1,
                   help="share of the whole training set held out to select on, stratified by label, seeded by --data-seed; "
                        "--train-fraction then cuts both sides, so a low-data run selects on a share of these rows "
                        "(default: 0.1)")
    g.add_argument("--confirm-top", type=int, default=3,
                   help="after the search, run the K best configurations again with --confirm-seeds seeds each at the full "
                        "epoch budget, choose by the mean and export that configuration's seed closest to the mean; "
                        "0 turns it off (default: 3)")
    g.add_argument("--confirm-seeds", type=int, default=3,
                   help="seeds per confirmed configuration (the searched seed + 1, + 2, ...); 0 turns the confirmation off (default: 3)")
    p.add_argument("--export-formats", default=",".join(deploy.FORMATS),
                   help="formats of best/, each checked on the dev set, with the latency table in its card: hf, onnx, "
                        "onnx-int8 (hf is always written; default: hf,onnx,onnx-int8)")
    p.add_argument("--latency-examples", type=int, default=100,
                   help="dev examples timed one at a time for the latency table of best/'s card (batch-32 throughput "
                        "over as many rows, at most 4 batches); 0 skips the table (default: 100)")
    offer.add_arguments(p)
    cli.add_teacher_cache_arguments(p)
    cli.add_ray_arguments(p, workers_flag="--workers-per-trial")
    return p


def parse_args(argv=None):
    """The command's flags, parsed (argparse exits 2 on an unknown one)."""
    return parser().parse_args(argv)


def experiment_dir(args, task) -> Path:
    if args.resume:
        if not args.name:
            raise RaykdError("--resume needs the --name of the experiment to continue")
        path = cli.claim(args.out / task.name / args.name)
        if (path / cli.UNFINISHED).is_file():
            raise RaykdError(f"the search at {path} was interrupted before its first trial, so there is nothing to "
                             "resume; run the same command without --resume (it replaces the folder)")
        if not (path / EXPERIMENT).is_file():
            raise RaykdError(f"no experiment to resume at {path}; check --out and --name, or drop --resume")
        return path
    name = args.name or f"{Path(args.space).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    return cli.check_output_dir(args.out / task.name / name)


def default_teacher(args, task, scaling: Scaling, records_root: Path, command: str) -> str:
    """The teacher for a search without --teacher: fine-tuned from --teacher-base on the same data
    (same files, fraction and max length) without the validation split the trials select on (its best
    epoch is chosen there; with --select-on dev, on the whole training set and dev), kept in the cache
    and reused by every later search with the same recipe (raykd.training.finetune); `command` is the
    search's command line, for its record.
    Returns its folder. Raises RaykdError when the fine-tuning fails."""
    tokenizer = models.load_base_tokenizer(args.teacher_base)
    # The rows the trials hold out to select on are held out from the teacher too (raykd.training.finetune).
    data = load_task_data(task, cli.data_source(args), tokenizer, args.max_seq_length, args.train_fraction,
                          args.data_seed, args.cache_dir, checks.validation_fraction(args))
    cfg = finetune.DEFAULTS.replace(epochs=args.teacher_epochs, learning_rate=args.teacher_learning_rate,
                                    precision=args.precision or finetune.DEFAULTS.precision)
    folder = finetune.recipe_dir(args.cache_dir, task, args.teacher_base, cfg, data, args.max_seq_length)
    if finetune.is_usable(folder):
        print(f"teacher: {finetune.describe(folder, task)}", flush=True)
        return str(folder)
    print(f"no teacher for this task, data and recipe yet: fine-tuning {args.teacher_base} for {cfg.epochs} epochs "
          f"into {folder}", flush=True)
    record = finetune.finetune_teacher(task, args.teacher_base, cfg, ray.put(data),
                                       finetune.split_record(data, args.train_fraction, checks.validation_fraction(args), args.data_seed),
                                       scaling, folder, tokenizer, f"(fine-tuned by) {command}", args.max_failures,
                                       replace=True)
    finetune.copy_record(record, folder, records_root)
    print(f"teacher: {finetune.describe(folder, task)}", flush=True)
    return str(folder)


def selection_metric(space: SearchSpace, task, select_on: str) -> str:
    """The metric Tune, Optuna and ASHA optimise: the space's `metric` (a dev metric, or train_loss) or
    the task's main metric, measured on the validation split (`val_<m>`) unless --select-on dev."""
    metric = space.metric or f"dev_{task.main_metric}"
    return "val_" + metric[len("dev_"):] if select_on == "validation" and metric.startswith("dev_") else metric


def run_confirmation(args, experiment: Experiment, exp_dir: Path, search_grid, task,
                     shapes: offer.Offer | None = None) -> dict | None:
    """The multi-seed confirmation (raykd.tuning.confirm) of a finished search: the top --confirm-top
    configurations by the selection score, --confirm-seeds fresh seeds each, as a Tune grid through
    run_trial in <exp_dir>/ray/confirm (restored on --resume: finished runs are not run again); writes
    confirm.json and confirm.csv. Returns the confirmation's summary, or None when there is nothing to
    confirm (no trial reached a classification epoch)."""
    candidates = None
    if confirm.started(exp_dir):  # its configurations are in its own grid: restored, not chosen again
        print(f"confirmation: continuing {exp_dir / 'ray' / confirm.TUNE_NAME} (finished runs are not run again)", flush=True)
    else:
        pareto = args.objective == "pareto"  # the front's points, not the most accurate ones
        candidates = (confirm.front_configs(search_grid, args.confirm_top, shapes.paper) if pareto
                      else confirm.top_configs(search_grid, args.confirm_top))
        if not candidates:
            return None
        for c in candidates:
            c["seeds"] = confirm.seeds_for(experiment.config(c["config"]).seed, args.confirm_seeds)
        runs = sum(len(c["seeds"]) for c in candidates)
        print(f"confirmation: the {'front' if pareto else 'top'} {len(candidates)} configuration(s) with {args.confirm_seeds} seed(s) each, {runs} "
              f"run(s) of {experiment.max_epochs} classification epoch(s) at most, no early stopping", flush=True)
    runner = dataclasses.replace(experiment, trials_dir=str(exp_dir / "ray" / "confirm-trials"))
    with errors.sigint_restored():
        grid = confirm.build_tuner(tuner.trainable(run_trial, experiment=runner), exp_dir, candidates,
                                   tuner.concurrency(experiment.scaling, args.max_concurrent_trials)).fit()
    summary = confirm.summarize(grid, experiment.selection["metric"], f"dev_{task.main_metric}",
                                finished=confirm.ended(exp_dir, grid))
    confirm.write(exp_dir, summary)
    return summary


def build_tuner(args, space: SearchSpace, experiment: Experiment, exp_dir: Path, shapes: offer.Offer | None):
    """The search's Tuner (raykd.tuning.tuner): Optuna over the space, ASHA on classification epochs, both on
    each epoch's `score` (experiment.selection's metric, a constant student last); with --objective pareto Optuna
    on (score, latency_ms) and ASHA inside latency bands (raykd.tuning.bands). Restored with --resume."""
    trainable = tuner.trainable(run_trial, experiment=experiment)
    if args.resume and tuner.started(exp_dir):  # else stopped before Tune saved anything: its trials start now
        return tuner.restore(trainable, exp_dir)
    metric, mode = tuner.SCORE, tuner.SCORE_MODE
    scheduler = tuner.asha(args.max_epochs, args.grace_period, args.reduction_factor)
    if args.objective == "pareto":
        metric, mode = [tuner.SCORE, "latency_ms"], [tuner.SCORE_MODE, "min"]
        scheduler = tuner.banded_asha(shapes.bands, args.max_epochs, args.grace_period, args.reduction_factor)
    searcher = tuner.optuna_searcher(space.space, metric, mode, args.seed, exp_dir, space.points_to_evaluate)
    return tuner.tuner(trainable, exp_dir, tuner.SCORE, tuner.SCORE_MODE, searcher, scheduler, args.num_samples,
                       tuner.concurrency(experiment.scaling, args.max_concurrent_trials))


def exports(args, interim: bool) -> tuple[tuple[str, ...], int]:
    """(formats, latency examples) for results.write. The serving formats (ONNX export, checks, latency:
    minutes) are made once, for the student that ships; an interim best/ (of an interrupted search, or before
    or during a confirmation, which replaces it) is the Hugging Face folder alone, without the latency table."""
    return (("hf",), 0) if interim else (args.export_formats, args.latency_examples)


@exits_cleanly
def main(argv=None):
    """`python -m raykd.search`: Tune + Optuna + ASHA over a space of distillation configurations, the
    multi-seed confirmation of the top ones, and the chosen student exported to <out>/<task>/<name>/best.
    Returns the summary (raykd.artifacts.results.write). Raises RaykdError (exit 2) for bad input, before
    any compute; Interrupted (exit 130) after Ctrl-C, once the results so far and an interim best/ are written."""
    args = parse_args(argv)
    args.export_formats = deploy.parse_formats(args.export_formats)
    task = get_task(args.task)
    if args.resume:  # the settings and the space the experiment started with, from experiment.json
        resume_settings(experiment_dir(args, task), args, sys.argv[1:] if argv is None else argv)
    space = load_space(args.space)
    if args.precision:
        space.fixed.setdefault("precision", args.precision)
    metric, mode = selection_metric(space, task, args.select_on), space.mode
    exp_dir = experiment_dir(args, task)
    teacher_dir = args.teacher and str(Path(args.teacher).resolve())
    if args.resume and not teacher_dir:  # the teacher the experiment started with, not a new default
        teacher_dir = experiment_info(exp_dir)["teacher_dir"]
    # Flags, the teacher, every configuration the space can produce against it, the data: before anything starts.
    teacher_config = checks.check_search(args, task, space, teacher_dir)
    shapes = offer.for_search(args, task, space, teacher_config, teacher_dir)  # timed while the cores are idle
    scaling = cli.scaling(args)
    cluster.connect(args.address, verbose=args.verbose)
    cluster.check_fits(scaling.workers, scaling.cpus_per_worker, scaling.gpus_per_worker, "each trial")
    if not args.resume:
        cli.fresh_output_dir(exp_dir)  # marked unfinished until experiment.json: a rerun replaces it
    cluster.log_workers_to(exp_dir / "ray-workers.log", args.verbose)
    command = cli.command_line("search", argv)
    if not teacher_dir:
        errors.at("teacher fine-tuning", "nothing of the search was kept (a teacher is kept only once fine-tuned); "
                                         "run the same command again")
        teacher_dir = default_teacher(args, task, scaling, args.out, command)
    teacher_model, tokenizer = models.load_teacher(teacher_dir, task)
    sizes = resolve(teacher_model.config, space.config({})).sizes()  # the space's defaults, for the records
    # The teacher layers the space's layer maps can reach: only those are cached (a map drawn later that
    # needs another layer makes the TeacherService add it once).
    layers = sorted({t for values, _ in spaces.candidates(space)
                     for t in resolve(teacher_model.config, space.config(values)).layer_map})
    narrowed = any(resolve(teacher_model.config, space.config(values)).narrowed for values, _ in spaces.candidates(space))
    prep = prepare(task, teacher_dir, teacher_model, tokenizer, args, SHARED_FIELDS, layers, checks.validation_fraction(args),
                   widths=narrowed)
    selection = {"select_on": args.select_on, "validation_fraction": checks.validation_fraction(args),
                 "validation_rows": prep.validation_examples, "train_rows": prep.train_examples,
                 "data_seed": args.data_seed, "teacher_train_rows": finetune.trained_rows(teacher_dir, task),
                 "teacher_held_out": finetune.held_out(teacher_dir, task)}
    for caution in selection_cautions(selection, task):  # said now, and in summary.md
        print(caution.console, flush=True)
    if not args.resume:
        keep(exp_dir, args, {"task": task.name, "metric": metric, "mode": mode, "teacher_dir": teacher_dir, "sizes": sizes,
                             "teacher_info": prep.teacher_info, "max_epochs": args.max_epochs, "command": command,
                             "selection": selection, "shapes": shapes and shapes.to_dict()})
        cli.finished(exp_dir)  # an experiment now: --resume continues it
    errors.at("trials", f"what finished is kept; continue with: {cli.continue_command('search', argv, exp_dir.name)}")
    experiment = Experiment(prep, space.fixed, scaling, args.max_epochs, str(trials_dir(exp_dir)), args.max_failures,
                            {"metric": metric, "mode": mode}, teacher_model.config,
                            shapes and {n: shapes.trial_cost(n) for n in shapes.offered})
    started = time.perf_counter()
    with errors.sigint_restored():
        grid = build_tuner(args, space, experiment, exp_dir, shapes).fit()
    searched = tuner.ended(exp_dir, args.num_samples)
    confirming = bool(args.confirm_top and args.confirm_seeds) and searched
    if searched and not confirming:  # the student that ships is exported now
        errors.at("export")
    # An interrupted search's best so far is interim too: the serving formats wait for --resume.
    summary = results.write(exp_dir, time.perf_counter() - started, *exports(args, interim=confirming or not searched))
    if len(grid) and grid.num_errors == len(grid):
        first = str(grid.errors[0]).strip().splitlines()
        raise RaykdError(f"all {len(grid)} trials failed; the first with: {first[-1] if first else 'no message'}; "
                         f"see {exp_dir / 'ray-workers.log'} and {exp_dir / 'trials.csv'}")
    # Interrupted (Ctrl-C): the records say so, and the serving formats wait for the student that ships.
    unfinished = None if searched else "the search is unfinished" + (
        ", and the confirmation starts once it is" if args.confirm_top and args.confirm_seeds else "")
    if confirming:
        errors.at("confirmation")
        confirmed = run_confirmation(args, experiment, exp_dir, grid, task, shapes)
        if confirmed is not None and not confirmed["finished"]:
            unfinished = "the confirmation is unfinished"
        if not unfinished:  # an interrupted confirmation writes its interim records as part of its own phase
            errors.at("export")
        summary = results.write(exp_dir, time.perf_counter() - started, *exports(args, interim=bool(unfinished)))
    if shapes:
        front.write_search(exp_dir, shapes, task, args, interim=bool(unfinished),
                           best_trial=(summary["search_best"] or {}).get("trial"))
    stats = ray.get(prep.service.stats.remote())
    print(f"teacher forward passes in this search: {stats['forward_seconds']:.1f} s; outputs cached in {stats['cache_dir']}")
    if summary["best_value"] is None:
        print(f"no trial has ended a classification epoch; results so far in {exp_dir}")
    else:
        search_best, dev = summary["search_best"], f"dev_{task.main_metric}"
        also = f", {dev} {search_best[dev]:.4f}" if metric != dev and search_best.get(dev) is not None else ""
        print(f"best {metric} {search_best[metric]:.4f}{also} (trial {search_best['trial']}); results in {exp_dir}")
        chosen = (summary.get("confirmation") or {}).get("chosen")
        if chosen:
            print(f"confirmed: configuration #{chosen['candidate']} (mean {chosen['mean']:.4f} over its seeds); exported its "
                  f"seed {chosen['seed']} to {exp_dir / 'best'}; mean +- std per configuration in {exp_dir / 'summary.md'}")
            margin = summary["confirmation"].get("lead")
            if margin and margin["separated"] is False:
                print(f"caution: it leads #{margin['runner_up']} by {margin['lead']:.4f}, under the larger seed-to-seed std "
                      f"({margin['std']:.4f}): no difference the seeds can show")
        if summary.get("one_class"):
            print(f"caution: {summary['one_class']}")
    if unfinished:  # last, after what it has so far; a non-zero exit, so a wrapping script does not take it for done
        raise Interrupted(errors.interrupted_message(unfinished))
    return summary


if __name__ == "__main__":
    main()
