"""Run one label-poisoning attack over budgets x splits under a protocol.

:func:`run_label_poisoning` returns ``{"runs": [per split x budget records], "summary": ...}``;
accuracies in percent, mean and population std (ddof=0, as the reference's ``np.std``) over the
splits that were not skipped.
"""
from __future__ import annotations

import time
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from ..api import NodeAttackContext
from .models import community_labels
from .protocol import Protocol, defend_and_test, make_split
from .splits import budget_of


def mean_std(values: Sequence[float]) -> Dict[str, Any]:
    """``{"mean", "std", "n"}`` (population std); NaN mean/std when empty."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    if arr.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": round(float(arr.mean()), 4), "std": round(float(arr.std()), 4), "n": int(arr.size)}


class NodeSetup:
    """One dataset prepared for a victim on a device: the graphs (victim with self-loops,
    attacker without), dense and model features, labels, CPGCN's communities."""

    def __init__(self, dataset: Any, model: str, device: Optional[torch.device] = None) -> None:
        self.dataset, self.model = dataset, model
        self.device = device = device or torch.device("cpu")
        self.g_victim = dataset.graph(self_loops=True).to(device)
        self.g_attack = dataset.graph(self_loops=False).to(device)
        self.x_dense = dataset.features.to(device)
        density = float((self.x_dense != 0).float().mean())
        # Sparse bag-of-words features make the victims' input projection ~3x cheaper.
        with warnings.catch_warnings():  # torch's "sparse CSR is beta" notice is not for users
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            self.x_model = (self.x_dense.to_sparse_csr() if density < 0.1 and device.type == "cpu"
                            else self.x_dense)
        self.y = dataset.labels.to(device)
        self.num_classes = c = dataset.num_classes
        self.model_kwargs: Dict[str, Any] = {}
        if model.lower() == "cpgcn":
            self.model_kwargs["clusters"] = community_labels(dataset.adj, c).to(device)

    def split(self, protocol: Protocol, split_seed: int) -> Dict[str, torch.Tensor]:
        return {k: v.to(self.device)
                for k, v in make_split(protocol, self.dataset.labels, self.num_classes,
                                       split_seed).items()}

    def clean_cell(self, protocol: Protocol, split: Dict[str, torch.Tensor],
                   seed: int = 0) -> Dict[str, Any]:
        """The victim trained on clean labels: ``{"acc", "val_acc", "skipped", "params"}``."""
        r = defend_and_test(protocol, self.model, self.g_victim, self.x_model, self.y, self.y,
                            split, self.num_classes, seed, self.model_kwargs)
        return _cell(r, flips=0)

    def attack_cell(self, attack: Any, protocol: Protocol, split: Dict[str, torch.Tensor],
                    split_seed: int, budget: float, seed: int = 0) -> Dict[str, Any]:
        """Poison ``ceil(budget * |attackable|)`` labels with ``attack``, check its contract,
        and test the victim: ``{"acc", "val_acc", "skipped", "params", "flips",
        "budget_nodes", "attack_seconds", "attack_info"}``."""
        k = budget_of(len(split["attackable"]), budget)
        ctx = NodeAttackContext(graph=self.g_attack, features=self.x_dense, labels=self.y.clone(),
                                labeled_idx=split["attackable"], num_classes=self.num_classes,
                                budget=k, seed=split_seed, device=self.device)
        t0 = time.perf_counter()
        res = attack.run(ctx)
        t_attack = time.perf_counter() - t0
        yp = res.labels.to(self.device)
        changed = torch.nonzero(yp != self.y).flatten()
        if len(changed) > k or not bool(torch.isin(changed, split["attackable"]).all()):
            raise RuntimeError(f"attack {attack.name} broke its budget or flipped unlabeled nodes")
        r = defend_and_test(protocol, self.model, self.g_victim, self.x_model, self.y, yp, split,
                            self.num_classes, seed, self.model_kwargs)
        return _cell(r, flips=int(len(changed)), budget_nodes=k,
                     attack_seconds=round(t_attack, 4), attack_info=dict(res.info or {}))


def _cell(r: Optional[Dict[str, Any]], **extra: Any) -> Dict[str, Any]:
    out = {"acc": None if r is None else r["acc"], "val_acc": None if r is None else r["val_acc"],
           "skipped": r is None, "params": None if r is None else r["params"]}
    out.update(extra)
    return out


def run_label_poisoning(
    dataset: Any,
    attack: Any,
    model: str = "gcn",
    budgets: Sequence[float] = (0.1,),
    splits: int = 10,
    protocol: Optional[Protocol] = None,
    seed: int = 0,
    device: Optional[torch.device] = None,
    progress: Optional[Callable[[str, int, int], None]] = None,
    clean: bool = True,
) -> Dict[str, Any]:
    """Attack ``dataset`` (a :class:`~dglcleaner.data.npz.NodeDataset`) with ``attack`` (a plugin
    instance) for each budget ratio in ``budgets`` and split ``seed .. seed+splits-1``; evaluate
    the victim ``model`` under ``protocol`` (default faithful). ``progress(msg, done, total)``."""
    from .protocol import get_protocol

    protocol = protocol or get_protocol("faithful")
    setup = NodeSetup(dataset, model, device)
    total = splits * (len(budgets) + int(clean))
    done = 0
    runs: List[Dict[str, Any]] = []
    clean_accs: List[Optional[float]] = []
    by_budget: Dict[float, List[Optional[float]]] = {b: [] for b in budgets}
    for s in range(splits):
        split_seed = seed + s
        split = setup.split(protocol, split_seed)
        if clean:
            r = setup.clean_cell(protocol, split, seed)
            clean_accs.append(r["acc"])
            runs.append({"split": s, "budget": 0.0, "flips": 0, "acc": r["acc"],
                         "skipped": r["skipped"], "params": r["params"]})
            done += 1
            if progress:
                progress(f"split {s} clean", done, total)
        for b in budgets:
            r = setup.attack_cell(attack, protocol, split, split_seed, b, seed)
            by_budget[b].append(r["acc"])
            runs.append({"split": s, "budget": b, "budget_nodes": r["budget_nodes"],
                         "flips": r["flips"], "attack_seconds": r["attack_seconds"],
                         "acc": r["acc"], "skipped": r["skipped"], "params": r["params"]})
            done += 1
            if progress:
                progress(f"split {s} budget {b:g}", done, total)
    summary: Dict[str, Any] = {
        "clean": {"acc": mean_std(clean_accs)} if clean else None,
        "by_budget": {f"{b:g}": {"acc": mean_std(v)} for b, v in by_budget.items()},
    }
    summary["poisoned"] = summary["by_budget"][f"{budgets[0]:g}"]
    return {"runs": runs, "summary": summary}
