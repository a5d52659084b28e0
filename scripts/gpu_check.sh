#!/usr/bin/env bash
# The GPU path end to end in a few minutes (issue 13), for a machine with one CUDA GPU:
#   bash scripts/gpu_check.sh [GLUE_DIR] [OUT_DIR]
# 1. distill RTE on 1 GPU worker (nccl/cuda device path) in bf16 and in fp32, one epoch each, with the
#    teacher-output cache; 2. the same with the cache over its disk budget (attention maps computed live
#    on the GPU); prints each run's seconds per epoch, examples/s and dev accuracy, and the GPU's name.
# The teacher is all-MiniLM-L6-v2 with a fresh head (no fine-tuning needed for timing).
set -euo pipefail
cd "$(dirname "$0")/.."
G=${1:-../shared/data/glue}
OUT=${2:-$(mktemp -d)}
export HF_HUB_OFFLINE=1 RAYKD_CACHE="$OUT/cache"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
.venv/bin/python - "$OUT/teacher" <<'PY'
import sys
import torch
from transformers import AutoTokenizer
from raykd import models
from raykd.tasks import get_task
torch.manual_seed(0)
model = models.load_base_for_finetuning(models.OFFLINE_BASE, get_task("rte"))
model.config.architectures = ["BertForSequenceClassification"]
model.save_pretrained(sys.argv[1])
AutoTokenizer.from_pretrained(models.resolve_base(models.OFFLINE_BASE)).save_pretrained(sys.argv[1])
PY
common=(--task rte --data-dir "$G" --teacher "$OUT/teacher" --algorithm all --epochs 1 --workers 1
        --gpus-per-worker 1 --cpus-per-worker 4 --learning-rate 1e-4)
for run in "bf16:--precision bf16" "fp32:--precision fp32" "bf16-live-maps:--precision bf16 --teacher-cache-disk 1MiB"; do
  name=${run%%:*}; flags=${run#*:}
  ./run distill "${common[@]}" $flags --out "$OUT/$name"
done
.venv/bin/python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("GPU:", (out / "gpu.txt").read_text().strip())
print("| run | seconds per epoch | examples/s | dev accuracy | seconds to first step |")
for name in ("bf16", "fp32", "bf16-live-maps"):
    h = json.loads((out / name / "result.json").read_text())["history"][0]
    print(f"| {name} | {h['epoch_seconds']:.1f} | {h['examples_per_second']:.0f} | {h['dev_accuracy']:.4f} | {h['seconds_to_first_step']:.1f} |")
PY
