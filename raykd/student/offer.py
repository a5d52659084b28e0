"""Which student shapes a search offers, and what each costs: the search's `--objective`, `--latency-budget-ms`
and `--max-params`, resolved once before Ray starts.

    space's `shape` -> grid of shapes (raykd.student.shape) -> each measured on this machine (raykd.student.cost,
    cached) -> the shapes within the budget -> offered to Optuna as `student_shape`; with --objective pareto,
    latency bands for ASHA (raykd.tuning.bands)

The budget is applied to the shapes before any trial, so the search never proposes a student over it, and a
budget no shape meets ends the command with one line before any training.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from raykd.errors import RaykdError
from raykd.student import cost
from raykd.student.shape import grid, of_teacher, paper_student

OBJECTIVES = ("metric", "pareto")


def add_arguments(parser):
    """The search's student-shape flags."""
    g = parser.add_argument_group("student shape (a space file's `shape`; raykd.student)")
    g.add_argument("--objective", choices=OBJECTIVES, default="metric",
                   help="metric: the most accurate student (within the budget); pareto: the accuracy-latency front, "
                        "Optuna's multi-objective TPE on (score, latency) with ASHA inside latency bands (default: metric)")
    g.add_argument("--latency-budget-ms", type=float,
                   help="offer only student shapes whose batch-1 p50 latency on --latency-backend is at most this "
                        "(ms, measured here before the search); default: no budget")
    g.add_argument("--max-params", type=int, help="offer only student shapes with at most this many parameters (default: no limit)")
    g.add_argument("--latency-backend", choices=cost.BACKENDS, default="onnx",
                   help="the runtime the budget and the front use: onnx (ONNX Runtime, as best/ ships) or pytorch "
                        "(default: onnx)")
    g.add_argument("--serving-threads", type=int, default=0,
                   help="threads of the serving runtime when shapes are timed; 0 = every core usable here (default: 0)")
    g.add_argument("--latency-seq-length", type=int, default=0,
                   help="tokens per example when shapes are timed; 0 = the median length of the task's dev rows "
                        "(default: 0)")
    g.add_argument("--latency-bands", type=int, default=3,
                   help="with --objective pareto, latency bands inside which ASHA compares trials, so the fast end of "
                        "the front is not stopped by the slow one's accuracy (default: 3)")


def check_arguments(args, space):
    """The shape flags against each other and the space, before any compute. Raises RaykdError."""
    for flag, value in (("--latency-budget-ms", args.latency_budget_ms), ("--max-params", args.max_params)):
        if value is not None and value <= 0:
            raise RaykdError(f"{flag} {value:g} must be > 0; pass a budget such as 5, or leave it out")
    if args.serving_threads < 0 or args.latency_seq_length < 0:
        raise RaykdError("--serving-threads and --latency-seq-length must be >= 0 (0 picks the default); pass 0 or more")
    if args.latency_bands < 1:
        raise RaykdError(f"--latency-bands {args.latency_bands} must be at least 1; use 3 (the default)")
    asks = args.objective == "pareto" or args.latency_budget_ms is not None or args.max_params is not None
    if asks and not space.shape_axes:
        flag = "--objective pareto" if args.objective == "pareto" else (
            "--latency-budget-ms" if args.latency_budget_ms is not None else "--max-params")
        raise RaykdError(f"{flag} needs student shapes to choose from, and {space.path} has no `shape`; use "
                         "search_spaces/student.py or add shape = {'student_layers': [...], ...} to the space")


@dataclass
class Offer:
    """The shapes a search offers and what each costs: `costs` {name: raykd.student.cost record} of the whole grid
    and of the teacher's and the paper's student's shapes, `offered` the names within the budget, `bands` {name:
    latency band} (pareto), `backend`, `seq_length`, `threads`, the `teacher` and `paper` shape names."""
    costs: dict
    offered: list[str]
    bands: dict
    backend: str
    seq_length: int
    threads: int
    teacher: str
    paper: str

    def latency(self, name: str) -> float:
        """Batch-1 p50 (ms) of shape `name` on the backend."""
        return cost.latency_ms(self.costs[name], self.backend)

    def trial_cost(self, name: str) -> dict:
        """What every epoch of a trial of shape `name` reports beside its metrics: latency_ms, params, flops."""
        c = self.costs[name]
        return {"latency_ms": self.latency(name), "params": c["params"], "flops": c["flops"]}

    def to_dict(self) -> dict:
        """JSON-ready, for experiment.json."""
        return dict(vars(self))


def median_dev_length(task, source, tokenizer, max_seq_length: int) -> int:
    """The median token count of the task's dev rows (at most `max_seq_length`): the length batch-1 serving sees."""
    from raykd.data import load_split

    dev = load_split(task, "dev", source)
    fields = [list(dev[c]) for c in ("text_a", "text_b") if c in dev.column_names]
    encoded = tokenizer(*fields, truncation=True, max_length=max_seq_length)
    return int(statistics.median(len(ids) for ids in encoded["input_ids"]))


def resolve(args, space, teacher_config, seq_length: int, cache_dir, threads: int, progress=print) -> Offer:
    """The shapes to offer: the space's grid against the teacher, each measured (cached), filtered by the budget.
    Raises RaykdError when no shape meets the budget, naming the cheapest."""
    shapes = grid(space.shape_axes, teacher_config)
    teacher, paper = of_teacher(teacher_config), paper_student(teacher_config)
    costs = cost.measure(sorted({*shapes, teacher, paper}), teacher_config, seq_length, threads, cache_dir, progress)
    offer = Offer(costs, [], {}, args.latency_backend, seq_length, threads, teacher.name, paper.name)
    within = [s.name for s in shapes
              if (args.latency_budget_ms is None or offer.latency(s.name) <= args.latency_budget_ms)
              and (args.max_params is None or costs[s.name]["params"] <= args.max_params)]
    if not within:
        fastest = min(shapes, key=lambda s: offer.latency(s.name))
        smallest = min(shapes, key=lambda s: costs[s.name]["params"])
        raise RaykdError(
            f"no student shape of {space.path} meets the budget (--latency-budget-ms {args.latency_budget_ms}, "
            f"--max-params {args.max_params}): the fastest, {fastest.name}, takes {offer.latency(fastest.name):.2f} ms "
            f"({args.latency_backend}, batch 1, {seq_length} tokens, {threads} threads), the smallest, {smallest.name}, "
            f"has {costs[smallest.name]['params']:,} parameters; raise the budget or add smaller shapes to `shape`")
    offer.offered = within
    if args.objective == "pareto":
        from raykd.tuning.bands import latency_bands

        offer.bands = latency_bands({n: offer.latency(n) for n in within}, args.latency_bands)
    return offer


def table(offer: Offer) -> list[str]:
    """Console lines: every shape measured, its latency, throughput and parameters, offered or not."""
    lines = [f"student shapes ({offer.backend} latency, batch 1, {offer.seq_length} tokens, {offer.threads} threads):"]
    for name in sorted(offer.costs, key=offer.latency):
        c = offer.costs[name]
        role = "teacher" if name == offer.teacher else "offered" if name in offer.offered else "not offered"
        if name == offer.paper:
            role += ", the paper's half-depth student"
        lines.append(f"  {name:<16} {offer.latency(name):7.2f} ms  {c[offer.backend]['examples_per_s']:7.0f} ex/s at "
                     f"batch 32  {c['params'] / 1e6:6.1f} M params  ({role})")
    return lines




def for_search(args, task, space, teacher_config, teacher_dir: str | None) -> Offer | None:
    """The student shapes of a space with `shape`, measured here before Ray starts (cached) and within the budget,
    printed and offered to the space (raykd.tuning.spaces.offer_shapes); None for a space without `shape`. The
    sequence length is --latency-seq-length, else the median dev length under the teacher's (or the base's)
    tokenizer. Raises RaykdError when no shape meets the budget."""
    from raykd import models
    from raykd.artifacts.deploy import all_threads
    from raykd.launch import cli
    from raykd.tuning.spaces import offer_shapes

    if not space.shape_axes:
        return None
    seq_length = args.latency_seq_length
    if not seq_length:
        tokenizer = models.load_teacher(teacher_dir, task)[1] if teacher_dir else models.load_base_tokenizer(args.teacher_base)
        seq_length = median_dev_length(task, cli.data_source(args), tokenizer, args.max_seq_length)
    shapes = resolve(args, space, teacher_config, seq_length, args.cache_dir, args.serving_threads or all_threads())
    print("\n".join(table(shapes)), flush=True)
    offer_shapes(space, shapes.offered)
    return shapes
