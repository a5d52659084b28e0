#!/usr/bin/env bash
# bf16 against fp32 on RTE (issue 13): soft-label KD and SID students of the same teacher, 3 seeds each.
# Resumable: a run whose result.json exists is skipped. Tabulate with: python -m raykd.report parity
set -euo pipefail
cd "$(dirname "$0")/../.."
G=${GLUE:-../shared/data/glue}
T=results/parity/teacher-rte
if [ ! -f "$T/teacher.json" ]; then
  rm -rf "$T"
  ./run teacher --task rte --data-dir "$G" --epochs 3 --learning-rate 1e-4 --precision bf16 --out "$T" --records results/parity
fi
for algorithm in kd sid; do
  for seed in 1 2 3; do
    for precision in fp32 bf16; do
      out=results/parity/rte-$algorithm-$precision-s$seed
      [ -f "$out/result.json" ] && continue
      rm -rf "$out"
      ./run distill --task rte --data-dir "$G" --teacher "$T" --algorithm "$algorithm" --epochs 2 \
        --learning-rate 1e-4 --precision "$precision" --seed "$seed" --out "$out"
    done
  done
done
