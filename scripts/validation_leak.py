"""Does a teacher's training set leak into the students' selection? CoLA Matthews of fine-tuned models (teacher,
exported students) on the validation split raykd.search holds out of the training set, on GLUE dev, and on
dev's in-domain (rows 1-527) and out-of-domain (528-1043) halves (../shared/data/glue/README.md).

    python scripts/validation_leak.py --data-dir ../shared/data/glue FOLDER [FOLDER ...]

The split is raykd.data.hold_out's (0.1 of the training rows, seed 42, stratified), as `raykd.search`'s
defaults draw it; texts are cut at 64 tokens as in the paper cells. Prints one line per folder.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import datasets
import torch
from sklearn.metrics import matthews_corrcoef
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from raykd.data import hold_out
from raykd.tasks import get_task


def read(path: Path) -> tuple[list[str], list[int]]:
    """CoLA's headerless TSV: (sentences, labels)."""
    rows = list(csv.reader(open(path), delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r[3] for r in rows], [int(r[1]) for r in rows]


def predict(folder: str, texts: list[str]) -> list[int]:
    """Class predictions of the model in `folder`, batches of 64, 64 tokens."""
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModelForSequenceClassification.from_pretrained(folder).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), 64):
            enc = tokenizer(texts[i:i + 64], truncation=True, max_length=64, padding=True, return_tensors="pt")
            out += model(**enc).logits.argmax(-1).tolist()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", type=Path, default=Path("../shared/data/glue"))
    p.add_argument("folders", nargs="+")
    args = p.parse_args()
    train_texts, train_labels = read(args.data_dir / "CoLA" / "train.tsv")
    dev_texts, dev_labels = read(args.data_dir / "CoLA" / "dev.tsv")
    _, validation = hold_out(get_task("cola"), datasets.Dataset.from_dict({"label": train_labels, "row": range(len(train_labels))}),
                             0.1, 42)
    rows = validation["row"]
    val_texts, val_labels = [train_texts[i] for i in rows], [train_labels[i] for i in rows]
    for folder in args.folders:
        val, dev = predict(folder, val_texts), predict(folder, dev_texts)
        mcc = lambda labels, preds: f"{100 * matthews_corrcoef(labels, preds):.2f}"
        print(f"{folder}: validation split ({len(rows)} rows) {mcc(val_labels, val)} | dev {mcc(dev_labels, dev)} | "
              f"dev in-domain {mcc(dev_labels[:527], dev[:527])} | out-of-domain {mcc(dev_labels[527:], dev[527:])}", flush=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
