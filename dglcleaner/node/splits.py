"""Seeded splits of the nodes of one graph.

``random_split``: the paper's ``small_val_random`` splits: ``20*C`` train and ``20*C`` validation
nodes drawn uniformly at random (NOT per class), the rest is the test set.
``class_equal_split``: the prior-work split (pitfall P2 + P1): 20 train nodes per class and a
large random validation set (500 nodes), the rest is test.
``stratified_folds``: the defender's ``StratifiedShuffleSplit(n_splits, test_size=0.5)`` over the
labeled nodes, stratified by the (poisoned) labels. Same allocation rule per class as
scikit-learn (floor for the train half, remainder to validation) but its own RNG stream, so the
folds are not bit-identical to sklearn's.
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np
import torch

Split = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def random_split(num_nodes: int, num_classes: int, seed: int, per_class: int = 20) -> Split:
    """(train, val, test) long tensors; train and val have ``per_class * C`` random nodes each."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(num_nodes)
    n = per_class * num_classes
    if 2 * n >= num_nodes:
        raise ValueError(f"graph too small for {2 * n} labeled nodes ({num_nodes} nodes)")
    t = lambda a: torch.from_numpy(np.sort(a)).long()  # noqa: E731
    return t(perm[:n]), t(perm[n:2 * n]), t(perm[2 * n:])


def class_equal_split(
    labels: torch.Tensor, num_classes: int, seed: int, per_class: int = 20, val_size: int = 500
) -> Split:
    """(train, val, test): ``per_class`` train nodes per class, ``val_size`` random val nodes."""
    rng = np.random.default_rng(seed)
    y = labels.cpu().numpy()
    train = []
    for c in range(num_classes):
        idx = np.flatnonzero(y == c)
        train.extend(rng.choice(idx, size=min(per_class, len(idx)), replace=False).tolist())
    rest = np.setdiff1d(np.arange(len(y)), np.asarray(train))
    rest = rng.permutation(rest)
    val_size = min(val_size, len(rest) // 2)
    t = lambda a: torch.from_numpy(np.sort(np.asarray(a))).long()  # noqa: E731
    return t(train), t(rest[:val_size]), t(rest[val_size:])


def stratified_folds(
    idx: torch.Tensor, y: torch.Tensor, n_splits: int = 5, seed: int = 0
) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """``n_splits`` random halvings of ``idx`` stratified by ``y[idx]`` -> [(fit, val), ...]."""
    rng = np.random.default_rng(seed)
    nodes = idx.cpu().numpy()
    lab = y[idx].cpu().numpy()
    out = []
    for _ in range(n_splits):
        fit, val = [], []
        for c in np.unique(lab):
            members = rng.permutation(nodes[lab == c])
            k = len(members) // 2  # sklearn: floor for train, rest to the test half
            fit.extend(members[:k].tolist())
            val.extend(members[k:].tolist())
        out.append((torch.tensor(sorted(fit)), torch.tensor(sorted(val))))
    return out


def budget_of(num_labeled: int, ratio: float) -> int:
    """The reference's ``ceil(|L| * ratio)`` (ratio in (0, 1]), robust to float noise."""
    return int(np.ceil(round(num_labeled * ratio, 9)))
