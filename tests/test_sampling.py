"""Length-grouped batches across DDP workers: every example once per epoch, the same steps on every
worker, the global batch split exactly, deterministic per (seed, epoch), and much less padding."""

import pytest

from raykd.data import DataSource, load_split, tokenize
from raykd.tasks import get_task
from raykd.training.sampling import LengthGroupedBatches


@pytest.fixture(scope="module")
def lengths(glue_dir, tokenizer, tmp_path_factory):
    train = load_split(get_task("rte"), "train", DataSource(data_dir=str(glue_dir)))
    return [len(x) for x in tokenize(train, tokenizer, 128, tmp_path_factory.mktemp("tok"))["input_ids"]]


def epoch(lengths, batch_size, world, seed=0, epoch_=0, group=True):
    samplers = [LengthGroupedBatches(lengths, batch_size, r, world, seed, group) for r in range(world)]
    for s in samplers:
        s.set_epoch(epoch_)
    return [list(s) for s in samplers]


@pytest.mark.parametrize("batch_size, world", [(32, 2), (33, 2), (16, 3), (32, 1)])
def test_every_example_once_and_equal_steps(lengths, batch_size, world):
    ranks = epoch(lengths, batch_size, world)
    assert len({len(r) for r in ranks}) == 1 and len(ranks[0]) == len(LengthGroupedBatches(lengths, batch_size, 0, world, 0))
    seen = [i for r in ranks for b in r for i in b]
    assert set(seen) == set(range(len(lengths))) and len(seen) - len(lengths) < world + batch_size
    for step in zip(*ranks):  # one global batch: split exactly, every worker gets examples
        sizes = [len(b) for b in step]
        assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
    assert sum(len(b) for b in ranks[0][:-1]) * world == pytest.approx(batch_size * (len(ranks[0]) - 1), abs=world * len(ranks[0]))


def test_deterministic_per_seed_and_epoch(lengths):
    assert epoch(lengths, 32, 2, seed=1, epoch_=3) == epoch(lengths, 32, 2, seed=1, epoch_=3)
    assert epoch(lengths, 32, 2, seed=1, epoch_=3) != epoch(lengths, 32, 2, seed=1, epoch_=4)
    assert epoch(lengths, 32, 2, seed=1) != epoch(lengths, 32, 2, seed=2)


def test_grouping_cuts_the_padding(lengths):
    def padded_tokens(group):
        return sum(max(lengths[i] for i in b) * len(b) for r in epoch(lengths, 32, 2, group=group) for b in r)

    real = sum(lengths)
    grouped, shuffled = padded_tokens(True), padded_tokens(False)
    assert grouped < 0.8 * shuffled and grouped < 1.15 * real  # RTE: lengths from ~10 to 128 tokens
