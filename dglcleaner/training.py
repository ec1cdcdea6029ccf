"""Training and prediction on batched DGL graphs.

Every graph handed in carries ``ndata['feat']`` (see :mod:`dglcleaner.data.features`). Batches
are built with ``dgl.batch`` in a seeded order, so the same seed gives the same model on CPU.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, replace
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ._dgl import dgl
from .errors import ParameterError


@dataclass(frozen=True)
class TrainConfig:
    """Training settings for graph classifiers.

    Defaults follow the backdoor spec (section 6, item 9: Adam, lr 0.005, StepLR(50, 0.1),
    batch 64), stopped at 100 epochs instead of its 150 (the second decay, at epoch 100, would
    change nothing after it). The decay matters: measured on AIDS with Sub-BA (2 seeds), 40
    epochs without a decay gave ASR 77% and an ACC drop of 3.9 points, 100 epochs with the decay
    at 50 gave ASR 86.5% and a drop of 1.9 points (``benchmarks/foundation.py``).
    """

    epochs: int = 100
    lr: float = 0.005
    batch_size: int = 64
    weight_decay: float = 0.0
    step_size: int = 50
    gamma: float = 0.1
    optimizer: str = "adam"

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ParameterError(f"epochs must be >= 0; got {self.epochs}")
        if self.lr <= 0:
            raise ParameterError(f"lr must be > 0; got {self.lr}")
        if self.batch_size < 1:
            raise ParameterError(f"batch_size must be >= 1; got {self.batch_size}")
        if self.optimizer not in ("adam", "sgd"):
            raise ParameterError(f"optimizer must be one of adam, sgd; got {self.optimizer!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def updated(self, **overrides) -> "TrainConfig":
        return replace(self, **overrides)


def batch_of(graphs: Sequence["dgl.DGLGraph"], ids: List[int]) -> "dgl.DGLGraph":
    """``dgl.batch`` of ``graphs[i]`` for ``ids``, or ``graphs.make_batch(ids)`` when the
    sequence builds its batches itself (it must return the same batched graph, faster: e.g.
    randomized smoothing's fresh subsamples, built as one graph)."""
    make = getattr(graphs, "make_batch", None)
    return make(ids) if make is not None else dgl.batch([graphs[i] for i in ids])


def batches(graphs: Sequence["dgl.DGLGraph"], labels: Optional[torch.Tensor], batch_size: int,
            *, shuffle: bool = False, generator: Optional[torch.Generator] = None,
            device: Optional[torch.device] = None
            ) -> Iterator[Tuple["dgl.DGLGraph", Optional[torch.Tensor], torch.Tensor]]:
    """Yield ``(batched_graph, labels, indices)``; the batch lives on ``device``."""
    n = len(graphs)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        bg = batch_of(graphs, idx.tolist())
        if device is not None:
            bg = bg.to(device)
        y = labels[idx].to(bg.device) if labels is not None else None
        yield bg, y, idx


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer of ``cfg``, multi-tensor (``foreach``) on every device.

    PyTorch picks the per-parameter loop on CPU, which costs ~10 small ops per parameter per
    step; ``foreach=True`` gives bitwise the same parameters (checked in
    ``tests/test_training_speed_equivalence.py``). ``fused=True`` is not used: on CPU it changes
    the numbers.
    """
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                               foreach=True)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            foreach=True)


def train_model(model: torch.nn.Module, graphs: Sequence["dgl.DGLGraph"], labels: torch.Tensor,
                cfg: TrainConfig = TrainConfig(), *, seed: int = 0,
                device: Optional[torch.device] = None,
                loss_fn: Optional[Callable[..., torch.Tensor]] = None,
                on_epoch: Optional[Callable[[int, float], None]] = None,
                batch_plan: Optional[Callable[[int, int, torch.Generator], List[List[int]]]] = None
                ) -> torch.nn.Module:
    """Train ``model`` in place with cross-entropy (or ``loss_fn(logits, y)``) and return it.

    The batch order is drawn from a generator seeded with ``seed``; a NaN loss raises
    ``FloatingPointError`` so the experiment runner records the run as failed.
    ``batch_plan(epoch, batch_size, generator)``, if given, returns the graph indices of each
    batch of that epoch (e.g. Motif-Backdoor's poisoned graphs forced into every batch); by
    default every epoch is one shuffled pass in contiguous batches of ``cfg.batch_size``.
    """
    device = device or next(model.parameters()).device
    model.to(device).train()
    if len(graphs) == 0:
        return model
    if len(graphs) < 2 and any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules()):
        cfg = cfg.updated(batch_size=max(cfg.batch_size, 2))
    opt = make_optimizer(model, cfg)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)
    gen = torch.Generator().manual_seed(int(seed))
    loss_fn = loss_fn or F.cross_entropy
    labels = torch.as_tensor(labels, dtype=torch.long)
    for epoch in range(cfg.epochs):
        total, count = 0.0, 0
        if batch_plan is None:
            epoch_batches = batches(graphs, labels, cfg.batch_size, shuffle=True, generator=gen,
                                    device=device)
        else:  # the caller's batches, built as batches() builds its own
            plan = [torch.as_tensor(ids, dtype=torch.long)
                    for ids in batch_plan(epoch, cfg.batch_size, gen)]
            epoch_batches = ((batch_of(graphs, ids.tolist()).to(device),
                              labels[ids].to(device), ids) for ids in plan)
        for bg, y, _ in epoch_batches:
            if bg.batch_size < 2 and count > 0:
                continue  # BatchNorm cannot train on a single graph's statistics reliably
            logits = model(bg, bg.ndata["feat"])
            loss = loss_fn(logits, y)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite training loss at epoch {epoch}")
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(y)
            count += len(y)
        sched.step()
        if on_epoch is not None:
            on_epoch(epoch, total / max(count, 1))
    model.eval()
    return model


@torch.no_grad()
def predict_logits(model: torch.nn.Module, graphs: Sequence["dgl.DGLGraph"], *,
                   batch_size: int = 256, device: Optional[torch.device] = None) -> torch.Tensor:
    """Logits of ``model`` (in eval mode) for ``graphs``, on the CPU."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: List[torch.Tensor] = []
    for bg, _, _ in batches(graphs, None, batch_size, device=device):
        out.append(model(bg, bg.ndata["feat"]).cpu())
    model.train(was_training)
    if not out:
        return torch.empty(0, getattr(model, "num_classes", 0))
    return torch.cat(out)


def predict(model: torch.nn.Module, graphs: Sequence["dgl.DGLGraph"], **kwargs) -> torch.Tensor:
    """Predicted class of each graph."""
    return predict_logits(model, graphs, **kwargs).argmax(dim=1)


def clone_model(model: torch.nn.Module) -> torch.nn.Module:
    """An independent copy (the caller's model is never changed by defenses)."""
    return copy.deepcopy(model)
