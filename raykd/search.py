"""`python -m raykd.search`: Ray Tune with Optuna (TPE) proposing distillation configurations (and student
shapes) and ASHA stopping weak ones; every trial is a Ray Train run of DDP workers against the one
TeacherService of the experiment. The search itself is raykd.launch.search_run; this module parses,
calls it and prints what it ended with.

    python -m raykd.search --task rte --space search_spaces/internal.py --data-dir ../shared/data/glue
"""

from __future__ import annotations

import argparse
from pathlib import Path

from raykd import errors, models
from raykd.artifacts import deploy
from raykd.errors import Interrupted, exits_cleanly
from raykd.launch import cli, search_run
from raykd.student import offer
from raykd.training import finetune, precision


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
    # One worker a trial, several trials at once: 3.2x the trials per hour of one 2-worker DDP trial at a time
    # on 2 cores (results/bench-throughput.md); the worker then runs in the trial's own process.
    cli.add_ray_arguments(p, workers_flag="--workers-per-trial", workers=1,
                          workers_help="workers per trial: 1 runs in the trial's own process, more are Ray Train DDP workers")
    return p


def parse_args(argv=None):
    """The command's flags, parsed (argparse exits 2 on an unknown one)."""
    return parser().parse_args(argv)


@exits_cleanly
def main(argv=None):
    """`python -m raykd.search`: Tune + Optuna + ASHA over a space of distillation configurations, the
    multi-seed confirmation of the top ones, and the chosen student exported to <out>/<task>/<name>/best.
    Returns the summary (raykd.artifacts.results.write). Raises RaykdError (exit 2) for bad input, before
    any compute; Interrupted (exit 130) after Ctrl-C, once the results so far and an interim best/ are written."""
    outcome = search_run.run(parse_args(argv), argv)
    stats, summary, exp_dir, metric, task = outcome.teacher_stats, outcome.summary, outcome.exp_dir, outcome.metric, outcome.task
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
    if outcome.unfinished:  # last, after what it has so far; a non-zero exit, so a wrapping script does not take it for done
        raise Interrupted(errors.interrupted_message(outcome.unfinished))
    return summary


if __name__ == "__main__":
    main()
