"""The teacher's fine-tuning recipe (python -m raykd.teacher --space search_spaces/teacher.py).

Ranges around what small BERTs are fine-tuned with on GLUE (MiniLM and TinyBERT use 1e-5 to 1e-4, 3 to
10 epochs, batch 16 or 32). The seed is searched too: on RTE-sized sets a restart moves dev accuracy by
several points, so restarts are part of the recipe. ASHA (grace 2 epochs) stops weak recipes early.
"""

from ray import tune

space = {
    "learning_rate": tune.loguniform(1e-5, 1.5e-4),
    "epochs": tune.choice([3, 5, 8]),
    "warmup_ratio": tune.choice([0.0, 0.06, 0.1]),
    "weight_decay": tune.choice([0.0, 0.01]),
    "batch_size": tune.choice([16, 32]),
    "seed": tune.randint(0, 10_000),
}
fixed = {"precision": "auto"}  # bf16 where the hardware has it: within noise of fp32 for students (results/parity.md), 1.7x faster here
