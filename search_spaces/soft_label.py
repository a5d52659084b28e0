"""Soft-label KD only (Hinton et al., 2015): the baseline a user tries first."""

from ray import tune

fixed = {"algorithm": "kd"}

space = {
    "temperature": tune.loguniform(1.0, 8.0),
    "w_hard": tune.choice([0.0, 0.1, 0.5]),
    "learning_rate": tune.loguniform(2e-5, 2e-4),
}
