#!/usr/bin/env bash
# The commands behind every table in results/, in the order they were run (2 CPU cores, no GPU).
# Run from the repository root with ../shared beside it. Tables: ./run report (python -m raykd.report); the paper
# table: python -m experiments.paper (an experiment driver beside raykd, run from the root).
# Teachers made before 2026-11-30 wrote results/teachers/<task>-minilm/teacher.json; those records now sit at
# results/teachers/<task>-minilm.json, and the folders (weights, not committed) are made again by --out.
set -euo pipefail
GLUE=../shared/data/glue
step="${1:-all}"

if [[ $step == all || $step == teacher-rte ]]; then
  ./run teacher --task rte --data-dir $GLUE --epochs 8 --learning-rate 1e-4 --warmup-ratio 0.1 --out results/teachers/rte-minilm
fi
if [[ $step == all || $step == students-rte ]]; then
  for algorithm in finetune kd sid; do
    ./run distill --task rte --data-dir $GLUE --teacher results/teachers/rte-minilm --algorithm $algorithm \
      --epochs 3 --stage-epochs 1 --learning-rate 1e-4 --out results/runs/rte-$algorithm
  done
fi
if [[ $step == all || $step == search-rte ]]; then
  ./run search --task rte --space search_spaces/internal.py --data-dir $GLUE --teacher results/teachers/rte-minilm \
    --num-samples 12 --max-epochs 2 --train-fraction 0.5 --seed 0 --name internal-12
fi
if [[ $step == all || $step == teachers ]]; then
  ./run teacher --task mrpc --data-dir $GLUE --epochs 2 --learning-rate 1e-4 --out results/teachers/mrpc-minilm
  ./run teacher --task stsb --data-dir $GLUE --epochs 2 --learning-rate 1e-4 --out results/teachers/stsb-minilm
  ./run teacher --task cola --data-dir $GLUE --epochs 2 --learning-rate 1e-4 --out results/teachers/cola-minilm
  ./run teacher --task sst2 --data-dir $GLUE --epochs 1 --learning-rate 1e-4 --train-fraction 0.1 --out results/teachers/sst2-minilm
fi
if [[ $step == all || $step == bench ]]; then
  # results/bench.md (move the old one away first: the bench never overwrites a report)
  ./run bench --data-dir $GLUE
fi

if [[ $step == all || $step == parity ]]; then
  # 2026-11-30: bf16 against fp32 students, RTE and MRPC (results/parity.md; resumable; RTE kd 3 seeds, RTE sid and MRPC kd 1 seed)
  bash results/parity/run.sh
  ./run report parity
fi
if [[ $step == all || $step == cache-size ]]; then
  # 2026-11-30: teacher-output cache size against data size (results/bench-cache-size.md; from shapes)
  ./run bench --data-dir $GLUE --sections cache-size --out results/bench-cache-size.md
fi
if [[ $step == all || $step == precision ]]; then
  # 2026-11-30: precision, length grouping and the TextBrewer peer (results/bench-precision.md; run at nice -10
  # with /proc/sys/kernel/sched_autogroup_enabled = 0 so other jobs' share stays small)
  .venv/bin/pip install --no-deps textbrewer==0.2.1
  ./run bench --data-dir $GLUE --sections precision,peer --out results/bench-precision.md
fi
if [[ $step == all || $step == paper ]]; then
  # the paper's table and the low-data study (results/paper/; resumable, cell by cell; not run yet)
  .venv/bin/python -m experiments.paper --data-dir $GLUE --tasks rte mrpc cola sst2 stsb --seeds 3 --fractions 0.1 0.3
fi
if [[ $step == all || $step == heldout ]]; then
  # 2026-12-02: the paper's table again with teachers that hold out the students' validation rows
  # (results/heldout/paper/; --validation-fraction 0.1 is raykd.teacher's default). Teacher weights go to the cache.
  T=~/.cache/raykd/teachers
  ./run teacher --task cola --data-dir $GLUE --max-seq-length 64 --teacher-base minilm --epochs 5 \
    --learning-rate 2.3494841869615953e-05 --warmup-ratio 0.0 --weight-decay 0.01 --batch-size 32 --seed 2444 \
    --precision auto --group-by-length --validation-fraction 0.1 --out $T/paper-cola-heldout --records results/heldout/paper
  .venv/bin/python -m experiments.paper --results results/heldout --data-dir $GLUE --tasks cola --methods finetune kd sid --seeds 3 \
    --teacher cola=$T/paper-cola-heldout
  # MRPC: the parity teacher's recipe (results/parity), its seed 42, without the 367 validation rows
  ./run teacher --task mrpc --data-dir $GLUE --max-seq-length 128 --teacher-base minilm --epochs 3 --learning-rate 1e-4 \
    --warmup-ratio 0.1 --weight-decay 0.01 --batch-size 32 --seed 42 --precision auto --group-by-length \
    --validation-fraction 0.1 --out $T/paper-mrpc-heldout --records results/heldout/paper
  .venv/bin/python -m experiments.paper --results results/heldout --data-dir $GLUE --tasks mrpc --methods kd sid finetune search all pid \
    --seeds 3 --teacher mrpc=$T/paper-mrpc-heldout
  .venv/bin/python -m experiments.paper --results results/heldout --data-dir $GLUE --tasks mrpc --methods kd sid search --fractions 0.1 0.3 \
    --seeds 3 --teacher mrpc=$T/paper-mrpc-heldout
  # SST-2: 3 epochs on 90% of the rows (the students' TASK_FLAGS then take 15% of each side)
  ./run teacher --task sst2 --data-dir $GLUE --max-seq-length 64 --teacher-base minilm --epochs 3 --learning-rate 5e-5 \
    --warmup-ratio 0.1 --weight-decay 0.01 --batch-size 32 --seed 42 --precision auto --group-by-length \
    --validation-fraction 0.1 --out $T/paper-sst2-heldout --records results/heldout/paper
  .venv/bin/python -m experiments.paper --results results/heldout --data-dir $GLUE --tasks sst2 --methods kd sid finetune all pid search \
    --seeds 3 --teacher sst2=$T/paper-sst2-heldout
  # STS-B: the MRPC teacher's recipe (3 epochs, lr 1e-4), 128 tokens, every row
  ./run teacher --task stsb --data-dir $GLUE --max-seq-length 128 --teacher-base minilm --epochs 3 --learning-rate 1e-4 \
    --warmup-ratio 0.1 --weight-decay 0.01 --batch-size 32 --seed 42 --precision auto --group-by-length \
    --validation-fraction 0.1 --out $T/paper-stsb-heldout --records results/heldout/paper
  .venv/bin/python -m experiments.paper --results results/heldout --data-dir $GLUE --tasks stsb --methods kd sid finetune pid all search \
    --seeds 3 --teacher stsb=$T/paper-stsb-heldout
fi
if [[ $step == all || $step == trial-speed ]]; then
  # 2026-12-07 (issue 50): where a trial's start-up goes, and trials per hour by layout (each written to a scratch
  # folder first, then copied to results/bench-startup.md and results/bench-throughput.md)
  ./run bench --data-dir $GLUE --sections startup --throughput-fraction 0.05 --out results/bench-startup.md
  ./run bench --data-dir $GLUE --sections throughput --out results/bench-throughput.md
  # 2026-12-08: the same at the main command's trial settings (all of RTE, up to 3 epochs), before (a) and now (c)
  ./run bench --data-dir $GLUE --sections throughput --throughput-fraction 1.0 --throughput-epochs 3 --throughput-layouts a,c \
    --out /tmp/bench-throughput-full.md
  # whether Ray 2.60 gives a new actor a warm process (results/bench-startup.md, last section)
  for mode in none hook hook-prestart; do RAY_AUTH_MODE=disabled .venv/bin/python scripts/actor_start.py $mode; done
fi
if [[ $step == all || $step == distill-speed ]]; then
  # 2026-12-08 (issue 50): distill at its default (one worker in the command's own process) against TextBrewer, and the
  # distillation epoch against its fine-tuning floor in that layout (scratch folders first, then copied here; the
  # peer needs `.venv/bin/pip install --no-deps textbrewer==0.2.1.post1`)
  ./run bench --data-dir $GLUE --sections peer --out results/bench-peer.md
  ./run bench --data-dir $GLUE --sections precision --out results/epoch-floor.md
fi
