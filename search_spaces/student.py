"""The student's shape and its recipe together: depth x hidden width x FFN width, then the distillation recipe.

`shape` lists each axis's values (ints are sizes, floats in (0, 1] shares of the teacher's); the search offers
their grid as one choice, `student_shape`, measured for latency before the first trial (raykd.student). Ask
for the most accurate student under a budget (--latency-budget-ms, --max-params) or for the whole
accuracy-latency front (--objective pareto). For all-MiniLM-L6-v2 (6 layers, hidden 384, FFN 1536, 12 heads)
the shares below are hidden 192/384 and FFN 384/768/1536.
"""

shape = {
    "student_layers": [1, 2, 3, 4, 6],
    "student_hidden_size": [0.5, 1.0],
    "student_ffn_size": [0.25, 0.5, 1.0],
}


def space(trial):
    # `uniform` maps any depth (the paper's `skip` needs the teacher's depth to be a multiple of the student's).
    algorithm = trial.suggest_categorical("algorithm", ["kd", "pid", "sid"])
    if algorithm != "kd":
        trial.suggest_float("w_attention", 0.1, 10.0, log=True)
        trial.suggest_float("w_hidden", 0.1, 10.0, log=True)
        trial.suggest_categorical("layer_map", ["uniform", "last"])
    trial.suggest_float("temperature", 1.0, 8.0, log=True)
    trial.suggest_float("learning_rate", 5e-5, 3e-4, log=True)
    return {"stage_epochs": 1}
