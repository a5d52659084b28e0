"""Ablation of the paper table's kd (search_spaces/fixed/kd.py): the same settings and learning-rate budget,
plus the gold labels at equal weight (w_hard 1.0; Hinton et al., 2015, train on soft and hard targets).
It asks whether kd falls under fine-tuning on STS-B because its only target is the teacher's output."""

from ray import tune

fixed = {"algorithm": "kd", "layer_map": "skip", "student_init": "mapped", "w_attention": 1.0, "w_hidden": 1.0,
         "w_soft": 1.0, "w_hard": 1.0, "temperature": 1.0}
space = {"learning_rate": tune.loguniform(2e-5, 2e-4)}
