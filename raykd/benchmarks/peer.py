"""The peer: one distillation epoch on RTE by TextBrewer 0.2.1's GeneralDistiller (Yang et al., ACL 2020
demo; the teacher at every step) and by raykd with its warm cache, on the same work, each a command of its own
as a user runs it, alternated round by round on otherwise idle cores (`peer` section).
`python -m raykd.benchmarks.peer` is TextBrewer's command; it prints its epoch's seconds as JSON."""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil
import ray
import torch

from raykd import models
from raykd.benchmarks.common import distill_flags, distill_run, task_data, teacher_for
from raykd.launch import cluster
from raykd.tasks import get_task
from raykd.training.batches import Collator

# raykd's runs: its defaults (precision auto: bf16 where the CPU has bf16 instructions), and fp32, so that the
# precision's share of the difference shows.
# label: (extra flags, the layout they give on the local cluster)
PEER_RUNS = {"raykd at its defaults": ([], "1 worker in the command's process x every CPU"),
             "raykd with --precision fp32": (["--precision", "fp32"], "1 worker in the command's process x every CPU"),
             "raykd with --workers 2 (the default before)": (["--workers", "2"], "2 Ray Train DDP workers x 1 CPU")}


def textbrewer_epoch(teacher_dir: str, train: dict, tokenizer, scratch: Path) -> float:
    """Seconds of one epoch of TextBrewer 0.2.1's GeneralDistiller (Yang et al., ACL 2020 demo) on RTE:
    the teacher runs at every step, one process with every torch thread, batch 32, fp32, attention MSE +
    PKD on [CLS] for the map 2,4,6 + soft labels, AdamW 1e-4 with linear warm-up. Raises ImportError when
    textbrewer is not installed (`pip install --no-deps textbrewer==0.2.1`: its pins predate our torch)."""
    import textbrewer
    from textbrewer import DistillationConfig, GeneralDistiller, TrainingConfig
    from transformers import get_linear_schedule_with_warmup

    task = get_task("rte")
    teacher, _ = models.load_teacher(teacher_dir, task)
    student = models.build_student(teacher, 3, (2, 4, 6), "mapped")
    collate = Collator(tokenizer, train, regression=False)

    def plain(indices):  # TextBrewer calls model(**batch): model inputs and labels only, as a plain dict
        """The Collator's batch without `index`: model inputs and labels only."""
        return {k: v for k, v in collate(indices).items() if k != "index"}

    loader = torch.utils.data.DataLoader(range(len(train["labels"])), batch_size=32, shuffle=True, collate_fn=plain,
                                         generator=torch.Generator().manual_seed(0))

    def adaptor(batch, outputs):
        """TextBrewer's adaptor: a batch's logits, attentions, hidden states and attention mask."""
        return {"logits": outputs.logits, "attention": outputs.attentions, "hidden": outputs.hidden_states,
                "inputs_mask": batch["attention_mask"]}

    matches = ([{"layer_T": t - 1, "layer_S": s, "feature": "attention", "loss": "attention_mse", "weight": 1}
                for s, t in enumerate((2, 4, 6))]
               + [{"layer_T": t, "layer_S": s + 1, "feature": "hidden", "loss": "pkd", "weight": 1}
                  for s, t in enumerate((2, 4, 6))])
    distiller = GeneralDistiller(
        TrainingConfig(device="cpu", output_dir=str(scratch / "textbrewer"), log_dir=None),
        DistillationConfig(temperature=1, kd_loss_type="ce", kd_loss_weight=1, hard_label_weight=0,
                           intermediate_matches=matches),
        teacher.eval(), student, adaptor, adaptor)
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-4, weight_decay=0.01)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(0.1 * len(loader)), len(loader))
    print(f"TextBrewer {textbrewer.__version__}: one epoch, {len(loader)} steps", flush=True)
    started = time.perf_counter()
    with distiller:
        distiller.train(optimizer, loader, num_epochs=1, scheduler=scheduler, max_grad_norm=1.0,
                        output_attentions=True, output_hidden_states=True)
    return time.perf_counter() - started


def textbrewer_command(args, teacher_dir: str, cache_dir: Path, scratch: Path) -> tuple[float, float]:
    """(seconds of its epoch, seconds of the whole command) of one TextBrewer run, a process of its own
    (`python -m raykd.benchmarks.peer`: imports, data, models, the epoch). Raises CalledProcessError when it fails."""
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "raykd.benchmarks.peer", "--data-dir", args.data_dir, "--teacher", teacher_dir,
                          "--max-seq-length", str(args.max_seq_length), "--cache-dir", str(cache_dir),
                          "--scratch", str(scratch)], check=True, stdout=subprocess.PIPE, text=True)
    whole = time.perf_counter() - started
    return json.loads(out.stdout.strip().splitlines()[-1])["epoch_seconds"], whole


def raykd_command(argv: list[str]) -> tuple[float, float, str]:
    """(seconds of its epoch, seconds of the whole command, the precision it trained in) of one
    `python -m raykd.distill` run on the local Ray cluster it starts itself. Raises CalledProcessError when it fails."""
    started = time.perf_counter()
    record = distill_run(argv, own_cluster=True)
    return record["history"][0]["epoch_seconds"], time.perf_counter() - started, record.get("precision_used") or "?"


def spread(values: list[float], digits: int = 1, unit: str = "") -> str:
    """"median [min, max]" of `values`, each followed by `unit`."""
    return (f"{statistics.median(values):.{digits}f}{unit} "
            f"[{min(values):.{digits}f}{unit}, {max(values):.{digits}f}{unit}]")


def peer(args, cache_dir: Path, scratch: Path) -> list[str]:
    """The `peer` section, markdown rows: TextBrewer's epoch and whole command against raykd's in each of
    PEER_RUNS (warm cache), --peer-rounds rounds of TextBrewer then each raykd run, each round's ratios to that
    round's TextBrewer run, the median and range of each. The benchmark's own Ray cluster is shut down for the
    section (each command starts its own, as a user's does) and connected again after it. Raises
    CalledProcessError when a run fails."""
    task = get_task("rte")
    teacher_dir, described = teacher_for(task, args.teachers, scratch)
    train = task_data(task, teacher_dir, args, cache_dir)["train"]  # tokenized once: every command reads this cache
    if importlib.util.find_spec("textbrewer") is None:
        return ["TextBrewer is not installed (`pip install --no-deps textbrewer==0.2.1`): no peer to compare."]
    common = [*distill_flags(args, teacher_dir, cache_dir, 1), "--algorithm", "all"]
    ray.shutdown()  # nothing else on the cores
    print("peer: a raykd run to build the teacher-output cache (not timed)", flush=True)
    distill_run([*common, "--out", str(scratch / "peer-warm-up")], own_cluster=True)
    times, busy, used = {"TextBrewer": [], **{label: [] for label in PEER_RUNS}}, [], {}
    for r in range(args.peer_rounds):
        busy.append(psutil.cpu_percent(interval=2.0))  # the cores' busy share just before the round
        times["TextBrewer"].append(textbrewer_command(args, teacher_dir, cache_dir, scratch))
        for i, (label, (extra, _)) in enumerate(PEER_RUNS.items()):
            busy.append(psutil.cpu_percent(interval=2.0))
            *pair, used[label] = raykd_command([*common, *extra, "--out", str(scratch / f"peer-{r}-{i}")])
            times[label].append(tuple(pair))
        print(f"peer: round {r + 1}/{args.peer_rounds}: " + "; ".join(
            f"{k} {v[-1][0]:.1f} s epoch, {v[-1][1]:.1f} s command" for k, v in times.items()), flush=True)
    cluster.connect()
    theirs = times["TextBrewer"]
    rows = ["| run | one epoch (s), median [min, max] | epoch ratio to TextBrewer, median [min, max] "
            "| whole command (s), median [min, max] | command ratio to TextBrewer, median [min, max] |",
            "|---|---|---|---|---|",
            f"| TextBrewer 0.2.1 GeneralDistiller, fp32, teacher at every step, 1 process x {torch.get_num_threads()} threads "
            f"| {spread([e for e, _ in theirs])} | 1.00x | {spread([w for _, w in theirs])} | 1.00x |"]
    for label, (_, layout) in PEER_RUNS.items():
        ours = times[label]
        rows.append(f"| {label} (trained in {used[label]}), {layout}, warm cache | {spread([e for e, _ in ours])} "
                    f"| {spread([o[0] / t[0] for o, t in zip(ours, theirs)], 2, 'x')} | {spread([w for _, w in ours])} "
                    f"| {spread([o[1] / t[1] for o, t in zip(ours, theirs)], 2, 'x')} |")
    return rows + ["", f"{args.peer_rounds} rounds, each TextBrewer then {', then '.join(PEER_RUNS)}; a ratio is a round's "
                   "raykd run over that round's TextBrewer run. Every run is a command of its own: TextBrewer's "
                   "(`python -m raykd.benchmarks.peer`) imports, tokenizes, builds its models and trains; raykd's "
                   "(`python -m raykd.distill --epochs 1`) also starts its local Ray cluster, evaluates on dev and "
                   f"exports. The cores' busy share in the 2 s before each run: at most {max(busy):.0f}% "
                   f"(median {statistics.median(busy):.0f}%). RTE train set ({len(train['labels'])} examples, max "
                   f"{args.max_seq_length} tokens), teacher {described}, 3-layer student from its layers 2, 4, 6, global "
                   "batch 32, one epoch, the same losses in kind: attention maps of layers 2, 4, 6 (TextBrewer: MSE; "
                   "raykd: KL), [CLS] (TextBrewer: PKD; raykd: cosine), soft labels. raykd's teacher outputs come from "
                   "its cache, built by a run before the first round."]


def main(argv=None):
    """TextBrewer's command of the peer section: one epoch (textbrewer_epoch) on RTE's train set; prints
    {"epoch_seconds": s} as the last line."""
    p = argparse.ArgumentParser(prog="python -m raykd.benchmarks.peer", description=main.__doc__)
    p.add_argument("--data-dir", required=True, help="folder of GLUE TSVs")
    p.add_argument("--teacher", required=True, help="the teacher's folder")
    p.add_argument("--max-seq-length", type=int, default=128, help="tokens per example (default: 128)")
    p.add_argument("--cache-dir", type=Path, required=True, help="the tokenized data's cache")
    p.add_argument("--scratch", type=Path, required=True, help="TextBrewer's output folder")
    args = p.parse_args(argv)
    task = get_task("rte")
    _, tokenizer = models.load_teacher(args.teacher, task)
    train = task_data(task, args.teacher, args, args.cache_dir)["train"]
    print(json.dumps({"epoch_seconds": textbrewer_epoch(args.teacher, train, tokenizer, args.scratch)}), flush=True)


if __name__ == "__main__":
    main()
