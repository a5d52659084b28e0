"""The GLUE task table: text fields, labels, metric and where each task's files are.

Like Hugging Face `run_glue.py`'s `task_to_keys`, the table is data. Label lists are in the order of
the Hub's `nyu-mll/glue` class ids, written as they appear in GLUE's TSV files, so a model trained
from either source predicts the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass

from raykd.errors import RaykdError


@dataclass(frozen=True)
class Task:
    """One GLUE task: its text fields on the Hub and in the TSV files, its labels in class-id order (None
    for regression), and the metrics raykd reports, the first the main one."""
    name: str
    hub_text_fields: tuple[str, ...]      # column names in nyu-mll/glue
    tsv_dir: str                          # folder name in a GLUE data directory
    tsv_text_columns: tuple[str | int, ...]  # header names, or indices where the file has no header
    tsv_label_column: str | int
    labels: tuple[str, ...] | None        # TSV label values in class-id order; None for regression
    metrics: tuple[str, ...]              # names computed by raykd.metrics; the first is the main one
    dev_split: str = "dev"                # TSV file stem / Hub split of the dev set
    hub_dev_split: str = "validation"
    has_header: bool = True
    label_names: tuple[str, ...] | None = None  # the Hub's class names, where they differ from `labels`

    @property
    def is_regression(self) -> bool:
        """True for a regression task (STS-B): one output, labels are scores."""
        return self.labels is None

    @property
    def num_labels(self) -> int:
        """Outputs of the classifier: 1 for regression, else the number of labels."""
        return 1 if self.labels is None else len(self.labels)

    @property
    def label_vocabularies(self) -> list[tuple[str, ...]]:
        """The names a teacher's id2label may use for the classes: the TSV values, the Hub's names."""
        return [names for names in (self.labels, self.label_names) if names]

    @property
    def main_metric(self) -> str:
        """The metric models are selected by: the first of `metrics`."""
        return self.metrics[0]


TASKS: dict[str, Task] = {t.name: t for t in [
    Task("cola", ("sentence",), "CoLA", (3,), 1, ("0", "1"), ("matthews",), has_header=False,
         label_names=("unacceptable", "acceptable")),
    Task("sst2", ("sentence",), "SST-2", ("sentence",), "label", ("0", "1"), ("accuracy",),
         label_names=("negative", "positive")),
    Task("mrpc", ("sentence1", "sentence2"), "MRPC", ("#1 String", "#2 String"), "Quality",
         ("0", "1"), ("f1", "accuracy"), label_names=("not_equivalent", "equivalent")),
    Task("qqp", ("question1", "question2"), "QQP", ("question1", "question2"), "is_duplicate",
         ("0", "1"), ("f1", "accuracy"), label_names=("not_duplicate", "duplicate")),
    Task("stsb", ("sentence1", "sentence2"), "STS-B", ("sentence1", "sentence2"), "score",
         None, ("pearson", "spearman")),
    Task("mnli", ("premise", "hypothesis"), "MNLI", ("sentence1", "sentence2"), "gold_label",
         ("entailment", "neutral", "contradiction"), ("accuracy",),
         dev_split="dev_matched", hub_dev_split="validation_matched"),
    Task("qnli", ("question", "sentence"), "QNLI", ("question", "sentence"), "label",
         ("entailment", "not_entailment"), ("accuracy",)),
    Task("rte", ("sentence1", "sentence2"), "RTE", ("sentence1", "sentence2"), "label",
         ("entailment", "not_entailment"), ("accuracy",)),
    Task("wnli", ("sentence1", "sentence2"), "WNLI", ("sentence1", "sentence2"), "label",
         ("0", "1"), ("accuracy",), label_names=("not_entailment", "entailment")),
]}

# Spellings users type for the same task.
_ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli"}


def get_task(name: str) -> Task:
    """The Task called `name` (case-insensitive; sst-2, sts-b and mnli-m accepted). Raises RaykdError for an
    unknown task."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in TASKS:
        raise RaykdError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[key]
