"""Shared fixtures: a small seeded run on the embedded synthetic dataset, and the repository's
scripts (``benchmarks/*.py``, ``docs/*.py``) loaded as modules."""
import importlib.util
import os
from pathlib import Path

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


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def load_script():
    """``load_script("benchmarks/x.py")``: that script as a module (each loaded once)."""
    cache = {}

    def load(relpath):
        if relpath not in cache:
            spec = importlib.util.spec_from_file_location(Path(relpath).stem, ROOT / relpath)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            cache[relpath] = mod
        return cache[relpath]

    return load


def data_dir_or_skip():
    path = os.environ.get("DGLCLEANER_DATA_DIR")
    if not path or not os.path.isdir(path):
        pytest.skip("DGLCLEANER_DATA_DIR is not set; real-data test skipped")
    return path
