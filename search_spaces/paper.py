"""The paper's algorithms at the paper's defaults (Aguilar et al., AAAI 2020): attention KL and
[CLS] cosine with weight 1, soft labels at T = 1, student layer k <- teacher layer 2k, copied init.
Only the schedule varies; the first four trials are KD, all-layers, PID and SID, in that order."""

from ray import tune

fixed = {"layer_map": "skip", "student_init": "mapped", "w_attention": 1.0, "w_hidden": 1.0,
         "w_soft": 1.0, "w_hard": 0.0, "temperature": 1.0}

space = {"algorithm": tune.choice(["kd", "all", "pid", "sid"])}

points_to_evaluate = [{"algorithm": a} for a in ("kd", "all", "pid", "sid")]
