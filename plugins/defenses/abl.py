"""ABL: anti-backdoor learning (isolate the fastest-learned graphs, then unlearn them).

Paper: Li, Lyu, Koren, Lyu, Li, Ma, "Anti-Backdoor Learning: Training Clean Models on Poisoned
Data", NeurIPS 2021; reference code ``bboylyg/ABL`` @ 3fd736c (``backdoor_isolation.py``,
``backdoor_unlearning.py``). GCleaner (Table 3) "transfers ABL" to graphs without settings.

Threat model: training set. The defender sees the (possibly poisoned) training set and trains
its own model from scratch; it never sees the trigger, the target or the poison indices.

Algorithm (spec item 17):

1. Isolation training: a fresh model trained for ``isolation_epochs`` with the local gradient
   ascent loss ``sign(l - gamma) * l`` on each batch's mean cross-entropy ``l`` (LGA; or
   Flooding ``|l - gamma| + gamma``), which keeps the loss of easy examples near ``gamma`` while
   backdoor examples, learned faster, fall below it.
2. Isolation: per-graph cross-entropy under the model (eval mode); the lowest
   ``isolation_ratio`` fraction is isolated (reported as ``DefenseResult.flagged``, so the
   runner scores the isolation's precision/recall against the true poison set).
3. Continued training on the other graphs for ``finetune_epochs`` with the run's settings.
4. Unlearning: gradient *ascent* on the isolated graphs (minimise ``-CE``) for
   ``unlearning_epochs`` with SGD (lr ``unlearning_lr``, momentum 0.9, Nesterov, weight decay
   1e-4, batch 64) as in the release.

Parameters
----------
isolation_epochs : int, default 10, in [1, 1000]
    Epochs of the isolation phase (release ``tuning_epochs`` = 10; the spec allows 10-20).
gamma : float, default 0.5, in (0, 10]
    LGA threshold / flooding level.
ascent : str, default "lga", one of lga, flooding
    Isolation loss (spec: LGA; the release's default is Flooding).
isolation_ratio : float, default 0.01, in (0, 0.5]
    Fraction of the training set isolated (at least one graph).
finetune_epochs : int or None, default None (the run's training epochs), in [0, 1000]
    Continued training on the non-isolated graphs.
unlearning_epochs : int, default 5, in [0, 1000]
unlearning_lr : float, default 0.0005, in (0, 1]
freeze_bn : bool, default True
    Keep BatchNorm statistics frozen during unlearning.

Known deviations: phases 1 and 3 use the run's optimiser and learning rate (Adam 0.005 by
default), not the release's SGD 0.1 schedule for CIFAR ResNets; the release's unlearning loop
spends its first epoch only evaluating, ours ascends in every epoch. During unlearning the
release keeps BatchNorm in training mode; ``freeze_bn`` (our default) keeps the running
statistics of the clean-trained model, because a handful of isolated (mostly triggered) graphs
would otherwise shift them towards the trigger's statistics and cost clean accuracy. When the
ascent diverges (a non-finite loss), ours keeps the last model with a finite loss and stops
(``info["unlearning_stopped"]`` says where); the release has no check.

Example
-------
>>> ABL(isolation_ratio=0.05).isolation_ratio
0.05
"""
from __future__ import annotations

import copy
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from dglcleaner.api import DefenseContext, DefenseResult, PluginBase, ThreatModel
from dglcleaner.params import Param

UNLEARN_BATCH = 64


def lga_loss(gamma: float):
    """Local gradient ascent: ``sign(l - gamma) * l`` on the batch-mean cross-entropy."""
    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(logits, y)
        return torch.sign(ce - gamma) * ce
    return loss


def flooding_loss(gamma: float):
    """Flooding: ``|l - gamma| + gamma`` on the batch-mean cross-entropy."""
    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(logits, y)
        return (ce - gamma).abs() + gamma
    return loss


def per_graph_loss(model, graphs, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each graph under ``model`` in eval mode (CPU tensor)."""
    from dglcleaner.training import predict_logits

    logits = predict_logits(model, graphs)
    return F.cross_entropy(logits, torch.as_tensor(labels, dtype=torch.long).cpu(),
                           reduction="none")


def lowest(values: torch.Tensor, count: int) -> List[int]:
    """Indices of the ``count`` smallest values (ties: lower index first)."""
    order = torch.argsort(values, stable=True)
    return sorted(order[:count].tolist())


class ABL(PluginBase):
    """Anti-backdoor learning on graphs: LGA isolation, continued training, unlearning."""

    name = "abl"
    kind = "defense"
    task = "graph"
    summary = "Anti-backdoor learning: isolate lowest-loss graphs, then unlearn them."
    paper = ("Li, Lyu, Koren, Lyu, Li, Ma. Anti-Backdoor Learning: Training Clean Models on "
             "Poisoned Data. NeurIPS 2021. https://arxiv.org/abs/2110.11571")
    threat_model = ThreatModel.TRAINING_SET
    params = (
        Param("isolation_epochs", int, 10, "epochs of LGA isolation training", low=1, high=1000),
        Param("gamma", float, 0.5, "LGA threshold / flooding level", low=0.0, high=10.0,
              low_open=True),
        Param("ascent", str, "lga", "isolation loss", choices=("lga", "flooding")),
        Param("isolation_ratio", float, 0.01, "fraction of training graphs isolated",
              low=0.0, high=0.5, low_open=True),
        Param("finetune_epochs", int, None, "continued training on the rest (None: run's epochs)",
              low=0, high=1000, nullable=True),
        Param("unlearning_epochs", int, 5, "gradient-ascent epochs on the isolated graphs",
              low=0, high=1000),
        Param("unlearning_lr", float, 0.0005, "unlearning learning rate (SGD)", low=0.0,
              high=1.0, low_open=True),
        Param("freeze_bn", bool, True, "freeze BatchNorm statistics while unlearning"),
    )
    presets = {"official": {"ascent": "flooding", "freeze_bn": False}}

    def unlearn(self, model, graphs, labels: torch.Tensor, seed: int,
                device: torch.device) -> Tuple[List[float], Optional[str]]:
        """Gradient ascent on ``graphs``. Returns the mean CE of each epoch (should grow) and,
        when the ascent diverged, why it stopped (else ``None``).

        Unbounded ascent can drive the loss to infinity (seen on Bitcoin, where sum pooling
        over hub nodes gives large logits). At the first non-finite loss the model goes back
        to its state before the step that caused it and unlearning stops: the last model whose
        loss on the isolated graphs was finite (the release has no such check and would go on
        with NaN weights)."""
        from dglcleaner.training import batches

        opt = torch.optim.SGD(model.parameters(), lr=self.unlearning_lr, momentum=0.9,
                              weight_decay=1e-4, nesterov=True)
        gen = torch.Generator().manual_seed(int(seed))
        labels = torch.as_tensor(labels, dtype=torch.long)
        history: List[float] = []
        before_step: Optional[Dict[str, torch.Tensor]] = None  # state before the last step
        for epoch in range(self.unlearning_epochs):
            model.train()
            if self.freeze_bn:
                for m in model.modules():
                    if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                        m.eval()
            total, count = 0.0, 0
            for step, (bg, y, _) in enumerate(batches(graphs, labels, UNLEARN_BATCH,
                                                      shuffle=True, generator=gen,
                                                      device=device)):
                ce = F.cross_entropy(model(bg, bg.ndata["feat"]), y)
                if not torch.isfinite(ce):
                    if count:
                        history.append(total / count)
                    model.eval()
                    where = f"non-finite loss at epoch {epoch} step {step}"
                    if before_step is None:
                        return history, f"{where}, before any step; model unchanged"
                    model.load_state_dict(before_step)
                    return history, f"{where}; kept the model before the previous step"
                before_step = copy.deepcopy(model.state_dict())
                opt.zero_grad()
                (-ce).backward()
                opt.step()
                total += float(ce.detach()) * len(y)
                count += len(y)
            history.append(total / max(count, 1))
        model.eval()
        return history, None

    def run(self, ctx: DefenseContext) -> DefenseResult:
        from dglcleaner.seeding import derive_seed

        graphs, labels = ctx.train_graphs, ctx.train_labels
        n = len(graphs)
        model = ctx.build_model()
        loss_fn = lga_loss(self.gamma) if self.ascent == "lga" else flooding_loss(self.gamma)
        ctx.train(model, graphs, labels, epochs=self.isolation_epochs, loss_fn=loss_fn)

        losses = per_graph_loss(model, graphs, labels)
        count = min(n - 1, max(1, int(round(self.isolation_ratio * n)))) if n > 1 else n
        isolated = lowest(losses, count)
        iso_set = set(isolated)
        rest = [i for i in range(n) if i not in iso_set]

        if rest and self.finetune_epochs != 0:
            over = {} if self.finetune_epochs is None else {"epochs": self.finetune_epochs}
            ctx.train(model, [graphs[i] for i in rest], labels[rest], **over)
        history, stopped = [], None
        if self.unlearning_epochs:
            history, stopped = self.unlearn(model, [graphs[i] for i in isolated],
                                            labels[isolated],
                                            derive_seed(ctx.seed, "abl", "unlearn"), ctx.device)
        model.eval()
        info = {"isolated": len(isolated),
                "isolation_loss_threshold": float(losses[isolated].max()) if isolated else None,
                "unlearning_ce": history}
        if stopped:
            info["unlearning_stopped"] = stopped
        return DefenseResult(model=model, flagged=isolated, info=info)
