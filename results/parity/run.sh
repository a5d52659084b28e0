#!/usr/bin/env bash
# bf16 against fp32 (issue 13): soft-label KD and SID students of the same teacher, RTE and MRPC, 3 seeds.
# Seeds are the outer loop, so a partial run holds every cell at equal depth. Resumable: a run whose
# result.json exists is skipped. Tabulate with: python -m raykd.report parity
set -euo pipefail
cd "$(dirname "$0")/../.."
G=${GLUE:-../shared/data/glue}
for task in rte mrpc; do
  T=results/parity/teacher-$task
  if [ ! -f "$T/teacher.json" ]; then
    rm -rf "$T"
    ./run teacher --task $task --data-dir "$G" --epochs 3 --learning-rate 1e-4 --precision bf16 --out "$T" --records results/parity
  fi
done
for seed in 1 2 3; do
  for task in rte mrpc; do
    for algorithm in kd sid; do
      for precision in fp32 bf16; do
        out=results/parity/$task-$algorithm-$precision-s$seed
        [ -f "$out/result.json" ] && continue
        rm -rf "$out"
        ./run distill --task $task --data-dir "$G" --teacher results/parity/teacher-$task --algorithm "$algorithm" \
          --epochs 2 --learning-rate 1e-4 --precision "$precision" --seed "$seed" --out "$out"
      done
    done
  done
done
