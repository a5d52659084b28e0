"""Bad input on the command line: one line on stderr naming problem and fix, exit code 2, and no
output folder created."""

import subprocess
import sys

import pytest


def run(module, *args, cwd):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("extra, message", [
    (["--task", "nope"], "unknown task 'nope'; choose one of"),
    (["--data-dir", "/nonexistent"], "does not exist; pass --data-dir"),
    (["--layer-map", "2,9"], "outside 1..4"),
    (["--student-layers", "6"], "a student of 6 layers is not possible from a 4-layer teacher"),
    (["--temperature", "0"], "temperature=0.0 is out of range"),
    (["--w-soft", "-1"], "w_soft=-1.0 is out of range"),
    (["--teacher-cache-memory", "lots"], "--teacher-cache-memory 'lots' is not a size"),
    (["--cache-dir", "/proc/raykd-cache"], "cannot write the cache to /proc/raykd-cache/tokenized"),
])
def test_distill_rejects_bad_input(tiny_teacher_dir, glue_dir, tmp_path, extra, message):
    args = ["--task", "rte", "--data-dir", str(glue_dir), "--teacher", str(tiny_teacher_dir),
            "--out", str(tmp_path / "out")]
    result = run("raykd.distill", *args, *extra, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last
    assert not (tmp_path / "out").exists()


def test_existing_results_are_never_overwritten(tiny_teacher_dir, glue_dir, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "result.json").write_text("precious")
    result = run("raykd.distill", "--task", "rte", "--data-dir", str(glue_dir), "--teacher", str(tiny_teacher_dir),
                 "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 2 and "already exists and is not empty" in result.stderr
    assert (tmp_path / "out" / "result.json").read_text() == "precious"


def test_missing_teacher_folder(glue_dir, tmp_path):
    result = run("raykd.distill", "--task", "rte", "--data-dir", str(glue_dir), "--teacher", str(tmp_path / "none"), cwd=tmp_path)
    assert result.returncode == 2 and "has no config.json; fine-tune one with" in result.stderr


def test_tokenizer_larger_than_the_teacher_vocabulary(tiny_teacher_dir, glue_dir, tmp_path):
    import shutil

    from transformers import AutoTokenizer
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_teacher_dir, teacher)
    tokenizer = AutoTokenizer.from_pretrained(teacher)
    tokenizer.add_tokens([f"newtoken{i}" for i in range(5)])
    tokenizer.save_pretrained(teacher)
    result = run("raykd.distill", "--task", "rte", "--data-dir", str(glue_dir), "--teacher", str(teacher), cwd=tmp_path)
    assert result.returncode == 2 and "tokenizer of" in result.stderr and "30527 tokens but the model only 30522" in result.stderr


@pytest.mark.parametrize("extra, message", [
    (["--resume", "--name", "never-ran"], "no experiment to resume at"),
    (["--out", "/proc/raykd-results"], "cannot write to /proc"),
    (["--address", "127.0.0.1:9"], "no Ray cluster answers at 127.0.0.1:9"),
    (["--num-samples", "0"], "--num-samples 0 must be at least 1"),
])
def test_search_rejects_bad_input(tiny_teacher_dir, glue_dir, tmp_path, extra, message):
    space = tmp_path / "space.py"
    space.write_text("from ray import tune\nspace = {'temperature': tune.uniform(1, 2)}\n")
    base = ["--task", "rte", "--space", str(space), "--data-dir", str(glue_dir), "--teacher", str(tiny_teacher_dir),
            "--out", str(tmp_path / "results")]
    result = run("raykd.search", *base, *extra, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last
    assert not (tmp_path / "results").exists() or "--out" in extra


@pytest.mark.parametrize("extra, message", [
    (["--sections", "cache,speed"], "unknown section(s) speed; choose from"),
    (["--tasks", "rte,nope"], "unknown task 'nope'"),
])
def test_bench_rejects_bad_input(glue_dir, tmp_path, extra, message):
    result = run("raykd.bench", "--data-dir", str(glue_dir), "--out", str(tmp_path / "bench.md"), *extra, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "bench.md").exists()


def test_bench_never_overwrites_a_report(glue_dir, tmp_path):
    (tmp_path / "bench.md").write_text("precious")
    result = run("raykd.bench", "--data-dir", str(glue_dir), "--out", str(tmp_path / "bench.md"), cwd=tmp_path)
    assert result.returncode == 2 and "already exists; move it away or pass another --out" in result.stderr
    assert (tmp_path / "bench.md").read_text() == "precious"
