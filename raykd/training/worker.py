"""The loop each Ray Train worker runs: one student (or teacher being fine-tuned) in DDP, the
schedule's stages epoch by epoch, the dev metric and a checkpoint reported after every epoch.

Its `train_loop_config` is {"job": raykd.training.job.Job}: the student's plan (or a teacher fine-tuning's
base and recipe), the data and teacher outputs as object references, the selection metric and the shape's cost.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import ray
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from transformers import AutoTokenizer, get_linear_schedule_with_warmup

from raykd import metrics, models
from raykd.method.algorithms import Stage, epoch_plan, schedule
from raykd.method.config import DistillConfig
from raykd.method.objective import stage_loss
from raykd.method.plan import FILE as PLAN_FILE
from raykd.selection import NOT_ELIGIBLE, selection_score  # internal stages' checkpoints: kept, never chosen
from raykd.student import pruning
from raykd.tasks import get_task
from raykd.teacher_outputs.cache import LiveTeacher, MergedTeacher, TeacherOutputs
from raykd.teacher_outputs.disk_cache import open_placed
from raykd.training import precision, startup
from raykd.training.batches import Collator
from raykd.training.job import Job
from raykd.training.sampling import LengthGroupedBatches
from raykd.training.session import TrainSession

TRAIN_STATE = "train_state.pt"


def build_model(job: Job, task, cfg: DistillConfig):
    """(model, teacher, kept): the student of the job's plan with the teacher it copies and the teacher channels a
    narrowed student keeps (raykd.student.pruning.Kept, else None), or the base model to fine-tune, no teacher and
    None. The student holds copies of the teacher's weights, so the teacher can still run live beside it."""
    if job.plan is None:
        return models.load_base_for_finetuning(job.base, task), None, None
    teacher, _ = models.load_teacher(job.teacher_dir, task)
    run = job.plan
    kept = None
    if run.narrowed:
        source = tuple(range(1, run.student_layers + 1)) if cfg.student_init == "bottom" else run.layer_map
        kept = pruning.keep(ray.get(job.importance), source, run.student_hidden, run.student_ffn)
    return models.build_student(teacher, run.student_layers, run.layer_map, cfg.student_init, kept), teacher, kept


def make_optimizer(model, cfg: DistillConfig, stage: Stage, steps_per_epoch: int):
    """AdamW with linear warm-up and decay, fresh for every stage (each stage is its own problem).

    torch's fused AdamW on CPU and CUDA: one kernel over all parameters instead of a dozen passes each;
    a bf16 student step on 2 CPU cores spent 0.10 s in gradient clipping and foreach AdamW (most of it on the 11.7M
    word-embedding weights), 0.02 s fused (results/epoch-speed.md)."""
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if not n.endswith(no_decay)], "weight_decay": cfg.weight_decay},
              {"params": [p for n, p in named if n.endswith(no_decay)], "weight_decay": 0.0}]
    fused = named[0][1].device.type in ("cpu", "cuda")  # where torch has the fused kernel
    optimizer = torch.optim.AdamW(groups, lr=cfg.learning_rate, fused=fused)
    total = stage.epochs * steps_per_epoch
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total), total)
    return optimizer, scheduler


def frozen_parameters(model, stage: Stage) -> list[torch.nn.Parameter]:
    """The parameters of the layers `stage` does not train (groups of raykd.models.layer_parameters:
    0 embeddings, 1..N blocks, N+1 pooler and classifier); train_epoch drops their gradients."""
    groups = models.layer_parameters(model)
    return [p for i, group in enumerate(groups) if i not in stage.trainable for p in group]


def train_epoch(model, loader, stage, cfg, optimizer, scheduler, frozen, device, scaler) -> float:
    """One epoch of `stage` over `loader` (batches already on `device`); the mean loss over all workers.
    The forward pass runs under cfg.precision's autocast, the loss in fp32 (raykd.method.objective); `scaler`
    scales fp16 losses and is a no-op otherwise."""
    model.train()
    losses = []
    for batch in loader:
        loss, _ = stage_loss(model, batch, stage, cfg.temperature, precision.autocast(cfg.precision, device))
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        for p in frozen:  # AdamW skips parameters without a gradient: no update, no weight decay
            p.grad = None
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        losses.append(float(loss.detach()))
    return _mean_over_workers(float(np.mean(losses)) if losses else 0.0, device)


def _nodes_of_workers() -> int:
    """How many Ray nodes this run's workers are on."""
    node = ray.get_runtime_context().get_node_id()
    if not dist.is_initialized():
        return 1
    nodes = [None] * dist.get_world_size()
    dist.all_gather_object(nodes, node)
    return len(set(nodes))


def _mean_over_workers(value: float, device: torch.device) -> float:
    if not dist.is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)  # nccl reduces only device tensors
    dist.all_reduce(t)
    return float(t) / dist.get_world_size()


@torch.no_grad()
def predict(model, collate: Collator, indices: list[int], device: torch.device, precision_name: str = "fp32",
            batch_size: int = 64) -> np.ndarray:
    """Logits [len(indices), C] (float32, on the CPU) of the examples `indices`, in that order."""
    model.eval()
    chunks = []
    for s in range(0, len(indices), batch_size):
        batch = collate(indices[s:s + batch_size])
        with precision.autocast(precision_name, device):
            out = model(**{k: batch[k].to(device) for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch})
        chunks.append(out.logits.float().cpu())
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, 1), np.float32)


def evaluate(model, task, columns: dict, collate: Collator, rank: int, world: int, device: torch.device,
             precision_name: str = "fp32", prefix: str = "dev") -> dict[str, float]:
    """Each worker predicts every world-th example of `columns`; the predictions are gathered and
    scored, named `<prefix>_<metric>` (raykd.metrics.compute)."""
    mine = list(range(rank, len(columns["labels"]), world))
    shard = (mine, predict(model, collate, mine, device, precision_name))
    shards = [shard]
    if dist.is_initialized():
        shards = [None] * world
        dist.all_gather_object(shards, shard)
    order = np.concatenate([np.asarray(i, dtype=np.int64) for i, _ in shards])
    logits = np.concatenate([p for _, p in shards])[np.argsort(order)]
    return metrics.compute(task, logits, np.asarray(columns["labels"]), prefix)


def save_checkpoint(folder: Path, model, tokenizer, state: dict):
    """Write a checkpoint into `folder`: model (safetensors) and tokenizer by save_pretrained, and `state`
    (epoch, optimizer and scheduler state) as train_state.pt."""
    model.save_pretrained(folder)  # safetensors
    tokenizer.save_pretrained(folder)
    torch.save(state, folder / TRAIN_STATE)


def restore(model, session) -> dict | None:
    """Load the run's latest checkpoint (a restarted or resumed run) into `model`; its train state, or None."""
    folder = session.checkpoint_dir()
    if folder is None:
        return None
    with folder as folder:
        from safetensors.torch import load_file
        model.load_state_dict(load_file(Path(folder) / "model.safetensors"), strict=False)
        return torch.load(Path(folder) / TRAIN_STATE, weights_only=False)


def train_loop_per_worker(loop_config: dict, session=None):
    """What every Ray Train worker runs (TorchTrainer's train_loop_per_worker; the `job` keys are in the
    module docstring): builds the model, wraps it in DDP on this worker's device (`get_device`: a GPU
    when the worker has one, else the CPU with gloo), then trains the schedule's stages epoch by epoch
    and reports each epoch's metrics and a checkpoint (rank 0 writes it). Resumes from the last
    checkpoint when Ray restarts the run. Returns early after an epoch whose loss is not finite. `session`
    (raykd.training.session): where the loop runs, a Ray Train worker (the default) or a one-worker trial's
    Tune actor."""
    session = session or TrainSession()
    job: Job = loop_config["job"]
    marks = {**(job.startup or {}), "worker_process": startup.process_started(), "worker_loop": time.time()}
    cfg, task = job.config, get_task(job.task)
    rank, world, device = session.rank, session.world, session.device
    torch.set_num_threads(job.threads)
    torch.manual_seed(cfg.seed)  # the same initial weights on every worker
    data = ray.get(job.data)
    tokenizer = AutoTokenizer.from_pretrained(job.tokenizer_dir)
    startup.mark(marks, "data")
    model, teacher_model, kept = build_model(job, task, cfg)
    run = job.plan
    stages = list(run.stages) if run else schedule(cfg, model.config.num_hidden_layers)
    mapping = run.layer_map if run else ()
    plan = epoch_plan(stages)
    state = restore(model, session)
    startup.mark(marks, "model")
    first_epoch = state["epoch"] + 1 if state else 0
    if state and first_epoch >= len(plan):
        # Restored after its last epoch: the run had ended, but the trial around it was stopped (Ctrl-C)
        # before Tune saw it end. That epoch is reported again, so the trial ends with its metrics.
        _report_again(rank, session)
        return
    bare = model
    # Internal stages leave the pooler and classifier (and frozen blocks) without gradients; DDP must
    # then look for unused parameters, an extra graph traversal per step that the other schedules skip.
    unused = any(not stage.classification for stage in stages)
    model = session.prepare_model(model, unused)  # moves it to `device`
    torch.manual_seed(cfg.seed + 1 + rank + 1000 * first_epoch)  # dropout differs across workers
    startup.mark(marks, "ddp")

    views = []  # the teacher's outputs: cached, computed live, or cached small fields + live attention maps
    if job.teacher_outputs:
        views.append(TeacherOutputs(open_placed(job.teacher_outputs, ray.get), run.teacher_depth, run.teacher_heads))
    if job.live_teacher:
        views.append(LiveTeacher(teacher_model.to(device), data["train"], set(job.live_teacher),
                                 tokenizer.pad_token_id, precision.autocast(cfg.precision, device)))
    teacher = (views[0] if len(views) == 1 else MergedTeacher(*views)) if views else None
    del teacher_model  # unless it runs live, the student no longer needs it
    train_collate = Collator(tokenizer, data["train"], task.is_regression, teacher, mapping,
                             None if kept is None else kept.hidden)
    dev_collate = Collator(tokenizer, data["dev"], task.is_regression)
    # Selection: on the validation split held out from the training set when there is one, else on dev.
    selection = job.selection or {"metric": f"{'val' if 'validation' in data else 'dev'}_{task.main_metric}",
                                         "mode": "max"}
    validation_collate = Collator(tokenizer, data["validation"], task.is_regression) if "validation" in data else None
    lengths = [len(ids) for ids in data["train"]["input_ids"]]
    sampler = LengthGroupedBatches(lengths, cfg.batch_size, rank, world, cfg.seed, group=cfg.group_by_length)
    # Ray's wrapper moves every tensor of a batch (the teacher's outputs included) to the worker's device.
    loader = session.prepare_loader(DataLoader(range(len(lengths)), batch_sampler=sampler, collate_fn=train_collate))
    scaler = precision.grad_scaler(cfg.precision, device)

    optimizer = scheduler = None
    cls_epochs = sum(1 for stage, _ in plan[:first_epoch] if stage.classification)
    for epoch in range(first_epoch, len(plan)):
        stage, epoch_in_stage = plan[epoch]
        if optimizer is None or epoch_in_stage == 0:
            optimizer, scheduler = make_optimizer(model, cfg, stage, len(loader))
            if state and epoch_in_stage > 0:  # resumed inside a stage: keep its optimizer state
                optimizer.load_state_dict(state["optimizer"])
                scheduler.load_state_dict(state["scheduler"])
        sampler.set_epoch(epoch)
        timing = {}
        if epoch == first_epoch:  # everything loaded: the first step comes next
            timing.update(startup.phases(startup.mark(marks, "first_step")))
            if job.submitted_at is not None:
                timing["seconds_to_first_step"] = time.time() - job.submitted_at
        started = time.perf_counter()
        loss = train_epoch(model, loader, stage, cfg, optimizer, scheduler, frozen_parameters(bare, stage), device, scaler)
        timing["epoch_seconds"] = time.perf_counter() - started
        timing["examples_per_second"] = len(data["train"]["labels"]) / timing["epoch_seconds"]
        if epoch == first_epoch:
            timing["worker_nodes"] = _nodes_of_workers()
        cls_epochs += stage.classification
        # Evaluated in fp32 whatever the training's autocast: the reported metric is that of the fp32 weights
        # that are saved and shipped (an exported model runs in fp32), and the export check can demand it.
        result = {"epoch": epoch + 1, "cls_epoch": cls_epochs, "stage": stage.name, "train_loss": loss, **timing,
                  "precision_used": precision.resolve(cfg.precision, device),  # what `auto` became on this worker
                  **(job.cost or {}),
                  **evaluate(bare, task, data["dev"], dev_collate, rank, world, device, "fp32")}
        if validation_collate:
            result.update(evaluate(bare, task, data["validation"], validation_collate, rank, world, device,
                                   "fp32", "val"))
        result["score"] = (selection_score(result, selection["metric"], selection["mode"])
                           if stage.classification else NOT_ELIGIBLE)
        if not math.isfinite(loss):  # the weights are no longer usable: never export them
            result.update(score=NOT_ELIGIBLE, stop_reason="non-finite loss")
        elif not math.isfinite(result["score"]):  # NaN would win Ray's max over checkpoints
            result.update(score=NOT_ELIGIBLE, stop_reason="non-finite dev metric")
        _report(result, bare, tokenizer, rank, {"epoch": epoch, "optimizer": optimizer.state_dict(),
                                                "scheduler": scheduler.state_dict()}, session, run)
        if not math.isfinite(loss):
            return


def _report_again(rank: int, session):
    """Report the restored checkpoint's metrics (its metrics.json) and, from rank 0, the checkpoint itself
    once more."""
    with session.checkpoint_dir() as folder:
        metrics = json.loads((Path(folder) / "metrics.json").read_text())
        session.report(metrics, Path(folder) if rank == 0 else None)


def _report(result: dict, model, tokenizer, rank: int, state: dict, session, run=None):
    """Report the epoch's metrics through `session` with a checkpoint (rank 0 writes it): the model, the
    tokenizer, the train state, metrics.json and, for a student, its plan.json (raykd.method.plan)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = None
        if rank == 0:
            folder = Path(tmp)
            save_checkpoint(folder, model, tokenizer, state)
            (folder / "metrics.json").write_text(json.dumps(result))
            if run is not None:
                (folder / PLAN_FILE).write_text(json.dumps(run.to_dict()))
        session.report(result, folder)
