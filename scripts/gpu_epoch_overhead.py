"""Where a GPU epoch's time goes outside the training steps (run on the GPU machine after scripts/gpu_check_offline.sh's
install lines): per epoch raykd trains, evaluates dev and validation in fp32, and writes a checkpoint that Ray
then copies into the run's storage. Times each on an all-MiniLM-L6-v2-shaped classifier (random weights) with
RTE-sized work: 2241 training rows (70 steps of 32 x 128 tokens), 526 rows evaluated."""
import shutil
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoConfig, AutoTokenizer, BertForSequenceClassification

from raykd.training import precision
from raykd.training.worker import predict, save_checkpoint


def timed(fn, repeat=3):
    out = []
    for _ in range(repeat):
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        out.append(time.perf_counter() - t)
    return min(out)


device = torch.device("cuda")
config = AutoConfig.from_pretrained(".gpu/minilm", num_labels=2)
model = BertForSequenceClassification(config).to(device)
tokenizer = AutoTokenizer.from_pretrained(".gpu/minilm")
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
ids = torch.randint(1000, 30000, (32, 128), device=device)
labels = torch.randint(0, 2, (32,), device=device)


def steps(name, n=70):
    def run():
        for _ in range(n):
            with precision.autocast(name, device):
                loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return run


rows = torch.randint(1000, 30000, (526, 128))
collate = lambda idx: {"input_ids": rows[idx], "attention_mask": torch.ones(len(idx), 128, dtype=torch.long)}
for name in ("fp32", "bf16"):
    print(f"train 70 steps, {name}: {timed(steps(name), 2):.2f} s", flush=True)
print(f"evaluate 526 rows, fp32: {timed(lambda: predict(model, collate, list(range(526)), device)):.2f} s", flush=True)
state = {"epoch": 0, "optimizer": optimizer.state_dict()}
tmp = Path(tempfile.mkdtemp())
print(f"save_checkpoint (model, tokenizer, optimizer state): {timed(lambda: (shutil.rmtree(tmp / 'c', True), save_checkpoint(tmp / 'c', model, tokenizer, state))):.2f} s, "
      f"{sum(f.stat().st_size for f in (tmp / 'c').iterdir()) / 2**20:.0f} MiB", flush=True)
print(f"copy of that checkpoint (what Ray's report does into local storage): "
      f"{timed(lambda: (shutil.rmtree(tmp / 'd', True), shutil.copytree(tmp / 'c', tmp / 'd'))):.2f} s", flush=True)
