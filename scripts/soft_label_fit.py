"""How good are the soft labels a kd student learns from? The task's metric of a teacher's outputs on the
student's own training rows against their gold labels, next to the teacher on the held-out validation rows.

    python scripts/soft_label_fit.py --task stsb --data-dir ../shared/data/glue \
        --teacher ~/.cache/raykd/teachers/paper-stsb-heldout

kd at the paper's settings (w_hard 0) regresses onto the teacher's outputs alone: where they fit the gold labels
of the training rows no better than the teacher scores on unseen rows, the student learns the teacher's errors
as targets (results/heldout/paper/notes.md, STS-B). The rows are the ones `python -m experiments.paper` trains on
(experiments.paper.cells.TASK_FLAGS: max length and train fraction; validation 0.1, data seed 42, the search's
defaults). The training rows' outputs are read from the teacher-output cache when a run has built them
(raykd.teacher_outputs.disk_cache), else computed. Prints one line per metric.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/ sits beside raykd/, not installed
from experiments.paper.cells import TASK_FLAGS  # noqa: E402
from raykd.data import DEFAULT_CACHE, DataSource, load_task_data
from raykd.metrics import compute
from raykd.models import load_teacher
from raykd.tasks import get_task
from raykd.teacher_outputs.cache import compute_outputs
from raykd.teacher_outputs.disk_cache import DiskCache, cache_key


def teacher_logits(teacher, teacher_dir: Path, columns: dict, max_seq_length: int, cache_dir: Path) -> tuple[np.ndarray, str]:
    """The teacher's logits [N, C] on `columns` (tokenized rows) and where they came from."""
    entry = DiskCache(cache_dir, cache_key(teacher_dir, columns, max_seq_length))
    if not entry.missing(["logits"]):
        return np.asarray(entry.open(["logits"])["logits"]), f"cache {entry.key}"
    return compute_outputs(teacher, columns["input_ids"], columns.get("token_type_ids"), {"logits"})["logits"], "computed"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--teacher", type=Path, required=True, help="a folder raykd.teacher wrote")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    args = p.parse_args()
    task, flags = get_task(args.task), TASK_FLAGS[args.task]
    max_len = int(flags[flags.index("--max-seq-length") + 1])
    fraction = float(flags[flags.index("--train-fraction") + 1]) if "--train-fraction" in flags else 1.0
    teacher, tokenizer = load_teacher(args.teacher, task, max_len)
    data = load_task_data(task, DataSource(data_dir=args.data_dir), tokenizer, max_len, fraction, 42,
                          args.cache_dir, validation_fraction=0.1)
    for split in ("train", "validation"):
        logits, source = teacher_logits(teacher, args.teacher, data[split], max_len, args.cache_dir)
        scores = compute(task, logits, np.asarray(data[split]["labels"]), prefix=split)
        line = ", ".join(f"{k} {100 * v:.2f}" for k, v in scores.items() if not k.endswith("top_class_share"))
        print(f"{task.name} {args.teacher.name}: {len(logits)} {split} rows ({source}): {line}")


if __name__ == "__main__":
    main()
