"""raykd.files: every write under results/ and the cache is all or nothing."""

import threading

import pytest

from raykd import files


def test_atomic_write_replaces_whole_files_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "summary.md"
    files.atomic_write(target, "first")
    files.atomic_json(target, {"a": 1})
    assert target.read_text() == '{\n  "a": 1\n}'
    assert sorted(p.name for p in target.parent.iterdir()) == ["summary.md"]


def test_a_failed_build_leaves_the_published_folder_as_it_was(tmp_path):
    out = tmp_path / "best"
    with files.publish_dir(out) as tmp:
        (tmp / "model.txt").write_text("v1")
    with pytest.raises(RuntimeError):
        with files.publish_dir(out) as tmp:
            (tmp / "model.txt").write_text("v2 (half written)")
            raise RuntimeError("export failed")
    assert (out / "model.txt").read_text() == "v1"
    assert [p.name for p in tmp_path.iterdir()] == ["best"]  # the partial folder is gone


def test_keep_on_error_keeps_the_partial_folder_for_its_logs_and_the_next_run_clears_it(tmp_path):
    out = tmp_path / "teacher"
    with pytest.raises(RuntimeError):
        with files.publish_dir(out, keep_on_error=True) as tmp:
            (tmp / "ray.log").write_text("why it failed")
            raise RuntimeError
    assert (tmp_path / ".teacher.partial" / "ray.log").is_file()
    with files.publish_dir(out) as tmp:
        assert list(tmp.iterdir()) == []  # a leftover is never resumed
        (tmp / "teacher.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["teacher"]


def test_without_replace_someone_elses_folder_wins(tmp_path):
    out = tmp_path / "teacher"
    with pytest.raises(FileExistsError):
        with files.publish_dir(out, replace=False) as tmp:
            (tmp / "mine").write_text("")
            out.mkdir()
            (out / "theirs").write_text("")
    assert [p.name for p in out.iterdir()] == ["theirs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["teacher"]


def test_the_lock_lets_one_holder_in_at_a_time(tmp_path):
    order = []

    def hold(name):
        with files.lock(tmp_path):
            order.append(f"{name} in")
            order.append(f"{name} out")

    threads = [threading.Thread(target=hold, args=(n,)) for n in "ab"]
    with files.lock(tmp_path):  # both wait for this holder
        for t in threads:
            t.start()
        order.append("main")
    for t in threads:
        t.join()
    assert order[0] == "main"  # nobody got in while the main thread held it
    assert {(order[1], order[2]), (order[3], order[4])} == {("a in", "a out"), ("b in", "b out")}  # never interleaved
