"""The peer: one distillation epoch on RTE by TextBrewer 0.2.1's GeneralDistiller (Yang et al., ACL 2020
demo; the teacher at every step) and by raykd with its warm cache, on the same work, side by side in one run
(`peer` section)."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from raykd import models
from raykd.benchmarks.common import distill_flags, distill_run, task_data, teacher_for
from raykd.tasks import get_task
from raykd.training.batches import Collator

PEER_RUNS = {"raykd, fp32, shuffled, 2 workers x 1 CPU": ["--precision", "fp32", "--no-group-by-length"],
             "raykd, bf16, length-grouped, 2 workers x 1 CPU": ["--precision", "bf16"],
             "raykd, bf16, length-grouped, 1 worker x 2 CPUs": ["--precision", "bf16", "--workers", "1",
                                                               "--cpus-per-worker", "2"]}


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


def peer(args, cache_dir: Path, scratch: Path) -> list[str]:
    """The `peer` section, markdown rows: seconds of one distillation epoch on RTE by TextBrewer (when
    installed) and by raykd in each of PEER_RUNS (warm cache), side by side in this run; the ratio of each raykd
    epoch to TextBrewer's. Raises CalledProcessError when a raykd run fails."""
    task = get_task("rte")
    teacher_dir, described = teacher_for(task, args.teachers, scratch)
    _, tokenizer = models.load_teacher(teacher_dir, task)
    train = task_data(task, teacher_dir, args, cache_dir)["train"]
    rows = ["| run | seconds for one epoch | ratio to TextBrewer |", "|---|---|---|"]
    try:
        theirs = textbrewer_epoch(teacher_dir, train, tokenizer, scratch)
        rows.append(f"| TextBrewer 0.2.1 GeneralDistiller, fp32, teacher at every step, 1 process x {torch.get_num_threads()} threads "
                    f"| {theirs:.1f} | 1.00x |")
    except ImportError:
        theirs = None
        rows.append("| TextBrewer: not installed (`pip install --no-deps textbrewer==0.2.1`) | - | - |")
    print(rows[-1], flush=True)
    common = [*distill_flags(args, teacher_dir, cache_dir, 1), "--algorithm", "all"]
    for i, (label, extra) in enumerate(PEER_RUNS.items()):
        seconds = distill_run([*common, *extra, "--out", str(scratch / f"peer-{i}")])["history"][0]["epoch_seconds"]
        rows.append(f"| {label}, warm cache | {seconds:.1f} | {f'{seconds / theirs:.2f}x' if theirs else '-'} |")
        print(rows[-1], flush=True)
    rows += ["", f"RTE train set ({len(train['labels'])} examples, max {args.max_seq_length} tokens), teacher {described}, "
             "3-layer student from its layers 2, 4, 6, global batch 32, one epoch, the same losses in kind: attention "
             "maps of layers 2, 4, 6 (TextBrewer: MSE; raykd: KL), [CLS] (TextBrewer: PKD; raykd: cosine), soft labels. "
             "raykd's teacher outputs come from its cache, built before the timed epoch."]
    return rows
