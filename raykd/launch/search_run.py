"""The search's driver (as `train_func` -> TorchTrainer in Ray's train_tune_interop example, one level up):
check everything, start the cluster, find or fine-tune the teacher, prepare the data and the TeacherService,
run Tune (Optuna + ASHA), confirm the top configurations over seeds, export the student that ships.
`raykd.search` parses the flags, calls `run` and prints its outcome.

ASHA measures a trial's progress in classification epochs (`cls_epoch`), not in epochs: PID and SID
spend their first stages on internal losses with an untrained classifier, report cls_epoch = 0 there,
and so never meet a rung (and are never stopped) before their classification stage.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import NamedTuple

import ray

from raykd import errors, models
from raykd.artifacts import deploy, front, results
from raykd.data import load_task_data
from raykd.errors import RaykdError
from raykd.launch import checks, cli, cluster
from raykd.launch.prepare import SHARED_FIELDS, prepare
from raykd.method.config import DistillConfig
from raykd.method.plan import resolve
from raykd.selection import selection_cautions
from raykd.student import offer
from raykd.tasks import Task, get_task
from raykd.training import finetune
from raykd.training.driver import Scaling
from raykd.tuning import confirm, spaces, tuner
from raykd.tuning.console import SearchConsole
from raykd.tuning.settings import EXPERIMENT, experiment_info, keep, resume_settings
from raykd.tuning.spaces import SearchSpace, load_space
from raykd.tuning.trial import Experiment, run_trial
from raykd.tuning.trials import trials_dir


class Outcome(NamedTuple):
    """What a search ended with: results.write's summary, the experiment folder, the selection metric, the
    task, why it is unfinished (None when done) and the TeacherService's stats."""
    summary: dict
    exp_dir: Path
    metric: str
    task: Task
    unfinished: str | None
    teacher_stats: dict


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


def teacher_scaling(scaling: Scaling, max_concurrent: int | None, local: bool) -> Scaling:
    """The fine-tuning run of a search's teacher, on the CPUs the trials will use at once (tuner.concurrency): on
    the local cluster (`local`) one worker with all of them as threads, which trains in the search's own process
    (raykd.training.driver.fit_and_export: no Ray Train start-up; on 2 cores a distillation epoch took 0.80x
    that of 2 DDP workers, results/bench-peer.md); on a cluster given by --address one Ray Train DDP worker for each worker the trials
    run at once, which may span nodes. On GPUs the trials' own scaling (workers sharing a GPU cannot run nccl).
    Needs a connected Ray cluster."""
    if scaling.gpus_per_worker:
        return scaling
    at_once = scaling.workers * tuner.concurrency(scaling, max_concurrent)
    if local:
        return dataclasses.replace(scaling, workers=1, cpus_per_worker=at_once * scaling.cpus_per_worker)
    return dataclasses.replace(scaling, workers=at_once)


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
                                       replace=True, local=not args.address)
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
        grid = confirm.build_tuner(tuner.trainable(run_trial, runner.scaling, experiment=runner), exp_dir, candidates,
                                   tuner.concurrency(experiment.scaling, args.max_concurrent_trials), console(runner),
                                   runner.scaling, runner.max_failures).fit()
    summary = confirm.summarize(grid, experiment.selection["metric"], f"dev_{task.main_metric}",
                                finished=confirm.ended(exp_dir, grid))
    confirm.write(exp_dir, summary)
    return summary


def build_tuner(args, space: SearchSpace, experiment: Experiment, exp_dir: Path, shapes: offer.Offer | None):
    """The search's Tuner (raykd.tuning.tuner): Optuna over the space, ASHA on classification epochs, both on
    each epoch's `score` (experiment.selection's metric, a constant student last); with --objective pareto Optuna
    on (score, latency_ms) and ASHA inside latency bands (raykd.tuning.bands). Restored with --resume."""
    trainable = tuner.trainable(run_trial, experiment.scaling, experiment=experiment)
    if args.resume and tuner.started(exp_dir):  # else stopped before Tune saved anything: its trials start now
        return tuner.restore(trainable, exp_dir)
    metric, mode = tuner.SCORE, tuner.SCORE_MODE
    scheduler = tuner.asha(args.max_epochs, args.grace_period, args.reduction_factor)
    if args.objective == "pareto":
        metric, mode = [tuner.SCORE, "latency_ms"], [tuner.SCORE_MODE, "min"]
        scheduler = tuner.banded_asha(shapes.bands, args.max_epochs, args.grace_period, args.reduction_factor)
    searcher = tuner.optuna_searcher(space.space, metric, mode, args.seed, exp_dir, space.points_to_evaluate)
    return tuner.tuner(trainable, exp_dir, tuner.SCORE, tuner.SCORE_MODE, searcher, scheduler, args.num_samples,
                       tuner.concurrency(experiment.scaling, args.max_concurrent_trials), console(experiment),
                       experiment.scaling, experiment.max_failures)


def console(experiment: Experiment) -> SearchConsole:
    """The console of the search and of its confirmation (raykd.tuning.console): the selection metric, the
    classification-epoch budget, and the schedule of trials that do not search it."""
    return SearchConsole(experiment.selection["metric"], experiment.max_epochs,
                         experiment.fixed.get("algorithm", DistillConfig.algorithm))


def exports(args, interim: bool) -> tuple[tuple[str, ...], int]:
    """(formats, latency examples) for results.write. The serving formats (ONNX export, checks, latency:
    minutes) are made once, for the student that ships; an interim best/ (of an interrupted search, or before
    or during a confirmation, which replaces it) is the Hugging Face folder alone, without the latency table."""
    return (("hf",), 0) if interim else (args.export_formats, args.latency_examples)


def run(args, argv: list[str] | None) -> Outcome:
    """The whole search for parsed `args` (raykd.search.parser; `argv` as given, for the records and
    --resume). Raises RaykdError (exit 2) for bad input, before any compute; Interrupted is left to the
    caller, through Outcome.unfinished, so that it prints what it has first."""
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
        teacher_dir = default_teacher(args, task, teacher_scaling(scaling, args.max_concurrent_trials, not args.address),
                                      args.out, command)
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
    return Outcome(summary, exp_dir, metric, task, unfinished, ray.get(prep.service.stats.remote()))
