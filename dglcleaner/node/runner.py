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
    device = device or torch.device("cpu")
    g_victim = dataset.graph(self_loops=True).to(device)
    g_attack = dataset.graph(self_loops=False).to(device)
    x_dense = dataset.features.to(device)
    density = float((x_dense != 0).float().mean())
    # Sparse bag-of-words features make the victims' input projection ~3x cheaper.
    with warnings.catch_warnings():  # torch's "sparse CSR is beta" notice is not for users
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        x_model = (x_dense.to_sparse_csr() if density < 0.1 and device.type == "cpu"
                   else x_dense)
    y = dataset.labels.to(device)
    c = dataset.num_classes
    model_kwargs: Dict[str, Any] = {}
    if model.lower() == "cpgcn":
        model_kwargs["clusters"] = community_labels(dataset.adj, c).to(device)
    total = splits * (len(budgets) + int(clean))
    done = 0
    runs: List[Dict[str, Any]] = []
    clean_accs: List[Optional[float]] = []
    by_budget: Dict[float, List[Optional[float]]] = {b: [] for b in budgets}
    for s in range(splits):
        split_seed = seed + s
        split = {k: v.to(device) for k, v in make_split(protocol, dataset.labels, c, split_seed).items()}
        if clean:
            r = defend_and_test(protocol, model, g_victim, x_model, y, y, split, c, seed, model_kwargs)
            clean_accs.append(None if r is None else r["acc"])
            runs.append({"split": s, "budget": 0.0, "flips": 0, "acc": None if r is None else r["acc"],
                         "skipped": r is None, "params": None if r is None else r["params"]})
            done += 1
            if progress:
                progress(f"split {s} clean", done, total)
        for b in budgets:
            k = budget_of(len(split["attackable"]), b)
            ctx = NodeAttackContext(graph=g_attack, features=x_dense, labels=y.clone(),
                                    labeled_idx=split["attackable"], num_classes=c, budget=k,
                                    seed=split_seed, device=device)
            t0 = time.perf_counter()
            res = attack.run(ctx)
            t_attack = time.perf_counter() - t0
            yp = res.labels.to(device)
            changed = torch.nonzero(yp != y).flatten()
            if len(changed) > k or not bool(torch.isin(changed, split["attackable"]).all()):
                raise RuntimeError(f"attack {attack.name} broke its budget or flipped unlabeled nodes")
            r = defend_and_test(protocol, model, g_victim, x_model, y, yp, split, c, seed, model_kwargs)
            by_budget[b].append(None if r is None else r["acc"])
            runs.append({"split": s, "budget": b, "budget_nodes": k, "flips": int(len(changed)),
                         "attack_seconds": round(t_attack, 4), "acc": None if r is None else r["acc"],
                         "skipped": r is None, "params": None if r is None else r["params"]})
            done += 1
            if progress:
                progress(f"split {s} budget {b:g}", done, total)
    summary: Dict[str, Any] = {
        "clean": {"acc": mean_std(clean_accs)} if clean else None,
        "by_budget": {f"{b:g}": {"acc": mean_std(v)} for b, v in by_budget.items()},
    }
    summary["poisoned"] = summary["by_budget"][f"{budgets[0]:g}"]
    return {"runs": runs, "summary": summary}
