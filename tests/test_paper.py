"""The paper table's runner (python -m experiments.paper, outside the library): a real cell, a real search with its
confirmation in a subprocess that joins the session's local Ray cluster with --address (as cells do on
a user's cluster), a tiny real teacher, real RTE rows."""

import json
import shutil

import pytest

from experiments.paper import cells, numbers, plots, readme, runner, tables
from experiments.paper.__main__ import main
from raykd.errors import RaykdError


def test_a_cell_runs_once_and_fills_its_table_row(ray_cluster, tiny_teacher_dir, glue_dir, tmp_path, capsys, monkeypatch):
    # RTE's cell flags at test size (4% of the training set, 64 tokens; 1 worker a run, so that the
    # confirmation's two seeds run at once on 2 CPUs): the cell's commands carry them.
    monkeypatch.setitem(cells.TASK_FLAGS, "rte", ["--max-seq-length", "64", "--train-fraction", "0.04",
                                                  "--workers-per-trial", "1"])
    # A fine-tuned teacher given with --teacher (the tiny one, with the record raykd.teacher writes): not searched.
    teacher = tmp_path / "rte-teacher"
    shutil.copytree(tiny_teacher_dir, teacher)
    (teacher / "teacher.json").write_text(json.dumps({"task": "rte", "base": "tiny", "dev_accuracy": 0.6, "best_epoch": 1}))
    argv = ["--data-dir", str(glue_dir), "--tasks", "rte", "--methods", "kd", "--seeds", "2", "--trials", "1",
            "--max-epochs", "1", "--results", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"),
            "--teacher", f"rte={teacher}", "--address", ray_cluster.get_runtime_context().gcs_address]
    main(argv)
    root = tmp_path / "results" / "paper"
    confirmed = json.loads((root / "rte" / "kd" / "confirm.json").read_text())
    assert confirmed["finished"] and len(confirmed["runs"]) == 2
    runs = [json.loads(line) for line in (root / "cells.jsonl").read_text().splitlines()]
    assert [r["cell"] for r in runs] == ["rte/kd"] and runs[0]["done"] and "search_spaces/fixed/kd.py" in runs[0]["command"]
    assert "--train-fraction 0.04" in runs[0]["command"] and f"--address {argv[-1]}" in runs[0]["command"]
    dev = [r["dev_accuracy"] for r in confirmed["runs"]]
    table = (root / "README.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| rte"))
    assert f"{100 * sum(dev) / 2:.2f} +- " in row and row.count(" - |") >= 3  # kd filled, other methods not run
    assert "| 60.00 (n=1) |" in row  # the teacher's dev score from its record
    assert row.startswith("| rte (accuracy) | 52.71 |")  # always answering entailment: 146 of RTE's 277 dev rows
    one_class = json.loads((root / "rte" / "kd" / "summary.json").read_text())["one_class"]
    assert ("(one class)" in row) == (bool(one_class) or all(abs(d - 0.5271) < 1e-4 or abs(d - 0.4729) < 1e-4 for d in dev))
    fast, wide = numbers.speed_up(root / "rte" / "kd" / "best" / "deploy.json")  # timed by the cell's export
    assert row.endswith(f"| {fast:.1f}x / {wide:.1f}x |")
    assert f"--teacher {teacher}" in runs[0]["command"] and f"`--teacher rte={teacher}`" in table
    assert not (tmp_path / "cache" / "teachers").exists()  # no teacher was searched
    summary = (root / "rte" / "kd" / "summary.md").read_text()
    assert "Algorithm: `kd` in every trial (fixed by the space)." in summary and "Best per algorithm" not in summary
    capsys.readouterr()
    main(argv)  # done cells are never run again
    assert len((root / "cells.jsonl").read_text().splitlines()) == 1
    assert "2 of 2 cells done; remaining: none" in capsys.readouterr().out
    # A later run for another task (here only its plan) keeps the rte row, its given teacher and its cells.
    main(["--plan", "--data-dir", str(glue_dir), "--tasks", "mrpc", "--seeds", "2",
          "--results", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache")])
    again = (root / "README.md").read_text()
    assert row in again.splitlines() and any(line.startswith("| mrpc") for line in again.splitlines())
    assert f"`--teacher rte={teacher}`" in again and "--tasks rte mrpc --seeds 2" in again
    # A cell run again (its record appended once more): the earlier run is listed as superseded, the later one as done.
    with open(root / "cells.jsonl", "a") as log:
        log.write(json.dumps({**runs[0], "start": "2099-01-01T00:00:00"}) + "\n")
    main(["--plan", "--data-dir", str(glue_dir), "--tasks", "rte", "--seeds", "2",
          "--results", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache")])
    listed = [line for line in (root / "README.md").read_text().splitlines() if line.startswith("| rte/kd |")]
    assert [line.split(" | ")[1:3] for line in listed] == [[runs[0]["start"], "superseded"], ["2099-01-01T00:00:00", "True"]]


@pytest.mark.parametrize("flags, message", [(["--seeds", "1"], "needs at least 2 seeds"),
                                            (["--fractions", "0"], "each must be in (0, 1]"),
                                            (["--teacher", "rte"], "expected TASK=FOLDER"),
                                            (["--teacher", "qqp=x"], "expected TASK=FOLDER"),
                                            (["--teacher", "rte=."], "is not a finished teacher"),
                                            (["--teacher", "rte={teacher}"], "was fine-tuned on mrpc, not rte")])
def test_paper_refuses_bad_flags(tmp_path, tiny_teacher_dir, capsys, flags, message):
    teacher = tmp_path / "mrpc-teacher"
    shutil.copytree(tiny_teacher_dir, teacher)
    (teacher / "teacher.json").write_text(json.dumps({"task": "mrpc", "dev_f1": 0.8}))
    flags = [f.format(teacher=teacher) for f in flags]
    with pytest.raises(SystemExit) as exit_:
        main(["--plan", "--results", str(tmp_path), *flags])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and err.startswith("error: ") and message in err


def test_a_given_teacher_whose_folder_is_gone_is_accepted_when_its_record_has_a_recipe(tmp_path, capsys):
    """A new machine has the table's records but no teacher weights: --teacher TASK=FOLDER is accepted when the
    record copied beside the table holds the recipe to fine-tune it again (the runner does, before the task's
    first student cell); without such a record, or with one of another task, it is refused before any compute."""
    root, gone = tmp_path / "results" / "paper", tmp_path / "cache" / "paper-stsb-heldout"
    (root / "teachers").mkdir(parents=True)
    argv = ["--plan", "--results", str(tmp_path / "results"), "--tasks", "stsb", "--teacher", f"stsb={gone}"]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and "has no record of it to fine-tune it again from" in capsys.readouterr().err
    record = {"task": "stsb", "base": "minilm", "dev_pearson": 0.8253, "config": {"seed": 42}}
    (root / "teachers" / "paper-stsb-heldout-20261203-140107.json").write_text(json.dumps(record))
    assert cells.given_teachers([f"stsb={gone}"], ["stsb"], root) == {"stsb": str(gone)}
    (root / "teachers" / "paper-stsb-heldout-20261203-140107.json").write_text(json.dumps({**record, "task": "mrpc"}))
    with pytest.raises(RaykdError, match="was fine-tuned on mrpc, not stsb"):
        cells.given_teachers([f"stsb={gone}"], ["stsb"], root)


def test_the_one_class_floor_is_what_always_answering_one_class_scores_on_real_dev_rows(glue_dir):
    """MRPC's all-positive answer: 279 of 408 dev pairs are paraphrases, F1 = 2 * 279 / (279 + 408) = 81.22;
    CoLA's Matthews of any constant answer is 0. A cell whose every seed scores one of these is marked."""
    mrpc = numbers.one_class_scores("mrpc", str(glue_dir))
    assert mrpc[0] == 0.0 and mrpc[1] == pytest.approx(2 * 279 / (279 + 408))
    assert numbers.one_class_scores("cola", str(glue_dir)) == {0: 0.0, 1: 0.0} and numbers.one_class_scores("stsb", str(glue_dir)) == {}
    r = {"dev_mean": 0.8122, "dev_std": 0.0, "n": 3}
    assert tables._cell_text({**r, "one_class": True}) == "81.22 +- 0.00 (one class)" and tables._cell_text(r) == "81.22 +- 0.00"


def test_a_regression_task_has_no_one_class_floor_and_says_so(glue_dir, tmp_path):
    """STS-B's scores are similarities, not classes: its "one class" cell says why it is empty instead of
    showing the "-" of a cell not yet known."""
    s = cells.Settings(data_dir=str(glue_dir), root=tmp_path, teacher_cache=tmp_path)
    markdown, _ = tables.table(["stsb", "mrpc"], s)
    rows = [line for line in markdown.splitlines() if line.startswith(("| stsb", "| mrpc"))]
    assert rows[0].startswith("| stsb (pearson) | none (regression) |") and rows[1].startswith("| mrpc (f1) | 81.22 |")


def test_a_cell_whose_confirmation_lacks_runs_is_not_done(tmp_path):
    """A confirm.json that says finished with fewer runs than confirm_top x seeds (written by an interrupted
    confirmation before raykd.tuning.tuner.ended) leaves its cell to be run again."""
    s = cells.Settings(data_dir=".", root=tmp_path, teacher_cache=tmp_path, seeds=3)
    for method, planned in (("search", 9), ("kd", 3)):
        cell = cells.Cell("mrpc", method)
        cell.folder(s).mkdir(parents=True)
        for runs, done in ((3 if method == "search" else 2, False), (planned, True)):
            record = {"finished": True, "runs": [{"candidate": 1 + i // 3, "seed": 43 + i % 3} for i in range(runs)]}
            (cell.folder(s) / "confirm.json").write_text(json.dumps(record))
            assert cell.done(s) is done, (method, runs)


def test_cells_distilled_from_another_teacher_than_their_rows_are_marked():
    """A row's teacher fine-tuned again (weights are never committed) scores differently: the cells distilled
    from the earlier one say so, with its score, and share one footnote. The row's teacher is its own run
    (`teacher_value`), not its mean over seeds."""
    other = tables.OtherTeachers()
    row_teacher = {"dev_mean": 0.8650, "teacher_value": 0.8714}
    assert other.mark({"teacher_value": 0.8714, "teacher_dir": "/a/refit"}, row_teacher) == ""
    assert other.mark(None, row_teacher) == "" and other.mark({"teacher_value": None}, row_teacher) == ""
    earlier = {"teacher_value": 0.8606, "teacher_dir": "/b/results/parity/teacher-mrpc"}
    assert other.mark(earlier, row_teacher) == " [1]" == other.mark(dict(earlier), row_teacher)
    assert other.lines() == ["[1] distilled from the teacher in `teacher-mrpc` (dev 86.06), not the one in the teacher column"]


def test_an_unfinished_cell_without_its_ray_state_is_set_aside_and_run_again(tmp_path, monkeypatch):
    """A cell started on another machine (ray/ folders are never committed) cannot resume: its records are
    renamed, not deleted, and the cell's command does not ask to resume. The results root is relative, as
    `--results`' default is (Tune's restore check raised on a relative path)."""
    from pathlib import Path
    monkeypatch.chdir(tmp_path)
    s = cells.Settings(data_dir=".", root=Path("."), teacher_cache=tmp_path)
    cell, said = cells.Cell("mrpc", "sid", 0.1), []
    cell.folder(s).mkdir(parents=True)
    (cell.folder(s) / "experiment.json").write_text("{}")
    assert "--resume" not in cell.command(s)
    aside = runner.set_aside_if_unresumable(cell, s, said.append)
    assert aside.name.startswith("sid-f0.1-unfinished-") and (aside / "experiment.json").is_file()
    assert not cell.folder(s).exists() and "--resume" not in cell.command(s) and "cannot resume" in said[0]
    assert runner.set_aside_if_unresumable(cell, s, said.append) is None  # nothing started: nothing to set aside
    teacher = cells.Cell("cola", "teacher")  # a teacher search from elsewhere: its trials.csv was committed
    teacher.folder(s).mkdir(parents=True)
    (teacher.folder(s) / "trials.csv").write_text("trial\n")
    assert runner.set_aside_if_unresumable(teacher, s, said.append).name.startswith("teacher-unfinished-")


def test_a_cell_interrupted_here_resumes(ray_cluster, tmp_path):
    """A cell whose Tune state is on this machine (a real, tiny Tune run) is continued with --resume, student
    or teacher search alike, and never set aside."""
    from ray import tune
    s = cells.Settings(data_dir=".", root=tmp_path, teacher_cache=tmp_path)
    for cell in (cells.Cell("cola", "teacher"), cells.Cell("mrpc", "kd")):
        tune.Tuner(lambda config: tune.report({"score": 1.0}),
                   run_config=tune.RunConfig(name="tune", storage_path=str(cell.folder(s) / "ray"))).fit()
        assert cell.command(s)[-1] == "--resume" and runner.set_aside_if_unresumable(cell, s, print) is None


def test_speed_up_reads_one_thread_pytorch_rows_of_the_cells_latency_table(tmp_path):
    """The table's speed-up column: teacher / student p50 at batch 1 and student / teacher examples per
    second at batch 32, from the 1-thread PyTorch rows only; no column value without both models' rows."""
    def row(model, fmt, threads, p50, per_s):
        return {"model": model, "format": fmt, "threads": threads, "p50_ms": p50, "examples_per_s": per_s}
    deploy = tmp_path / "deploy.json"
    rows = [row("teacher", "PyTorch fp32", 1, 25.0, 40.0), row("teacher", "PyTorch fp32", 2, 5.0, 400.0),
            row("student", "ONNX int8", 1, 1.0, 900.0), row("student", "PyTorch fp32", 1, 12.5, 100.0)]
    deploy.write_text(json.dumps({"latency": {"rows": rows}}))
    assert numbers.speed_up(deploy) == (2.0, 2.5)
    deploy.write_text(json.dumps({"latency": {"rows": rows[:3]}}))
    assert numbers.speed_up(deploy) is None
    deploy.write_text(json.dumps({"formats": ["hf"]}))  # --latency-examples 0: no table
    assert numbers.speed_up(deploy) is None and numbers.speed_up(tmp_path / "absent.json") is None


CELL_THAT_SAVES_ON_CTRL_C = """
import os, pathlib, signal, sys, time
def stop(*_):
    time.sleep(1)  # saving its state, as Tune does on the first Ctrl-C
    pathlib.Path(sys.argv[1]).write_text("saved")
    sys.exit(2)
signal.signal(signal.SIGINT, stop)
# written whole, then renamed: the test reads it as soon as the name exists (a bare write_text let it read "")
pathlib.Path(sys.argv[1] + ".pid.part").write_text(str(os.getpid()))
os.replace(sys.argv[1] + ".pid.part", sys.argv[1] + ".pid")
time.sleep(120)
"""


def test_ctrl_c_waits_for_the_cell_to_save_its_state_then_records_it_and_says_so(tmp_path):
    """Ctrl-C in a terminal reaches the runner and its cell (one process group). The runner must wait for the
    cell to save its state (subprocess.call killed it at once, losing what --resume needs), record the run,
    and end with one error line. The cell here is a small process that saves for a second on SIGINT."""
    import os
    import signal
    import sys
    import threading
    import time

    from raykd.errors import Interrupted

    saved = tmp_path / "state"

    class SavesOnCtrlC(cells.Cell):
        def command(self, s):
            return [sys.executable, "-c", CELL_THAT_SAVES_ON_CTRL_C, str(saved)]

        def done(self, s):
            return False

    def ctrl_c():  # what a terminal does: SIGINT to every process of the group
        pid = saved.with_name("state.pid")
        deadline = time.time() + 60
        while not pid.is_file() and time.time() < deadline:
            time.sleep(0.05)
        os.kill(int(pid.read_text()), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)

    s = cells.Settings(data_dir=".", root=tmp_path, teacher_cache=tmp_path)
    # Python's own handler, as in `python -m experiments.paper`: earlier tests' Ray/Tune runs in this process
    # may have left theirs
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=ctrl_c, daemon=True).start()
        with pytest.raises(Interrupted, match=r"interrupted \(Ctrl-C\) in cell rte/teacher; run the same command again"):
            runner.run([SavesOnCtrlC("rte", "teacher")], s, print)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert saved.read_text() == "saved"  # the cell was not killed while it saved
    entry = json.loads((tmp_path / runner.LOG).read_text())
    assert entry["cell"] == "rte/teacher" and entry["exit"] == 2 and not entry["done"]


def test_a_teacher_whose_weights_are_gone_is_fine_tuned_again_from_its_record(tmp_path, monkeypatch):
    """A new machine has the teacher cell's records but not its weights (never committed): before the task's
    next student cell, the runner fine-tunes its recorded recipe again into the teacher folder and says
    how its dev score compares. A cell not done, or a teacher given without a recipe, is never refit."""
    import sys

    s = cells.Settings(data_dir="glue", root=tmp_path / "paper", teacher_cache=tmp_path / "teachers")
    config = {"epochs": 5, "learning_rate": 2.3e-05, "warmup_ratio": 0.0, "weight_decay": 0.01, "batch_size": 32,
              "seed": 2444, "precision": "auto", "group_by_length": False, "algorithm": "finetune"}
    (s.root / "teachers").mkdir(parents=True)
    (s.root / "teachers" / "paper-cola-20261201-212541.json").write_text(json.dumps(
        {"task": "cola", "base": "minilm", "dev_matthews": 0.29, "config": config}))
    assert cells.refit_command("cola", s) is None  # the teacher cell is not done
    (s.root / "cola" / "teacher").mkdir(parents=True)
    (s.root / "cola" / "teacher" / "summary.md").write_text("# Teacher search: cola\n")
    command = cells.refit_command("cola", s)
    assert command[1:] == ["-m", "raykd.teacher", "--task", "cola", "--data-dir", "glue", "--max-seq-length", "64",
                           "--teacher-base", "minilm", "--epochs", "5", "--learning-rate", "2.3e-05", "--warmup-ratio", "0.0",
                           "--weight-decay", "0.01", "--batch-size", "32", "--seed", "2444", "--precision", "auto",
                           "--no-group-by-length", "--validation-fraction", "0",  # the record predates the hold-out
                           "--out", str((s.teacher_cache / "paper-cola").resolve()), "--records", str(s.root)]
    held_out = {"task": "cola", "base": "minilm", "val_matthews": 0.3, "dev_matthews": 0.29, "config": config,
                "validation_fraction": 0.1}
    (s.root / "teachers" / "paper-cola-20261203-101010.json").write_text(json.dumps(held_out))
    assert cells.refit_command("cola", s)[-6:-4] == ["--validation-fraction", "0.1"]  # the same rows held out again
    # A teacher given with --teacher whose record (copied beside the table) holds its recipe goes back into the
    # given folder; one given without a record has nothing to refit from.
    given = cells.Settings(data_dir="glue", root=s.root, teacher_cache=s.teacher_cache,
                           teachers=(("cola", str(tmp_path / "paper-cola-heldout")),))
    assert cells.refit_command("cola", given) is None
    (s.root / "teachers" / "paper-cola-heldout-20261203-101010.json").write_text(json.dumps(held_out))
    assert cells.refit_command("cola", given)[-4:] == ["--out", str(tmp_path / "paper-cola-heldout"), "--records", str(s.root)]

    # The refit stands in for raykd.teacher (a process that writes the folder's record), the cell for raykd.search.
    folder = (s.teacher_cache / "paper-cola").resolve()
    writes_teacher = f"import json, pathlib; p = pathlib.Path({str(folder)!r}); p.mkdir(parents=True); " \
                     "(p / 'teacher.json').write_text(json.dumps({'dev_matthews': 0.29}))"
    monkeypatch.setattr(runner, "refit_command", lambda task, s: [sys.executable, "-c", writes_teacher])

    class Student(cells.Cell):
        def command(self, s):
            return [sys.executable, "-c", "pass"]

    said = []
    # the stand-in cell exits 0 without its confirmation: not done, and the runner returns it as such
    assert runner.run([Student("cola", "sid")], s, said.append) == ["cola/sid (exit 0)"]
    assert "cola teacher fine-tuned again from its record: dev_matthews 0.2900 (its record's: 0.2900)" in said
    runs = [json.loads(line)["cell"] for line in (s.root / runner.LOG).read_text().splitlines()]
    assert runs == ["cola/teacher-refit", "cola/sid"]

    # A refit that fails (here: writes nothing) is tried once per run, not before each of the task's cells.
    (folder / "teacher.json").unlink()
    monkeypatch.setattr(runner, "refit_command", lambda task, s: [sys.executable, "-c", "raise SystemExit(1)"])
    assert runner.run([Student("cola", "kd"), Student("cola", "pid")], s, said.append) == [
        "cola/kd (skipped: no teacher)", "cola/pid (skipped: no teacher)"]
    runs = [json.loads(line)["cell"] for line in (s.root / runner.LOG).read_text().splitlines()]
    assert runs[2:] == ["cola/teacher-refit"] and sum("skip cola/" in line for line in said) == 2


def test_the_table_command_exits_1_naming_the_cells_it_ran_that_did_not_finish(tiny_teacher_dir, tmp_path, capsys, monkeypatch):
    """A cell stopped on its own (Ctrl-C sent to the search alone: it saves its state and exits 130) or failed
    leaves the runner going on to the next cell; at the end the command still writes the table, then ends
    with one error line and exit 1, so a script that runs the table does not take it as finished."""
    import sys
    teacher = tmp_path / "rte-teacher"
    shutil.copytree(tiny_teacher_dir, teacher)
    (teacher / "teacher.json").write_text(json.dumps({"task": "rte", "base": "tiny", "dev_accuracy": 0.6, "best_epoch": 1}))
    monkeypatch.setattr(cells.Cell, "command", lambda self, s: [sys.executable, "-c", "raise SystemExit(130)"])
    argv = ["--data-dir", "glue", "--tasks", "rte", "--methods", "kd", "sid", "--seeds", "2",
            "--results", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--teacher", f"rte={teacher}"]
    with pytest.raises(SystemExit) as ended:
        main(argv)
    assert ended.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: 2 cell(s) of this run did not finish: rte/kd (exit 130), rte/sid (exit 130); ")
    runs = [json.loads(line) for line in (tmp_path / "results" / "paper" / runner.LOG).read_text().splitlines()]
    assert [(r["cell"], r["exit"], r["done"]) for r in runs] == [("rte/kd", 130, False), ("rte/sid", 130, False)]
    assert "Remaining: rte/finetune, rte/kd, rte/all, rte/pid, rte/sid, rte/search." in (tmp_path / "results" / "paper" / "README.md").read_text()
    main([*argv, "--plan"])  # the plan runs nothing, so nothing is unfinished by it: exit 0


def test_the_teachers_recipe_runs_with_more_seeds_last_and_the_teacher_column_shows_their_spread(tmp_path):
    """After the students, each task's teacher recipe runs again with its seed + 1 and + 2 (records only, no
    weights needed, so no refit first); the teacher column becomes mean +- std (n=3), while the students'
    footnotes and gap still refer to the teacher they distilled from (its own seed)."""
    import sys

    s = cells.Settings(data_dir="glue", root=tmp_path / "paper", teacher_cache=tmp_path / "teachers", seeds=3)
    config = {"epochs": 5, "learning_rate": 2.3e-05, "warmup_ratio": 0.0, "weight_decay": 0.01, "batch_size": 32,
              "seed": 2444, "precision": "auto", "group_by_length": True, "algorithm": "finetune"}
    (s.root / "teachers").mkdir(parents=True)
    (s.root / "teachers" / "paper-cola-20261201-212541.json").write_text(json.dumps(
        {"task": "cola", "base": "minilm", "dev_matthews": 0.29, "config": config}))
    (s.root / "cola" / "teacher").mkdir(parents=True)
    (s.root / "cola" / "teacher" / "summary.md").write_text("# Teacher search: cola\n")

    every = cells.cells(["cola"], [], ("kd",), seeds=3)
    assert [c.name for c in every] == ["teacher", "kd", "teacher-seed+1", "teacher-seed+2"]
    seed = every[2]
    out = (s.teacher_cache / "paper-cola.seed+1").resolve()
    command = seed.command(s)
    assert command[command.index("--seed") + 1] == "2445" and command[command.index("--out") + 1] == str(out)
    assert command[command.index("--records") + 1] == str(s.root) and "--group-by-length" in command
    assert cells.TeacherSeed("rte", 1).command(s) is None  # no rte teacher record: nothing to run yet
    assert seed.possible(s) and cells.TeacherSeed("rte", 1).possible(s)
    given = tmp_path / "given-rte"  # a teacher given with a record that has no recipe: never to run
    given.mkdir()
    (given / "teacher.json").write_text(json.dumps({"task": "rte", "dev_accuracy": 0.6}))
    assert not cells.TeacherSeed("rte", 1).possible(cells.Settings("glue", s.root, s.teacher_cache, teachers=(("rte", str(given)),)))
    said = []
    runner.run([cells.TeacherSeed("rte", 1)], s, said.append)
    assert "skip rte/teacher-seed+1: the rte teacher has no record with its recipe" in said[0]

    class WritesItsRecord(cells.TeacherSeed):  # stands in for raykd.teacher: the record copy it writes
        def command(self, s):
            copy = s.root / "teachers" / f"{self.out(s).name}-20261202-120000.json"
            value = {1: 0.2785, 2: 0.2650}[self.offset]
            return [sys.executable, "-c", f"import pathlib; pathlib.Path({str(copy)!r}).write_text("
                                          f"'{{\"dev_matthews\": {value}}}')"]

    runner.run([WritesItsRecord("cola", 1), WritesItsRecord("cola", 2)], s, said.append)
    runs = [json.loads(line) for line in (s.root / runner.LOG).read_text().splitlines()]
    assert [(r["cell"], r["done"]) for r in runs] == [("cola/teacher-seed+1", True), ("cola/teacher-seed+2", True)]
    assert seed.done(s) and not any("refit" in line for line in said)  # the teacher's weights were not needed
    teacher = numbers.result(cells.Cell("cola", "teacher"), s)
    assert teacher["n"] == 3 and teacher["teacher_value"] == 0.29 and teacher["dev_runs"] == [0.29, 0.2785, 0.2650]
    assert abs(teacher["dev_mean"] - 0.2778333) < 1e-6 and abs(teacher["dev_std"] - 0.0125133) < 1e-6
    markdown, _ = tables.table(["cola"], s)
    assert "| cola (matthews) | - | 27.78 +- 1.25 (n=3) | " in markdown
    assert tables.OtherTeachers().mark({"teacher_value": 0.29, "teacher_dir": "x"}, teacher) == ""
    # A refit on this machine (its folder's teacher.json, and the newer copy it leaves beside the first) scores
    # otherwise: the column keeps the teacher's own run, and the students of the refit are the marked ones.
    folder = cells.Cell("cola", "teacher").teacher_dir(s)
    folder.mkdir(parents=True)
    (folder / "teacher.json").write_text(json.dumps({"task": "cola", "dev_matthews": 0.25, "config": config}))
    (s.root / "teachers" / "paper-cola-20261205-060000.json").write_text(json.dumps({"task": "cola", "dev_matthews": 0.25}))
    again = numbers.result(cells.Cell("cola", "teacher"), s)
    assert again["teacher_value"] == 0.29 and again["dev_runs"] == [0.29, 0.2785, 0.2650]
    assert tables.OtherTeachers().mark({"teacher_value": 0.25, "teacher_dir": str(folder)}, again) == " [1]"


def test_a_teacher_seed_trains_on_the_teachers_own_rows_not_the_students_share(tmp_path):
    """SST-2's students train on 15% of the rows (TASK_FLAGS); its teacher, given with --teacher, trained on all
    of them with a held-out split of 10% (data seed 7): its other seeds must do the same, or the teacher column
    would average two recipes. A record from before `train_fraction` was written keeps the task's flags."""
    config = {"epochs": 3, "learning_rate": 5e-05, "warmup_ratio": 0.1, "weight_decay": 0.01, "batch_size": 32,
              "seed": 42, "precision": "auto", "group_by_length": True, "algorithm": "finetune"}
    given = tmp_path / "paper-sst2-heldout"
    given.mkdir()
    record = {"task": "sst2", "base": "minilm", "dev_accuracy": 0.8945, "config": config, "train_fraction": 1.0,
              "validation_fraction": 0.1, "data_seed": 7}
    (given / "teacher.json").write_text(json.dumps(record))
    s = cells.Settings("glue", tmp_path / "paper", tmp_path / "teachers", seeds=3, teachers=(("sst2", str(given)),))
    command = cells.TeacherSeed("sst2", 1).command(s)
    assert "--train-fraction" not in command and command[command.index("--max-seq-length") + 1] == "64"
    assert command[command.index("--validation-fraction") + 1] == "0.1" and command[command.index("--data-seed") + 1] == "7"
    assert command[command.index("--seed") + 1] == "43"
    student = cells.Cell("sst2", "kd").command(s)
    assert student[student.index("--train-fraction") + 1] == "0.15"
    (given / "teacher.json").write_text(json.dumps({**record, "train_fraction": 0.3}))
    command = cells.TeacherSeed("sst2", 1).command(s)
    assert command[command.index("--train-fraction") + 1] == "0.3" and command.count("--train-fraction") == 1
    (given / "teacher.json").write_text(json.dumps({k: v for k, v in record.items() if k != "train_fraction"}))
    command = cells.TeacherSeed("sst2", 1).command(s)
    assert command[command.index("--train-fraction") + 1] == "0.15"


def test_the_table_plot_draws_only_finished_cells_and_nothing_when_none_is(tmp_path):
    done = {"dev_mean": 0.8418, "dev_std": 0.0046, "n": 3}
    numbers = {("mrpc", "teacher"): {"dev_mean": 0.8545, "dev_std": 0.0063, "n": 3}, ("mrpc", "pid"): done,
               ("mrpc", "sid"): {"dev_mean": None, "dev_std": None}, ("cola", "kd"): None}
    assert plots.plot(["mrpc", "cola"], numbers, tmp_path / "table.png")
    assert (tmp_path / "table.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    nothing = {("mrpc", "sid"): {"dev_mean": None, "dev_std": None}, ("cola", "kd"): None}
    assert not plots.plot(["mrpc", "cola"], nothing, tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()


def _student_cell(folder, metric, student_layers, teacher_layers, teacher_dir, dev):
    """A finished fixed-method cell's records (confirm.json with 2 seeds, experiment.json), as raykd.search writes them."""
    folder.mkdir(parents=True)
    runs = [{"candidate": 1, "seed": 43 + i, metric: d} for i, d in enumerate(dev)]
    (folder / "confirm.json").write_text(json.dumps({
        "finished": True, "runs": runs, "chosen": {"candidate": 1}, "dev_metric": metric, "selection_metric": "val" + metric[3:],
        "configs": [{"candidate": 1, "n": 2, f"{metric}_mean": sum(dev) / 2, f"{metric}_std": 0.01,
                     f"val{metric[3:]}_mean": 0.8, "config": {"algorithm": "kd"}}]}))
    (folder / "experiment.json").write_text(json.dumps({
        "sizes": {"student_layers": student_layers, "student_params_total": 2_000_000},
        "teacher_info": {"layers": teacher_layers, "teacher_params_total": 8_000_000}, "command": "python -m raykd.search",
        "teacher_dir": str(teacher_dir), "selection": {"select_on": "validation"}}))


def test_the_readme_names_the_teacher_and_depths_its_records_have_never_fixed_text(glue_dir, tmp_path):
    """The README's sentences about the runs come from their records: a 2-layer student of a 4-layer teacher
    fine-tuned from bert-base-uncased is named so (not as MiniLM's 3 of 6), tasks with other teachers get a
    sentence each, and each task's one-class answer is read from its dev rows."""
    results = tmp_path / "results"
    given = {}
    for task, base, metric in (("mrpc", "bert-base-uncased", "dev_f1"), ("rte", "minilm", "dev_accuracy")):
        given[task] = tmp_path / f"{task}-teacher"
        given[task].mkdir()
        (given[task] / "teacher.json").write_text(json.dumps({"task": task, "base": base, metric: 0.9}))
    s = cells.Settings(str(glue_dir), results / "paper", tmp_path / "cache", seeds=2, teachers=(("mrpc", str(given["mrpc"])),))
    _student_cell(s.root / "mrpc" / "kd", "dev_f1", 2, 4, given["mrpc"], [0.84, 0.86])
    readme.write(s, ["mrpc"], [1.0], results)
    text = (s.root / "README.md").read_text()
    assert "2-layer students of a 4-layer teacher fine-tuned from `bert-base-uncased`." in text
    assert "MiniLM" not in text and "3-layer" not in text and "6-layer" not in text
    assert f"`python -m experiments.paper --results {results} --tasks mrpc --seeds 2`" in text
    assert "(mrpc: all equivalent)" in text  # F1 of all-positive; all-negative scores 0
    # A second task, its teacher MiniLM's and its students 3 of 6 layers: one sentence per teacher and depth.
    s = cells.Settings(str(glue_dir), s.root, s.teacher_cache, seeds=2, teachers=(("rte", str(given["rte"])),))
    _student_cell(s.root / "rte" / "kd", "dev_accuracy", 3, 6, given["rte"], [0.55, 0.57])
    readme.write(s, ["rte"], [1.0], results)
    text = (s.root / "README.md").read_text()
    assert ("mrpc: 2-layer students of a 4-layer teacher fine-tuned from `bert-base-uncased`. "
            "rte: 3-layer students of a 6-layer all-MiniLM-L6-v2 teacher.") in text
    assert "(mrpc: all equivalent; rte: all entailment)" in text and "--tasks mrpc rte --seeds 2" in text
    assert readme._students_of([4], [8], "minilm") == "4-layer students of an 8-layer all-MiniLM-L6-v2 teacher"
    assert readme._students_of([], [], "minilm") == "an all-MiniLM-L6-v2 teacher (no student cell done yet)"
    assert readme.who(["cola"], {}) == "The students and their teacher are named here once their cells are done."


def test_report_paper_is_refused_naming_the_experiment_driver(capsys):
    """`python -m raykd.report paper ...` no longer runs the table: one error line, exit 2, the command to use."""
    from raykd import report

    with pytest.raises(SystemExit) as exit_:
        report.main(["paper", "--tasks", "rte", "--seeds", "3"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and err.startswith("error: paper is no longer a raykd.report table")
    assert err.endswith("; use python -m experiments.paper --tasks rte --seeds 3 from the repository root")
