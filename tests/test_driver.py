"""raykd.training.driver.Trainer: Ray Train's TorchTrainer less the Ray Data actor a run without Ray Datasets
does not use. It overrides a private method of Ray Train 2.60: this fails when an upgrade moves it."""

from ray.train.torch import TorchTrainer
from ray.train.v2._internal.callbacks.datasets import DatasetsCallback

from raykd.training.driver import Trainer


def _loop(config):
    pass


def test_a_run_without_datasets_starts_no_dataset_manager_and_keeps_every_other_callback():
    ray_train = [type(c) for c in TorchTrainer(_loop)._create_default_callbacks()]
    ours = [type(c) for c in Trainer(_loop)._create_default_callbacks()]
    assert DatasetsCallback in ray_train  # what Ray Train 2.60 adds to every run
    assert ours == [c for c in ray_train if c is not DatasetsCallback]
