"""python -m raykd.report: the teacher, student and fp32/bf16 parity tables built from run records."""

import json

from raykd import report


def record(path, **values):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values))


def test_tables_are_built_from_the_records_and_parity_says_no_difference_within_the_std(tmp_path):
    teacher = tmp_path / "teachers" / "rte-minilm"
    record(teacher / "teacher.json", task="rte", base="minilm", dev_accuracy=0.6931, best_epoch=1,
           config={"epochs": 3}, history=[{"dev_accuracy": 0.6931}, {"dev_accuracy": 0.66}], train_examples=2241,
           seconds=600, command="python -m raykd.teacher --task rte")
    # A searched teacher of the paper table: its record is a copy under results/paper/teachers/.
    record(tmp_path / "paper" / "teachers" / "paper-rte-20261130.json", task="rte", base="minilm",
           dev_accuracy=0.5812, best_epoch=3, train_examples=2490, seconds=4200, command="python -m raykd.teacher --space x",
           config={"epochs": 3, "learning_rate": 4.42e-5, "warmup_ratio": 0.06, "batch_size": 32, "seed": 5288},
           search={"trials": 8, "space": "search_spaces/teacher.py", "selected_on": "dev_accuracy"})
    # A teacher that held out the students' validation split (results/heldout/paper/teachers/).
    record(tmp_path / "heldout" / "paper" / "teachers" / "paper-cola-heldout-20261202.json", task="cola", base="minilm",
           dev_matthews=0.27, val_matthews=0.4512, best_epoch=5, config={"epochs": 5}, train_examples=7695,
           validation_examples=856, selected_on="val_matthews", seconds=600, command="python -m raykd.teacher --task cola")
    record(tmp_path / "runs" / "rte-sid" / "result.json", task="rte", teacher=str(teacher), config={"algorithm": "sid"},
           best={"dev_accuracy": 0.5993, "epoch": 5}, history=[{}] * 5, student_layers=3, layer_map=[2, 4, 6],
           student_params_total=17390594, student_params_non_embedding=5472002, seconds=900,
           command="python -m raykd.distill --task rte --algorithm sid")
    # A teacher whose weights (and folder) are gone, as on a clone: its dev score comes from the record's copy.
    record(tmp_path / "teachers" / "mrpc-gone-20261201-042144.json", task="mrpc", base="minilm", dev_f1=0.8714,
           best_epoch=3, config={"epochs": 3}, train_examples=3668, seconds=684, command="python -m raykd.teacher")
    record(tmp_path / "runs" / "mrpc-sid" / "result.json", task="mrpc", teacher=str(tmp_path / "teachers" / "mrpc-gone"),
           config={"algorithm": "sid"}, best={"dev_f1": 0.8551, "epoch": 9}, history=[{}] * 9, student_layers=3,
           layer_map=[2, 4, 6], student_params_total=17390594, student_params_non_embedding=5472002, seconds=900,
           command="python -m raykd.distill --task mrpc --algorithm sid")
    for precision, scores in (("fp32", (0.55, 0.56, 0.54)), ("bf16", (0.54, 0.56, 0.55))):
        for seed, score in enumerate(scores, start=1):
            record(tmp_path / "parity" / f"rte-kd-{precision}-s{seed}" / "result.json", task="rte",
                   config={"algorithm": "kd", "precision": precision, "seed": seed},
                   best={"dev_accuracy": score}, history=[{"epoch_seconds": 50.0}])
    report.main(["--results", str(tmp_path)])
    report.main(["parity", "--results", str(tmp_path)])
    teachers = (tmp_path / "teachers.md").read_text()
    assert "| rte | minilm | accuracy 69.31 | 1 / 3 | 69.31 66.00 | one run: 3 epochs | 2241 | 10.0 |" in teachers
    assert ("| rte | minilm | accuracy 58.12 | 3 / 3 |  | searched (8 recipes of search_spaces/teacher.py, chosen on "
            "dev_accuracy): lr 4.4e-05, 3 epochs, warm-up 0.06, batch 32, seed 5288 | 2490 | 70.0 |") in teachers
    assert "| cola | minilm | matthews 27.00 | 5 / 5 |  | one run: 5 epochs | 7695 (+856 held out, chosen on them: matthews 45.12) |" in teachers
    students = (tmp_path / "students.md").read_text()
    assert "| rte | sid | accuracy 59.93 | 5 / 5 | 69.31 | 3 [2, 4, 6] | 17,390,594 (5,472,002) | 15.0 |" in students
    assert "| mrpc | sid | f1 85.51 | 9 / 9 | 87.14 |" in students
    parity = (tmp_path / "parity.md").read_text()
    assert "| rte | kd | fp32 | 1, 2, 3 | 55.00 56.00 54.00 | 55.00 +- 1.00 | 50 |" in parity
    assert "| rte | kd | 3 | 55.00 | 55.00 | +0.00 | no difference |" in parity


def test_a_trials_table_has_the_same_columns_whichever_trial_finished_first():
    import pandas as pd
    from raykd.tuning.trials import in_column_order
    stopped = {"trial": "a", "status": "TERMINATED", "temperature": 2.0, "stop_reason": "stopped by ASHA",
               "val_accuracy@1": 0.5, "dev_accuracy@1": 0.52, "epochs_run": 1, "best_score": 0.5}
    finished = {"trial": "b", "status": "TERMINATED", "temperature": 4.0, "stop_reason": "completed",
                "val_accuracy@1": 0.6, "dev_accuracy@1": 0.61, "epochs_run": 2, "best_score": 0.7,
                "val_accuracy@2": 0.7, "dev_accuracy@2": 0.66}
    tables = [in_column_order(pd.DataFrame(rows), "val_accuracy") for rows in ([stopped, finished], [finished, stopped])]
    assert list(tables[0].columns) == list(tables[1].columns) == [
        "trial", "status", "temperature", "stop_reason", "val_accuracy@1", "dev_accuracy@1", "val_accuracy@2",
        "dev_accuracy@2", "epochs_run", "best_score"]
