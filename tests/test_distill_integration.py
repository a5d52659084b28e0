"""End to end on a real local Ray cluster: distillations with 2 DDP workers and with one worker in the command's
process, tiny BERTs built here, and real RTE and STS-B rows from the shared GLUE data. (Teacher fine-tuning:
test_cluster.py.)"""

import json

import numpy as np
import torch
import pytest
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from raykd import distill, metrics
from raykd.data import DataSource, load_task_data
from raykd.tasks import get_task
from raykd.training.batches import Collator
from raykd.training.worker import predict


def dev_metric_of(folder, glue_dir, max_len, cache, precision="fp32", task="rte"):
    """Score a saved model on `task`'s dev set from scratch, independently of the run that saved it: the
    task's main metric."""
    task = get_task(task)
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    dev = load_task_data(task, DataSource(data_dir=str(glue_dir)), tokenizer, max_len, 1.0, 0, cache)["dev"]
    logits = predict(model, Collator(tokenizer, dev, regression=task.is_regression), list(range(len(dev["labels"]))),
                     torch.device("cpu"), precision)
    return metrics.compute(task, logits, np.array(dev["labels"]))[f"dev_{task.main_metric}"]


def test_sid_distillation_on_two_workers_in_bf16_on_stsb(ray_cluster, glue_dir, tmp_path):
    """SID's stages on two DDP workers, through the worker loop's device path (get_device, Ray's
    device-moving data loader) with bf16 autocast: what a GPU run does, on the CPU. On STS-B, the one
    regression task: a 1-output teacher, soft labels as the teacher's scores, Pearson and Spearman on dev;
    the exported student is a 1-output regressor whose plan.json records its layer map. Its dev Pearson,
    recomputed in fp32 from its folder, is the one reported (evaluation runs in fp32)."""
    from tiny_teachers import make_teacher

    teacher_dir = make_teacher(tmp_path / "stsb-teacher", labels=None, num_labels=1)
    out = tmp_path / "run"
    record = distill.main(["--task", "stsb", "--data-dir", str(glue_dir), "--teacher", str(teacher_dir),
                           "--algorithm", "sid", "--epochs", "2", "--train-fraction", "0.02", "--max-seq-length", "64",
                           "--workers", "2", "--batch-size", "15", "--precision", "bf16",
                           "--out", str(out), "--cache-dir", str(tmp_path / "cache")])
    # 4-layer teacher -> 2-layer student on layers 2 and 4: two internal stages, then two classification epochs
    assert record["layer_map"] == [2, 4] and record["student_layers"] == 2
    assert [h["stage"] for h in record["history"]] == ["pair1", "pair2", "classify", "classify"]
    assert [h["cls_epoch"] for h in record["history"]] == [0, 0, 1, 2]
    assert all(np.isfinite(h["train_loss"]) and h["train_loss"] > 0 for h in record["history"])
    assert record["best"]["stage"] == "classify" and record["config"]["precision"] == "bf16"
    assert record["precision_used"] == "bf16" and all(h["precision_used"] == "bf16" for h in record["history"])
    best = record["best"]
    assert -1 <= best["dev_pearson"] <= 1 and -1 <= best["dev_spearman"] <= 1
    saved = json.loads((out / "result.json").read_text())
    assert saved["best"]["dev_pearson"] == best["dev_pearson"]
    assert saved["config"]["batch_size"] == 15  # split 8 + 7 over the workers, exactly
    student = AutoModelForSequenceClassification.from_pretrained(out / "student")
    assert student.config.num_hidden_layers == 2 and student.config.num_labels == 1
    assert (out / "student" / "model.safetensors").is_file()
    assert json.loads((out / "student" / "plan.json").read_text())["layer_map"] == [2, 4]
    assert dev_metric_of(out / "student", glue_dir, 64, tmp_path / "cache", task="stsb") == pytest.approx(
        best["dev_pearson"], abs=1e-5)  # padded to other lengths in the run: float noise only


def test_one_worker_trains_in_the_command_process_as_one_ray_train_worker_would(ray_cluster, tiny_teacher_dir,
                                                                                glue_dir, tmp_path, monkeypatch):
    """distill's default, one worker on the local cluster, runs the worker loop in the command's own process
    (raykd.training.session.ProcessSession): no Ray Train controller or worker process (no start-up phase of
    theirs, no Train run state), checkpoints in Train's layout with its keep rule (the best KEEP by score and the
    latest), and, from the same seed, the same losses and dev metric as one Ray Train worker with as many CPUs
    (RAYKD_ONE_WORKER_ON_TRAIN=1, the layout before)."""
    from raykd.training.session import KEEP

    argv = ["--task", "rte", "--data-dir", str(glue_dir), "--teacher", str(tiny_teacher_dir), "--algorithm", "kd",
            "--epochs", "4", "--train-fraction", "0.04", "--max-seq-length", "64", "--precision", "fp32",
            "--cache-dir", str(tmp_path / "cache")]
    here = distill.main([*argv, "--out", str(tmp_path / "here")])
    monkeypatch.setenv("RAYKD_ONE_WORKER_ON_TRAIN", "1")
    train = distill.main([*argv, "--out", str(tmp_path / "train")])
    assert len(here["history"]) == 4
    first = here["history"][0]
    assert first["startup_train_start_s"] == 0 and first["startup_worker_imports_s"] < 1  # none of Train's processes
    assert train["history"][0]["startup_worker_imports_s"] > 1  # a Train worker process imports torch
    run = tmp_path / "here" / "ray" / "distill"
    kept = sorted(p.name for p in run.iterdir())
    assert not (run / "checkpoint_manager_snapshot.json").exists() and (run / "checkpoint_000004") in run.iterdir()
    assert len(kept) <= KEEP + 1 and all(name.startswith("checkpoint_") for name in kept), kept
    scores = sorted((h["score"], h["epoch"]) for h in here["history"])
    assert here["best"]["epoch"] == scores[-1][1] and f"checkpoint_{scores[-1][1]:06d}" in kept
    for a, b in zip(here["history"], train["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["dev_accuracy"] == b["dev_accuracy"]
    assert dev_metric_of(tmp_path / "here" / "student", glue_dir, 64, tmp_path / "cache") == here["best"]["dev_accuracy"]


def test_cached_and_live_teacher_give_the_same_losses(ray_cluster, tiny_teacher_dir, glue_dir, tmp_path):
    """Cached outputs must not differ from a live teacher's, whatever dropout and data order do (one worker in
    the command's process, distill's default: the cache's outputs, not DDP, are what differs)."""
    import ray

    from raykd.teacher_outputs.disk_cache import DiskCache, cache_key
    from raykd.teacher_outputs.service import TeacherService

    argv = ["--task", "rte", "--data-dir", str(glue_dir), "--teacher", str(tiny_teacher_dir), "--algorithm", "all",
            "--epochs", "2", "--train-fraction", "0.04", "--max-seq-length", "64", "--workers", "1",
            "--cache-dir", str(tmp_path / "cache"), "--teacher-cache-memory", "1KiB",  # attentions memory-mapped
            "--precision", "fp32"]  # equal losses within 1e-3: bf16 rounding would exceed it
    cached = distill.main([*argv, "--out", str(tmp_path / "cached")])
    live = distill.main([*argv, "--out", str(tmp_path / "live"), "--live-teacher"])
    # over its disk budget the cache keeps logits and [CLS] vectors and the workers compute the maps
    split = distill.main([*argv, "--out", str(tmp_path / "split"), "--teacher-cache-disk", "1KiB"])
    for a, b, c in zip(cached["history"], live["history"], split["history"], strict=True):
        assert a["train_loss"] > 0.01
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3)  # fp16 storage
        assert c["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3)
        assert a["seconds_to_first_step"] > 0 if a["epoch"] == 1 else "seconds_to_first_step" not in a
    # one TeacherService served the three runs of this process (same teacher, data, budget and threads)
    assert [r["teacher_service"]["runs"] - cached["teacher_service"]["runs"] for r in (live, split)] == [1, 2]
    assert split["teacher_service"]["cache_dir"] == cached["teacher_service"]["cache_dir"]
    # a new service (a second search) finds the outputs on disk: no teacher forward pass at all
    train = load_task_data(get_task("rte"), DataSource(data_dir=str(glue_dir)), AutoTokenizer.from_pretrained(tiny_teacher_dir),
                           64, 0.04, 42, tmp_path / "cache")["train"]
    cache = DiskCache(tmp_path / "cache", cache_key(tiny_teacher_dir, train, 64))
    assert cache.dir.is_dir() and not cache.missing({"logits", "attentions", "cls"})
    service = TeacherService.remote(str(tiny_teacher_dir), "rte", cache, 2**30)
    placed = ray.get(service.outputs.remote({"train": train}, ["logits", "attentions", "cls"], [2, 4]))
    stats = ray.get(service.stats.remote())
    assert stats["forward_seconds"] == 0.0 and stats["memory_mapped"] == [] and "attentions" in placed
    ray.kill(service)


def test_a_failure_in_the_command_process_is_one_line_with_its_traceback_kept(ray_cluster, tmp_path):
    """A one-worker run that fails in the command's own process ends as a Ray Train run's failure does: one
    RaykdError line naming the run and the error, the traceback in a file beside the epoch log."""
    import ray

    from raykd.errors import RaykdError
    from raykd.training import finetune
    from raykd.training.driver import Scaling, fit_and_export

    job = finetune.job(get_task("rte"), "minilm", finetune.DEFAULTS, ray.put({"train": {}, "dev": {}}),
                       tmp_path / "no-tokenizer-here")
    with pytest.raises(RaykdError, match=r"teacher fine-tuning failed: OSError: .*its traceback is in ") as err:
        fit_and_export(job, Scaling(1, 1.0), tmp_path / "ray", "t", tmp_path / "out", local=True,
                       what="teacher fine-tuning")
    trace = tmp_path / "ray" / "t.error.txt"
    assert str(trace) in str(err.value) and "Traceback" in trace.read_text() and not (tmp_path / "out").exists()
