#!/usr/bin/env bash
# The README's main command on a CUDA GPU with a real teacher, through to the exported student: the search
# (Tune + Optuna + ASHA), the multi-seed confirmation and the serving export (ONNX, int8, latency), with
# trials sharing the one GPU (--gpus-per-worker 0.25: 4 trials at once, since Ray Train's start-up, not the
# GPU, is most of a trial there; results/gpu.md). The second of two calls on one warm device machine:
#   1. carry .whl: install it into /tmp/site (the first lines of scripts/gpu_check_offline.sh);
#   2. carry .gpu: this script. The teacher is RTE's held-out teacher (/root/.cache/raykd/teachers/
#      rte-heldout-128-minilm, dev 56.68), stored in fp16 in .gpu/teacher-fp16 because Ray's wheels and its
#      fp32 weights together are over the 64 MiB one call may carry; it is cast back to fp32 here, as trained.
# SAMPLES (default 8) and CONFIRM_TOP (default 2) size the search. Writes log.txt and its records into $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-ship}; mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
[ -d /tmp/site/ray ] || { echo "no /tmp/site/ray: run the install call first, on the same warm machine"; exit 3; }
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 RAYKD_CACHE=/tmp/raykd-cache PYTHONUNBUFFERED=1
nvidia-smi -L
${PY:-python3} -c "import torch, onnx, onnxruntime; print('torch', torch.__version__, 'onnx', onnx.__version__, 'onnxruntime', onnxruntime.__version__)"
${PY:-python3} - <<'PY' || exit 1
import shutil
from safetensors.torch import load_file, save_file
shutil.copytree(".gpu/teacher-fp16", "/tmp/teacher", dirs_exist_ok=True)
weights = load_file(".gpu/teacher-fp16/model.safetensors")
save_file({k: v.float() for k, v in weights.items()}, "/tmp/teacher/model.safetensors", metadata={"format": "pt"})
PY
echo "== search ($SECONDS s)"
timeout ${SEARCH_TIMEOUT:-420} ${PY:-python3} -m raykd.search --task rte --space search_spaces/internal.py --data-dir .gpu/glue \
  --teacher /tmp/teacher --workers-per-trial 1 --gpus-per-worker 0.25 --num-samples ${SAMPLES:-8} \
  --confirm-top ${CONFIRM_TOP:-2} --confirm-seeds 2 --out /tmp/results --name gpu-ship
echo "== search exited $? ($SECONDS s)"
exp=/tmp/results/rte/gpu-ship
for f in summary.md trials.csv confirm.json confirm.csv experiment.json ray-workers.log; do cp $exp/$f "$OUT/" 2>/dev/null; done
mkdir -p "$OUT/best" && cp $exp/best/README.md $exp/best/deploy.json "$OUT/best/" 2>/dev/null
ls -la $exp/best
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
echo "== done ($SECONDS s)"
