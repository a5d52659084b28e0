#!/usr/bin/env bash
# raykd on a CUDA GPU, end to end, on a machine with no network and without this repo's venv (run there from
# the repo root after scripts/gpu_carry.sh prepared .whl/ and .gpu/ here). scripts/gpu_check.sh is the
# shorter check for a GPU machine that has the venv and the pretrained base (distill runs in bf16 and fp32);
# this one adds: a teacher fine-tuned on the GPU, a small search
# (the README's main command with GPU flags: Ray Tune + Optuna + ASHA, the teacher-output cache, the
# multi-seed confirmation and the export), and the bench's precision section (fp32 against bf16) on the GPU.
# The teacher base has all-MiniLM-L6-v2's shape and tokenizer but random weights (its weights do not fit
# what one call may carry): the times are the real model's, the accuracies are chance.
# Writes log.txt, bench-gpu.md and the search's records into $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check}; mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
stage() { echo "== $1 ($((SECONDS))s)"; }
stage "install"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
tar -xJf .whl/ray-*-py312.tar.xz -C /tmp/site || exit 1
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 RAYKD_CACHE=/tmp/raykd-cache PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch, transformers, ray, optuna, datasets, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, \
'cuda', torch.cuda.is_available(), 'bf16', torch.cuda.is_bf16_supported(), 'transformers', transformers.__version__, \
'ray', ray.__version__, 'optuna', optuna.__version__, 'datasets', datasets.__version__)" || exit 1
python3 - <<'PY' || exit 1
import torch
from transformers import AutoConfig, AutoTokenizer, BertModel
torch.manual_seed(0)
BertModel(AutoConfig.from_pretrained(".gpu/minilm")).save_pretrained("/tmp/base")
AutoTokenizer.from_pretrained(".gpu/minilm").save_pretrained("/tmp/base")
PY
GLUE=.gpu/glue
stage "1. teacher on the GPU"
timeout 150 python3 -m raykd.teacher --task rte --data-dir $GLUE --teacher-base /tmp/base --epochs 2 \
  --workers 1 --gpus-per-worker 1 --out /tmp/teachers/rte-minilm --records /tmp/records
cp /tmp/teachers/rte-minilm/metrics.json "$OUT/teacher-metrics.json" 2>/dev/null
stage "2. search on the GPU"
timeout 270 python3 -m raykd.search --task rte --space search_spaces/internal.py --data-dir $GLUE \
  --teacher /tmp/teachers/rte-minilm --workers-per-trial 1 --gpus-per-worker 1 --num-samples 4 --max-epochs 2 \
  --confirm-top 1 --confirm-seeds 2 --latency-examples 20 --out /tmp/results --name gpu
for f in summary.md trials.csv confirm.json experiment.json; do cp /tmp/results/rte/gpu/$f "$OUT/search-$f" 2>/dev/null; done
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
stage "3. bench, precision section, on the GPU"
timeout 200 python3 -m raykd.bench --data-dir $GLUE --sections precision --teachers /tmp/teachers --workers 1 \
  --gpus-per-worker 1 --epochs 2 --out "$OUT/bench-gpu.md"
stage "done"
