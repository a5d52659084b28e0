"""Bad input on the command line: one line on stderr naming problem and fix, exit code 2, and no
output folder created. Each command's `main` runs in the test's process (conftest.fails)."""

import subprocess
import sys

import pytest

from conftest import fails
from raykd import bench, distill, search, teacher


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a command's default results/ folder lands here


@pytest.mark.parametrize("extra, message", [
    (["--task", "nope"], "unknown task 'nope'; choose one of"),
    (["--data-dir", "/nonexistent"], "does not exist; pass --data-dir"),
    (["--layer-map", "2,9"], "outside 1..4"),
    (["--student-layers", "6"], "a student of 6 layers is not possible from a 4-layer teacher"),
    (["--temperature", "0"], "temperature=0.0 is out of range"),
    (["--w-soft", "-1"], "w_soft=-1.0 is out of range"),
    (["--teacher-cache-memory", "lots"], "--teacher-cache-memory 'lots' is not a size"),
    (["--cache-dir", "/proc/raykd-cache"], "cannot write the cache to /proc/raykd-cache ("),
])
def test_distill_rejects_bad_input(tiny_teacher_dir, glue_dir, tmp_path, capsys, extra, message):
    args = ["--task", "rte", "--data-dir", glue_dir, "--teacher", tiny_teacher_dir, "--out", tmp_path / "out"]
    fails(capsys, distill.main, [*args, *extra], message, out=tmp_path / "out")


def test_existing_results_are_never_overwritten(tiny_teacher_dir, glue_dir, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "result.json").write_text("precious")
    fails(capsys, distill.main, ["--task", "rte", "--data-dir", glue_dir, "--teacher", tiny_teacher_dir,
                                 "--out", tmp_path / "out"], "already exists and is not empty")
    assert (tmp_path / "out" / "result.json").read_text() == "precious"


def test_missing_teacher_folder(glue_dir, tmp_path, capsys):
    fails(capsys, distill.main, ["--task", "rte", "--data-dir", glue_dir, "--teacher", tmp_path / "none"],
          "has no config.json; fine-tune one with")


def test_tokenizer_larger_than_the_teacher_vocabulary(tiny_teacher_dir, glue_dir, tmp_path, capsys):
    import shutil

    from transformers import AutoTokenizer
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_teacher_dir, teacher)
    tokenizer = AutoTokenizer.from_pretrained(teacher)
    tokenizer.add_tokens([f"newtoken{i}" for i in range(5)])
    tokenizer.save_pretrained(teacher)
    fails(capsys, distill.main, ["--task", "rte", "--data-dir", glue_dir, "--teacher", teacher],
          "tokenizer of", "30527 tokens but the model only 30522")


def search_argv(tmp_path, glue_dir, teacher):
    space = tmp_path / "space.py"
    space.write_text("from ray import tune\nspace = {'temperature': tune.uniform(1, 2)}\n")
    return ["--task", "rte", "--space", space, "--data-dir", glue_dir, "--teacher", teacher, "--out", tmp_path / "results"]


@pytest.mark.parametrize("extra, message", [
    (["--resume", "--name", "never-ran"], "no experiment to resume at"),
    (["--out", "/proc/raykd-results"], "cannot write to /proc"),
    (["--num-samples", "0"], "--num-samples 0 must be at least 1"),
])
def test_search_rejects_bad_input(tiny_teacher_dir, glue_dir, tmp_path, capsys, extra, message):
    fails(capsys, search.main, [*search_argv(tmp_path, glue_dir, tiny_teacher_dir), *extra], message,
          out=None if "--out" in extra else tmp_path / "results")


def test_search_with_an_address_where_no_cluster_answers(tiny_teacher_dir, glue_dir, tmp_path):
    """In a process of its own: in the test's process Ray may already be running (the suite's cluster),
    and a command then joins it instead of dialling --address."""
    argv = [str(a) for a in search_argv(tmp_path, glue_dir, tiny_teacher_dir)]
    result = subprocess.run([sys.executable, "-m", "raykd.search", *argv, "--address", "127.0.0.1:9"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith("error: no Ray cluster answers at 127.0.0.1:9")
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("extra, message", [
    (["--sections", "cache,speed"], "unknown section(s) speed; choose from"),
    (["--tasks", "rte,nope"], "unknown task 'nope'"),
    (["--sections", "peer", "--peer-rounds", "0"], "--peer-rounds 0 must be at least 1"),
    (["--sections", "throughput", "--throughput-epochs", "0"], "--throughput-epochs 0 must be at least 1"),
    (["--sections", "throughput", "--throughput-layouts", "a,d"], "unknown --throughput-layouts d; choose among a,b,c"),
])
def test_bench_rejects_bad_input(glue_dir, tmp_path, capsys, extra, message):
    fails(capsys, bench.main, ["--data-dir", glue_dir, "--out", tmp_path / "bench.md", *extra], message,
          out=tmp_path / "bench.md")


def test_bench_never_overwrites_a_report(glue_dir, tmp_path, capsys):
    (tmp_path / "bench.md").write_text("precious")
    fails(capsys, bench.main, ["--data-dir", glue_dir, "--out", tmp_path / "bench.md"],
          "already exists; move it away or pass another --out")
    assert (tmp_path / "bench.md").read_text() == "precious"


@pytest.mark.parametrize("extra, message", [
    (["--cpus-per-worker", "0"], "--cpus-per-worker 0 must be > 0"),
    (["--max-failures", "-1"], "--max-failures -1 is negative"),
    (["--gpus-per-worker", "-1"], "--gpus-per-worker -1 is negative"),
])
def test_teacher_rejects_bad_ray_and_budget_flags(glue_dir, tmp_path, capsys, extra, message):
    fails(capsys, teacher.main, ["--task", "rte", "--data-dir", glue_dir, "--out", tmp_path / "teacher", *extra], message,
          out=tmp_path / "teacher")


def test_the_raykd_console_script_runs_each_command_and_refuses_others(tiny_teacher_dir, glue_dir, tmp_path):
    """`raykd <command>` (pyproject's console script, installed by `pip install .`) is `python -m raykd.<command>`:
    the same options and the same one-line errors; an unknown command is one line, exit 2."""
    from pathlib import Path

    script = Path(sys.executable).parent / "raykd"
    listed = subprocess.run([script], capture_output=True, text=True)
    assert listed.returncode == 2 and all(f"  {c} " in listed.stdout for c in ("teacher", "distill", "search", "bench"))
    wrong = subprocess.run([script, "serve"], capture_output=True, text=True)
    assert wrong.returncode == 2 and wrong.stderr.strip().splitlines() == [
        "error: unknown command 'serve'; use one of teacher, distill, search, export, report, bench (raykd --help)"]
    bad = subprocess.run([script, "distill", "--task", "rte", "--data-dir", glue_dir, "--teacher", tiny_teacher_dir,
                          "--layer-map", "2,9", "--out", tmp_path / "out"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: layer_map='2,9'")
    assert not (tmp_path / "out").exists()
