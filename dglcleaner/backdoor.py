"""Helpers shared by the graph-backdoor attacks: validation, the poison pool, assembling the
poisoned training set. Conventions from ``specs/README.md`` (injection ratio of the training
set, drawn from non-target graphs; trigger size ``max(2, floor(0.2 * avg nodes))``)."""
from __future__ import annotations

import math
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch

from .errors import ParameterError


def default_trigger_size(avg_nodes: float, fraction: float = 0.2) -> int:
    """``max(2, floor(avg_nodes * fraction))`` (GCleaner's rule)."""
    return max(2, int(math.floor(avg_nodes * fraction)))


def check_attack_settings(graphs: Sequence, labels: torch.Tensor, num_classes: int,
                          target: int, ratio: float, trigger_size: int) -> None:
    """One-line errors for settings no attack can honour."""
    if not 0 < ratio < 1:
        raise ParameterError(f"injection ratio must be in (0, 1); got {ratio}")
    if not 0 <= target < num_classes:
        raise ParameterError(
            f"target label must be in [0, {num_classes - 1}] for this dataset; got {target}"
        )
    largest = max((g.num_nodes() for g in graphs), default=0)
    if trigger_size < 1 or trigger_size > largest:
        raise ParameterError(
            f"trigger size must be in [1, {largest}] (the largest training graph has {largest} "
            f"nodes); got {trigger_size}"
        )
    if int((labels != target).sum()) == 0:
        raise ParameterError(
            f"every training graph already has the target label {target}; choose another "
            f"--target (valid: 0..{num_classes - 1})"
        )


def check_context(ctx, trigger_size: Optional[int] = None) -> None:
    """:func:`check_attack_settings` on an ``AttackContext`` (``trigger_size`` defaults to the
    context's): the ``check`` hook of an attack that plants ``trigger_size`` nodes."""
    k = int(ctx.trigger_size if trigger_size is None else trigger_size)
    check_attack_settings(ctx.train_graphs, ctx.train_labels, ctx.num_classes,
                          ctx.target_label, ctx.injection_ratio, k)


def poison_count(num_train: int, ratio: float) -> int:
    """Number of graphs to poison: ``ratio`` of the training set, at least one."""
    return max(1, int(round(ratio * num_train)))


def select_poison_indices(graphs: Sequence, labels: torch.Tensor, target: int, ratio: float,
                          rng: np.random.Generator, *, min_nodes: int = 1,
                          with_replacement: bool = False) -> np.ndarray:
    """Training indices to poison: drawn from graphs whose label is not ``target`` and that
    have at least ``min_nodes`` nodes. Without replacement by default; if the pool is smaller
    than the budget, the whole pool is poisoned (and the count is what it is)."""
    labels_np = labels.cpu().numpy()
    sizes = np.array([g.num_nodes() for g in graphs])
    pool = np.flatnonzero((labels_np != target) & (sizes >= min_nodes))
    if len(pool) == 0:
        raise ParameterError(
            f"no training graph with a label other than {target} has at least {min_nodes} "
            f"nodes; lower the trigger size"
        )
    count = poison_count(len(graphs), ratio)
    if with_replacement:
        return np.sort(rng.choice(pool, size=count, replace=True))
    return np.sort(rng.choice(pool, size=min(count, len(pool)), replace=False))


def assemble_poisoned(graphs: Sequence, labels: torch.Tensor, idx: np.ndarray, target: int,
                      make_triggered: Callable[[int], object]):
    """The poisoned training set (same length and order): graph ``i`` in ``idx`` replaced by
    ``make_triggered(i)`` and relabelled ``target``. Duplicate indices (sampling with
    replacement, GCleaner's released code) poison a graph once, as overwriting does there."""
    out: List = list(graphs)
    new_labels = labels.clone()
    for i in np.unique(idx).tolist():
        out[i] = make_triggered(i)
        new_labels[i] = target
    return out, new_labels


def forced_batches(n: int, poisoned_idx: Sequence[int], batch_size: int, per_batch: int,
                   generator: torch.Generator) -> List[List[int]]:
    """One epoch of batches over ``n`` training graphs in which every batch holds
    ``min(per_batch, #poisoned)`` distinct poisoned graphs (a fresh random pick from
    ``poisoned_idx`` per batch) plus ``batch_size - that`` clean ones; the clean graphs are
    shuffled and each appears once per epoch (the last batch may have fewer clean ones).

    Motif-Backdoor's release forces 5 poisoned graphs into every batch of 32 (27 random
    graphs + 5). With ``per_batch == 0`` or nothing to force or to mix in: plain shuffled
    batches of all ``n`` graphs. Raises :class:`ParameterError` if no room is left for clean
    graphs."""
    poisoned = torch.as_tensor(sorted({int(i) for i in poisoned_idx}), dtype=torch.long)
    forced = min(int(per_batch), len(poisoned))
    if forced > 0 and forced >= batch_size:
        raise ParameterError(
            f"poisoned graphs per batch ({forced}) must be smaller than the training batch size "
            f"({batch_size})")
    is_poisoned = torch.zeros(n, dtype=torch.bool)
    is_poisoned[poisoned] = True
    clean = torch.nonzero(~is_poisoned).flatten()
    if forced == 0 or len(clean) == 0:  # nothing to force or to mix in: plain shuffled batches
        order = torch.randperm(n, generator=generator).tolist()
        return [order[s:s + batch_size] for s in range(0, n, batch_size)]
    order = clean[torch.randperm(len(clean), generator=generator)]
    step = batch_size - forced
    out: List[List[int]] = []
    for s in range(0, len(order), step):
        pick = poisoned[torch.randperm(len(poisoned), generator=generator)[:forced]]
        out.append(order[s:s + step].tolist() + pick.tolist())
    return out
