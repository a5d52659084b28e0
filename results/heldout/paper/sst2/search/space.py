"""The mission's space: which schedule, how much of each internal loss, which layers, how long.

Define-by-run (Optuna), so stage lengths and freezing are searched only where they mean something.
"""


def space(trial):
    algorithm = trial.suggest_categorical("algorithm", ["kd", "all", "pid", "sid"])
    if algorithm != "kd":
        trial.suggest_float("w_attention", 0.1, 10.0, log=True)
        trial.suggest_float("w_hidden", 0.1, 10.0, log=True)
        trial.suggest_categorical("layer_map", ["skip", "last", "uniform"])
    if algorithm in ("pid", "sid"):
        trial.suggest_int("stage_epochs", 1, 2)
    if algorithm == "pid":
        trial.suggest_categorical("freeze_lower", [False, True])
    trial.suggest_float("w_soft", 0.5, 2.0)
    trial.suggest_categorical("w_hard", [0.0, 0.1, 0.5])
    trial.suggest_float("temperature", 1.0, 8.0, log=True)
    trial.suggest_categorical("student_init", ["mapped", "bottom"])
    trial.suggest_float("learning_rate", 2e-5, 2e-4, log=True)
