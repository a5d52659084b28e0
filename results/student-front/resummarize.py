"""Rewrite a finished student search's pareto.csv, pareto.png and summary.md "Student shapes" section with the
current code (raykd.artifacts.front), without training or exporting anything:

    .venv/bin/python results/student-front/resummarize.py EXPERIMENT_DIR

Used once, for MRPC's front: the search ran before summaries marked a shape whose every seed predicts one class
(its metric is the majority class's) as not comparable, and had called it better than the paper's student.
"""
import json
import sys
from pathlib import Path

import pandas as pd

from raykd.artifacts import front
from raykd.tasks import get_task

exp = Path(sys.argv[1])
info = json.loads((exp / "experiment.json").read_text())
settings, summary = info["settings"], json.loads((exp / "summary.json").read_text())
frame = front.write(exp, pd.read_csv(exp / "trials.csv", dtype={"trial": str}), info["shapes"], get_task(info["task"]), None)
text = (exp / "summary.md").read_text()
start, end = text.index("## Student shapes"), text.index("Best trial of the search:")
(exp / "summary.md").write_text(text[:start] + text[end:])
front.append_summary(exp, front.summary_lines(frame, info["shapes"], settings.get("latency_budget_ms"),
                                              settings.get("max_params"), (summary.get("search_best") or {}).get("trial")))
