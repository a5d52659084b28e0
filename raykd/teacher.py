"""The teacher command: fine-tuning one, or searching its recipe (`python -m raykd.teacher`).

    python -m raykd.teacher --task rte --data-dir ../shared/data/glue [--out DIR]
    python -m raykd.teacher --task rte --data-dir ../shared/data/glue --space search_spaces/teacher.py [--name N [--resume]]

Without --out the teacher goes to the cache (raykd.training.finetune), where a search without --teacher finds it.
With --space the recipe is searched (raykd.tuning.teacher_search); the best teacher goes to --out, or to
<cache-dir>/teachers/<task>-<base>-<search name>, and the search's records to <records>/<task>/<search name>.
A search stopped by Ctrl-C continues with the same command and --resume (Tune restores it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import ray

from raykd import errors, models
from raykd.data import load_task_data
from raykd.errors import RaykdError, exits_cleanly
from raykd.method.config import add_config_arguments, config_from_args
from raykd.launch import checks, cli, cluster
from raykd.tasks import get_task
from raykd.training import finetune
from raykd.tuning import teacher_search
from raykd.tuning.spaces import load_space


def parser() -> argparse.ArgumentParser:
    """The teacher command's argument parser: every option with its default (`--help`)."""
    p = argparse.ArgumentParser(prog="python -m raykd.teacher", description="Fine-tune a teacher on a task with Ray Train; keep its best epoch on the held-out validation split (on GLUE dev with --validation-fraction 0).")
    cli.add_data_arguments(p)
    p.add_argument("--teacher-base", default=models.OFFLINE_BASE,
                   help="pretrained model to fine-tune: minilm (all-MiniLM-L6-v2, offline, default), a Hugging Face id such as bert-base-uncased, "
                        "or a folder, such as another task's teacher (its encoder is kept, its classification head drawn again)")
    p.add_argument("--out", type=Path,
                   help="where to save the teacher (default: <cache-dir>/teachers/<task>-<base>-<recipe key>, "
                        "where a search without --teacher finds it)")
    p.add_argument("--records", type=Path, default=Path("results"),
                   help="a copy of the run's record goes to <records>/teachers/ (default: results)")
    p.add_argument("--validation-fraction", type=float, default=0.1,
                   help="share of the whole training set held out from fine-tuning (before --train-fraction), stratified by "
                        "label and seeded by --data-seed: the same rows a search holds out by default to select its students on, "
                        "so that no model has trained on them. The teacher's best epoch (and recipe) is chosen on them and "
                        "GLUE dev only reports it. 0 trains on the whole training set and chooses on dev (default: 0.1)")
    g = p.add_argument_group("recipe search (with --space)")
    g.add_argument("--space", help="search the recipe over this space file (search_spaces/teacher.py) with Tune, "
                                   "Optuna and ASHA instead of one run with the flags below (default: one run)")
    g.add_argument("--num-samples", type=int, default=8, help="recipes to try (default: 8)")
    g.add_argument("--max-epochs", type=int, default=8, help="ASHA's max_t in epochs; a recipe's epochs may not exceed it (default: 8)")
    g.add_argument("--grace-period", type=int, default=2, help="epochs before ASHA may stop a recipe (default: 2)")
    g.add_argument("--name", help="name of the search (default: teacher-<space name>-<time>)")
    g.add_argument("--search-seed", type=int, default=0, help="seed of Optuna's TPE sampler (default: 0)")
    g.add_argument("--resume", action="store_true",
                   help="continue the interrupted search <records>/<task>/<name> (needs --name): recipes that ended are "
                        "kept, unfinished ones continue from their last epoch, the flags it started with apply")
    cli.add_ray_arguments(p)
    add_config_arguments(p, finetune.DEFAULTS, only=finetune.FIELDS)
    return p


def parse_args(argv=None):
    """The teacher command's flags: data, base, --out, --records, the recipe search, Ray and the recipe."""
    return parser().parse_args(argv)


@exits_cleanly
def main(argv=None):
    """`python -m raykd.teacher`: fine-tune one teacher (or reuse the cached one of the same recipe), or search
    its recipe with --space; returns the teacher's record. Raises RaykdError for bad flags, space or data,
    or a run that fails."""
    args = parse_args(argv)
    task = get_task(args.task)
    if args.resume:  # the flags the search started with (its experiment.json), before anything is read with them
        if not (args.space and args.name):
            raise RaykdError("--resume continues a recipe search; give the --space and --name it started with")
        path = cli.claim(args.records / task.name / args.name)
        if (path / cli.UNFINISHED).is_file():
            raise RaykdError(f"the teacher search {path} was interrupted before it started, so there is nothing to "
                             "resume; run the same command without --resume (it replaces the folder)")
        teacher_search.resume_settings(path, args, sys.argv[1:] if argv is None else argv)
    checks.check_arguments(args)  # Ray, data and budget flags, as distill and search check them
    checks.check_validation_fraction(args.validation_fraction, True, "or 0 to train on the whole training set")
    cfg = config_from_args(args, algorithm="finetune")
    space = load_space(args.space) if args.space else None
    if space:
        teacher_search.check_arguments(args, space)
    if args.out:
        cli.check_output_dir(args.out)
    scaling = cli.scaling(args)
    models.check_base(args.teacher_base, args.max_seq_length)
    tokenizer = models.load_base_tokenizer(args.teacher_base)
    data = load_task_data(task, cli.data_source(args), tokenizer, args.max_seq_length, args.train_fraction,
                          args.data_seed, args.cache_dir, args.validation_fraction)
    command = cli.command_line("teacher", argv)
    if space:
        return _search(args, task, space, data, tokenizer, scaling, command)
    out = Path(args.out or finetune.recipe_dir(args.cache_dir, task, args.teacher_base, cfg, data, args.max_seq_length)).resolve()
    if args.out is None and finetune.is_usable(out):
        print(f"this recipe's teacher already exists: {finetune.describe(out, task)}; reusing it (delete the folder to redo it)")
        return json.loads((out / finetune.RECORD).read_text())
    cluster.connect(args.address, verbose=args.verbose)
    cluster.check_fits(scaling.workers, scaling.cpus_per_worker, scaling.gpus_per_worker, "the fine-tuning")
    cluster.log_workers_to(out.with_name(out.name + ".workers.log"), args.verbose)
    errors.at("teacher fine-tuning")  # the teacher is published only once it has finished (files.publish_dir)
    record = finetune.finetune_teacher(task, args.teacher_base, cfg, ray.put(data), finetune.split_record(data, args.train_fraction, args.validation_fraction, args.data_seed),
                                       scaling, out, tokenizer, command, args.max_failures, replace=args.out is None,
                                       local=not args.address)
    copy = finetune.copy_record(record, out, args.records)
    print(f"teacher saved to {out}: {finetune.scores(record, task)} (epoch {record['best_epoch']}); record copied to {copy}")
    return record


def _search(args, task, space, data, tokenizer, scaling, command) -> dict:
    name = args.name or f"teacher-{Path(args.space).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    # marked unfinished until its experiment.json is written: a rerun of the same name replaces it (cli.fresh_output_dir)
    exp_dir = (args.records / task.name / name).resolve() if args.resume else cli.fresh_output_dir(args.records / task.name / name)
    out = Path(args.out or Path(args.cache_dir) / "teachers" / f"{task.name}-{Path(args.teacher_base).name}-{name}").resolve()
    cli.check_output_dir(out)
    cluster.connect(args.address, verbose=args.verbose)
    cluster.check_fits(scaling.workers, scaling.cpus_per_worker, scaling.gpus_per_worker, "each teacher trial")
    exp_dir.mkdir(parents=True, exist_ok=True)  # made by fresh_output_dir, or the search --resume continues
    cluster.log_workers_to(exp_dir / "ray-workers.log", args.verbose)
    if not args.resume:
        teacher_search.keep_settings(exp_dir, task, args, command)
        cli.finished(exp_dir)  # a search now: --resume continues it
    space.fixed = {**{k: v for k, v in config_from_args(args, algorithm="finetune").to_dict().items()
                      if k in finetune.FIELDS and k not in space.space}, **space.fixed}  # flags fill what the space leaves
    record = teacher_search.search(task, args.teacher_base, space, ray.put(data), finetune.split_record(data, args.train_fraction, args.validation_fraction, args.data_seed), scaling,
                                   exp_dir, out, tokenizer, command, args.num_samples, args.max_epochs,
                                   args.grace_period, args.search_seed, args.max_failures, resume=args.resume)
    copy = finetune.copy_record(record, out, args.records)
    print(f"best teacher saved to {out}: {finetune.scores(record, task)} (epoch "
          f"{record['best_epoch']}, recipe {json.dumps({k: record['config'][k] for k in finetune.FIELDS})}); "
          f"search records in {exp_dir}; record copied to {copy}; distil from it with --teacher {out}")
    return record


if __name__ == "__main__":
    main()
