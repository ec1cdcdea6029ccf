"""Graph-classification splits: train / test, and the defender's clean holding set.

Convention (specs/README.md): seeded shuffle, 80/20 train/test; the holding set is
``round(holding_ratio * N)`` graphs drawn uniformly from the test split *without looking at
labels* and removed from the evaluation set (``eval = test - holding``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ParameterError


@dataclass
class Split:
    """Sorted LongTensor index sets into the dataset."""

    train_idx: torch.Tensor
    test_idx: torch.Tensor
    holding_idx: torch.Tensor
    eval_idx: torch.Tensor

    def to_dict(self) -> dict:
        """Plain lists (for the results store)."""
        return {k: getattr(self, k).tolist() for k in ("train_idx", "test_idx", "holding_idx", "eval_idx")}


def _sorted(idx) -> torch.Tensor:
    return torch.as_tensor(np.sort(np.asarray(idx, dtype=np.int64)))


def split_dataset(num_graphs: int, *, train_ratio: float = 0.8, holding_ratio: float = 0.03,
                  seed: int = 0) -> Split:
    """Seeded train/test split plus a label-agnostic holding set drawn from the test split.

    ``n_train = int(train_ratio * num_graphs)`` (rounded down), the rest is test;
    ``holding = round(holding_ratio * num_graphs)``. Ratios must lie in (0, 1); both splits must be
    non-empty and the holding set no larger than the test split (else :class:`ParameterError`).
    """
    for nm, val in (("train_ratio", train_ratio), ("holding_ratio", holding_ratio)):
        if not isinstance(val, (int, float)) or not 0.0 < float(val) < 1.0:
            raise ParameterError(f"{nm} must be in (0, 1); got {val!r}")
    num_graphs = int(num_graphs)
    n_train = int(train_ratio * num_graphs)
    n_test = num_graphs - n_train
    if n_train < 1 or n_test < 1:
        raise ParameterError(
            f"train_ratio {train_ratio} leaves an empty train or test split for {num_graphs} graphs"
        )
    n_hold = int(round(holding_ratio * num_graphs))
    if n_hold > n_test:
        raise ParameterError(
            f"holding_ratio {holding_ratio} asks for {n_hold} graphs but the test split has only "
            f"{n_test}; use holding_ratio <= {n_test / num_graphs:.4f}"
        )
    rng = np.random.default_rng(int(seed))
    perm = rng.permutation(num_graphs)
    train, test = perm[:n_train], perm[n_train:]
    # A second draw from the same stream picks holding graphs uniformly from test, labels unseen.
    hold = rng.choice(test, size=n_hold, replace=False) if n_hold else np.zeros(0, dtype=np.int64)
    ev = np.setdiff1d(test, hold)
    return Split(_sorted(train), _sorted(test), _sorted(hold), _sorted(ev))


def official_holding(labels, split: Split, target_label: int, fraction: float = 0.25,
                     seed: int = 0) -> Split:
    """GCleaner's released-code defender set (preset ``official``).

    Draws ``round(fraction * |test|)`` graphs from the test split (seeded), keeps as holding only
    those whose label != ``target_label`` (the release's target-label leak), and evaluates on the
    rest of the test split (the drawn target-label graphs are used for neither, as in the
    release, where the first 25% of the test split goes to the defender and 75% to evaluation).
    """
    if not 0.0 < float(fraction) <= 1.0:
        raise ParameterError(f"fraction must be in (0, 1]; got {fraction!r}")
    labels = torch.as_tensor(labels).reshape(-1)
    test = split.test_idx.numpy()
    n_draw = int(round(fraction * test.size))
    rng = np.random.default_rng(int(seed))
    drawn = rng.choice(test, size=n_draw, replace=False) if n_draw else np.zeros(0, dtype=np.int64)
    drawn_t = torch.as_tensor(drawn, dtype=torch.long)
    hold = drawn[(labels[drawn_t] != int(target_label)).numpy()] if n_draw else drawn
    ev = np.setdiff1d(test, drawn)
    return Split(split.train_idx.clone(), split.test_idx.clone(), _sorted(hold), _sorted(ev))
