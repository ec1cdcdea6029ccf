"""Shared fixtures: a small seeded run on the embedded synthetic dataset."""
import os

import pytest
import torch

os.environ.setdefault("DGLBACKEND", "pytorch")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def synthetic_run():
    """A SeedRun on the synthetic data with short training (stages cached across tests)."""
    from dglcleaner.runner import DefendConfig, SeedRun
    from dglcleaner.training import TrainConfig

    cfg = DefendConfig(dataset="synthetic", attack="sub-ba", defense="none", device="cpu",
                       train=TrainConfig(epochs=15))
    return SeedRun(cfg, seed=0)


def data_dir_or_skip():
    path = os.environ.get("DGLCLEANER_DATA_DIR")
    if not path or not os.path.isdir(path):
        pytest.skip("DGLCLEANER_DATA_DIR is not set; real-data test skipped")
    return path
