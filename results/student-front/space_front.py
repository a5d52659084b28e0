"""The evidence runs' space (results/student-front/README.md): 16 shapes of all-MiniLM-L6-v2 (depth 1, 2, 3, 6 x
hidden 192/384 x FFN 768/1536; L3-H384-F1536 is the paper's half-depth student, tried first so that the front is
compared with it over the same seeds) and a recipe of kd or the paper's `all` (every layer pair at once: one
stage, so a 6-layer student costs no more epochs than a 1-layer one on these 2 cores)."""

shape = {
    "student_layers": [1, 2, 3, 6],
    "student_hidden_size": [0.5, 1.0],
    "student_ffn_size": [0.5, 1.0],
}
points_to_evaluate = [{"student_shape": "L3-H384-F1536", "algorithm": "all"}]


def space(trial):
    algorithm = trial.suggest_categorical("algorithm", ["kd", "all"])
    if algorithm == "all":
        trial.suggest_float("w_attention", 0.1, 10.0, log=True)
        trial.suggest_float("w_hidden", 0.1, 10.0, log=True)
        trial.suggest_categorical("layer_map", ["uniform", "last"])
    trial.suggest_float("temperature", 1.0, 8.0, log=True)
    trial.suggest_float("learning_rate", 5e-5, 3e-4, log=True)
