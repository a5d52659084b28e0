"""The search: Ray Tune with Optuna (TPE) proposing configurations and ASHA stopping weak ones; every
trial is a Ray Train run of DDP workers against the one TeacherService of the experiment.

    python -m raykd.search --task rte --space search_spaces/internal.py --data-dir ../shared/data/glue

ASHA measures a trial's progress in classification epochs (`cls_epoch`), not in epochs: PID and SID
spend their first stages on internal losses with an untrained classifier, report cls_epoch = 0 there,
and so never meet a rung (and are never stopped) before their classification stage.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import ray
from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from raykd import cli, models, results, teacher
from raykd.algorithms import schedule, teacher_fields
from raykd.config import DistillConfig
from raykd.distill import Prepared, check_config, make_job, prepare
from raykd.errors import RaykdError, exits_cleanly
from raykd.spaces import SearchSpace, load_space
from raykd.tasks import get_task
from raykd.trainer import Scaling, fit

# Computed up front for the whole experiment; a trial that needs full hidden states adds them once.
SHARED_FIELDS = ("logits", "attentions", "cls")


@dataclass
class Experiment:
    """What every trial of a search needs; shipped once to the trials by tune.with_parameters."""
    prep: Prepared
    fixed: dict
    scaling: Scaling
    max_epochs: int
    trials_dir: str
    max_failures: int

    def config(self, trial_values: dict) -> DistillConfig:
        return DistillConfig.from_dict({"epochs": self.max_epochs, **self.fixed, **trial_values})


def run_trial(trial_values: dict, experiment: Experiment):
    """The Tune function trainable (Ray 2.60: Train inside Tune is a function that calls fit)."""
    cfg = experiment.config(trial_values)
    depth = models.student_depth(experiment.prep.teacher_info["layers"], cfg.student_layers)
    fields = teacher_fields(schedule(cfg, depth))
    job = make_job(experiment.prep, cfg, fields)
    # A deterministic name: a restored trial finds its own checkpoints again.
    name = f"trial-{tune.get_context().get_trial_id()}"
    result = fit(job, experiment.scaling, Path(experiment.trials_dir), name,
                 callbacks=[TuneReportCallback()], max_failures=experiment.max_failures)
    if result.error:
        raise result.error


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m raykd.search", description="Search distillation algorithms and hyperparameters with Ray Tune, Optuna and ASHA.")
    cli.add_data_arguments(p)
    p.add_argument("--space", required=True, help="search space file (search_spaces/internal.py, soft_label.py, paper.py)")
    p.add_argument("--teacher", help="fine-tuned teacher folder; without it results/teachers/<task>-<base> is used, fine-tuned first if missing")
    p.add_argument("--teacher-base", default=models.OFFLINE_BASE, help="base model when a teacher must be fine-tuned first (default: minilm)")
    p.add_argument("--num-samples", type=int, default=12, help="trials to run (default: 12)")
    p.add_argument("--max-epochs", type=int, default=3, help="classification epochs per trial, ASHA's max_t (default: 3)")
    p.add_argument("--grace-period", type=int, default=1, help="classification epochs before ASHA may stop a trial (default: 1)")
    p.add_argument("--reduction-factor", type=float, default=2, help="ASHA's reduction factor (default: 2)")
    p.add_argument("--max-concurrent-trials", type=int, default=0, help="trials at once; 0 = as many as the cluster's CPUs hold (default: 0)")
    p.add_argument("--name", help="experiment name (default: the space file's name and the time)")
    p.add_argument("--out", type=Path, default=Path("results"), help="results root; the experiment goes to <out>/<task>/<name> (default: results)")
    p.add_argument("--seed", type=int, default=0, help="seed of Optuna's TPE sampler (default: 0)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted experiment <out>/<task>/<name>")
    cli.add_teacher_cache_arguments(p)
    cli.add_ray_arguments(p, workers_flag="--workers-per-trial")
    return p.parse_args(argv)


def experiment_dir(args, task) -> Path:
    if args.resume:
        if not args.name:
            raise RaykdError("--resume needs the --name of the experiment to continue")
        path = (args.out / task.name / args.name).resolve()
        if not (path / "ray" / "tune").is_dir():
            raise RaykdError(f"no experiment to resume at {path}; check --out and --name, or drop --resume")
        return path
    name = args.name or f"{Path(args.space).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    return cli.check_output_dir(args.out / task.name / name)


def teacher_folder(args, task) -> str:
    if args.teacher:
        return str(Path(args.teacher).resolve())
    folder = teacher.default_out(task.name, args.teacher_base)
    if not (folder / teacher.TEACHER_METRICS).is_file():
        print(f"no teacher at {folder}: fine-tuning one first with raykd.teacher", flush=True)
        teacher.main(["--task", task.name, "--teacher-base", args.teacher_base, "--out", str(folder),
                      *(["--data-dir", args.data_dir] if args.data_dir else []),
                      *(["--address", args.address] if args.address else [])])
    return str(folder.resolve())


def concurrency(args, scaling: Scaling) -> int:
    if args.max_concurrent_trials:
        return args.max_concurrent_trials
    per_trial = scaling.workers * scaling.cpus_per_worker
    return max(1, int(ray.cluster_resources().get("CPU", 1) // per_trial))


def build_tuner(args, space: SearchSpace, experiment: Experiment, exp_dir: Path, metric: str, mode: str):
    trainable = tune.with_resources(tune.with_parameters(run_trial, experiment=experiment),
                                    {"cpu": 0, "memory": 256 * 2**20})  # the workers hold the CPUs
    if args.resume:
        return tune.Tuner.restore(str(exp_dir / "ray" / "tune"), trainable, resume_unfinished=True, resume_errored=True)
    searcher = OptunaSearch(space.space, metric=metric, mode=mode, seed=args.seed,
                            points_to_evaluate=space.points_to_evaluate or None, study_name=exp_dir.name,
                            storage=optuna.storages.RDBStorage(f"sqlite:///{exp_dir / 'optuna.db'}"))
    scheduler = ASHAScheduler(time_attr="cls_epoch", max_t=args.max_epochs, grace_period=args.grace_period,
                              reduction_factor=args.reduction_factor)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(metric=metric, mode=mode, search_alg=searcher, scheduler=scheduler,
                                    num_samples=args.num_samples,
                                    max_concurrent_trials=concurrency(args, experiment.scaling)),
        run_config=tune.RunConfig(name="tune", storage_path=str(exp_dir / "ray")))


@exits_cleanly
def main(argv=None):
    args = parse_args(argv)
    task = get_task(args.task)
    space = load_space(args.space)
    metric, mode = space.metric or f"dev_{task.main_metric}", space.mode
    if args.max_epochs < 1 or args.num_samples < 1 or not 1 <= args.grace_period <= args.max_epochs:
        raise RaykdError("--num-samples and --max-epochs must be >= 1 and --grace-period in 1..--max-epochs")
    exp_dir = experiment_dir(args, task)
    teacher_dir = teacher_folder(args, task)
    teacher_model, tokenizer = models.load_teacher(teacher_dir, task)
    sizes = check_config(teacher_model, space.config({}))
    scaling = cli.scaling(args)
    prep = prepare(task, teacher_dir, teacher_model, tokenizer, args)
    if not args.live_teacher:
        ray.get(prep.service.outputs.remote(prep.data_ref, list(SHARED_FIELDS)))
    exp_dir.mkdir(parents=True, exist_ok=True)
    command = "python -m raykd.search " + shlex.join(sys.argv[1:] if argv is None else argv)
    if not args.resume:
        results.atomic_write(exp_dir / results.EXPERIMENT, json.dumps(
            {"task": task.name, "metric": metric, "mode": mode, "teacher_dir": teacher_dir, "sizes": sizes,
             "teacher_info": prep.teacher_info, "max_epochs": args.max_epochs, "command": command}, indent=2))
    experiment = Experiment(prep, space.fixed, scaling, args.max_epochs, str(exp_dir / "ray" / "trials"), args.max_failures)
    started = time.perf_counter()
    build_tuner(args, space, experiment, exp_dir, metric, mode).fit()
    summary = results.write(exp_dir, time.perf_counter() - started)
    stats = ray.get(prep.service.stats.remote())
    print(f"teacher forward passes in this search: {stats['forward_seconds']:.1f} s; outputs cached in {stats['cache_dir']}")
    if summary["best_value"] is None:
        print(f"interrupted before any classification epoch; results so far in {exp_dir}; continue with --resume --name {exp_dir.name}")
    else:
        print(f"best {metric} {summary['best_value']:.4f} (trial {summary['best_trial']}); results in {exp_dir}")
    return summary


if __name__ == "__main__":
    main()
