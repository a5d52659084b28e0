"""The order of training examples across DDP workers, with batches of similar length.

Batches are padded to their longest example (raykd.training.batches), so a batch that mixes a 20-token and a
128-token example pays for 128 twice. `LengthGroupedBatches` orders the examples with transformers'
`get_length_grouped_indices` (random mega-batches of up to 50 batches, each sorted by length, seeded by
seed + epoch), cuts the order into global batches of `batch_size`, and gives worker r every world-th
example of each, so the workers' batches have similar lengths too and the global batch is split
exactly. Without grouping it is a seeded permutation cut the same way. Deterministic per (seed, epoch)
on every worker: no communication is needed for the workers to agree.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import Sampler
from transformers.trainer_pt_utils import get_length_grouped_indices


class LengthGroupedBatches(Sampler[list[int]]):
    """Per-worker batches (lists of example indices) for one epoch; call `set_epoch` before each.

    lengths: tokens per example (N); batch_size: the global batch, split over `world` workers;
    rank: this worker. Raises ValueError when batch_size < world (some worker would get no example).
    The index list is padded by repeating its start (to a multiple of `world`, as DistributedSampler
    does, and so that the last global batch has an example for every worker): every worker takes the
    same number of steps, each on at least one example.
    """

    def __init__(self, lengths: list[int], batch_size: int, rank: int, world: int, seed: int, group: bool = True):
        if batch_size < world:
            raise ValueError(f"a global batch of {batch_size} cannot be split over {world} workers")
        self.lengths, self.batch_size, self.rank, self.world = list(lengths), batch_size, rank, world
        self.seed, self.group, self.epoch = seed, group, 0

    def set_epoch(self, epoch: int):
        """Order the next iteration by seed + `epoch` (0-based)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self._padded_size() / self.batch_size)

    def _padded_size(self) -> int:
        size = math.ceil(len(self.lengths) / self.world) * self.world
        last = size % self.batch_size
        return size + (self.world - last if 0 < last < self.world else 0)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.group:
            order = get_length_grouped_indices(self.lengths, self.batch_size, generator=generator)
        else:
            order = torch.randperm(len(self.lengths), generator=generator).tolist()
        order += (order * self.world)[:self._padded_size() - len(order)]
        for start in range(0, len(order), self.batch_size):
            yield order[start:start + self.batch_size][self.rank::self.world]
