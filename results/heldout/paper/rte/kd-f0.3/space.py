"""The paper's kd at its settings (Aguilar et al., AAAI 2020; search_spaces/paper.py), only the learning
rate tuned: each method of the paper table gets this same budget (python -m raykd.report paper)."""

from ray import tune

fixed = {"algorithm": "kd", "layer_map": "skip", "student_init": "mapped", "w_attention": 1.0, "w_hidden": 1.0,
         "w_soft": 1.0, "w_hard": 0.0, "temperature": 1.0}
space = {"learning_rate": tune.loguniform(2e-5, 2e-4)}
