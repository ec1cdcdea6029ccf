"""The small, cached experiment every check runs on: the embedded synthetic dataset (120
graphs), a GIN trained for a few epochs, and a Sub-BA-backdoored copy (for defenses).

Built once per device and process, so a test session that checks twenty plugins trains the
shared models once.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch

from .._dgl import dgl

#: Settings of the shared bench: tiny on purpose (the checks test contracts, not accuracy).
BENCH_EPOCHS = 3
BENCH_HIDDEN = 16
BENCH_SEED = 0
BENCH_GRAPHS = 120

_BENCHES: Dict[str, "Bench"] = {}


class Bench:
    """Shared data and models for the checks (see :func:`get_bench`)."""

    def __init__(self, device: str = "cpu", seed: int = BENCH_SEED) -> None:
        from ..runner import DefendConfig, SeedRun
        from ..training import TrainConfig

        self.cfg = DefendConfig(dataset="synthetic", attack="sub-ba", defense="none",
                                device=device, hidden=BENCH_HIDDEN, holding_ratio=0.1,
                                dataset_options={"num_graphs": BENCH_GRAPHS},
                                train=TrainConfig(epochs=BENCH_EPOCHS))
        self.run = SeedRun(self.cfg, seed)
        self.seed = seed

    @property
    def device(self) -> torch.device:
        return self.run.device

    @property
    def data(self) -> Dict[str, Any]:
        return self.run.data

    def eval_graphs(self, count: int = 6) -> Tuple[List[Any], torch.Tensor]:
        """A few clean evaluation graphs (with features) and their labels."""
        g, y = self.data["eval"]
        return list(g[:count]), y[:count].clone()

    def eval_batch(self, count: int = 4) -> Tuple[Any, torch.Tensor]:
        """A batched graph of ``count`` evaluation graphs (on the bench's device)."""
        graphs, y = self.eval_graphs(count)
        return dgl.batch(graphs).to(self.device), y

    def attack_context(self, seed: Optional[int] = None) -> Any:
        """An :class:`~dglcleaner.api.AttackContext` over the bench's clean training set,
        built as the runner builds it."""
        from ..api import AttackContext
        from ..runner import get_explainer
        from ..seeding import derive_seed

        d = self.data
        g, y = d["train"]
        return AttackContext(
            train_graphs=list(g), train_labels=y.clone(), num_classes=d["num_classes"],
            featurizer=d["featurizer"], target_label=self.cfg.target_label,
            injection_ratio=0.1, trigger_size=d["trigger_size"],
            seed=derive_seed(self.seed if seed is None else seed, "attack"),
            device=self.device, build_model=self.run.build_model, train=self.run.train,
            clean_model=self.run.clean_model, get_explainer=get_explainer)

    def defense_context(self, defense: Any) -> Any:
        """The context the runner hands ``defense`` (after a Sub-BA attack)."""
        from ..runner import defense_context

        return defense_context(self.run, defense)


def get_bench(device: str = "cpu") -> Bench:
    """The process-wide bench for ``device`` (built on first use)."""
    key = str(device)
    if key not in _BENCHES:
        _BENCHES[key] = Bench(key)
    return _BENCHES[key]


def make_node_problem(seed: int = 0, device: str = "cpu") -> Any:
    """A small label-poisoning problem: a 3-block stochastic block model with 60 nodes,
    noisy one-hot features, 24 labeled nodes and a budget of 5 flips."""
    from ..api import NodeAttackContext

    gen = torch.Generator().manual_seed(1234)
    n, c = 60, 3
    labels = torch.arange(n) % c
    same = labels[:, None] == labels[None, :]
    prob = torch.where(same, torch.tensor(0.25), torch.tensor(0.02))
    upper = torch.triu(torch.rand(n, n, generator=gen) < prob, diagonal=1)
    src, dst = upper.nonzero(as_tuple=True)
    g = dgl.graph((torch.cat([src, dst]), torch.cat([dst, src])), num_nodes=n)
    feat = torch.nn.functional.one_hot(labels, c).float() + 0.5 * torch.rand(n, c, generator=gen)
    labeled = torch.randperm(n, generator=gen)[:24].sort().values
    dev = torch.device(device)
    return NodeAttackContext(graph=g.to(dev), features=feat.to(dev), labels=labels.to(dev),
                             labeled_idx=labeled.to(dev), num_classes=c, budget=5, seed=seed,
                             device=dev)
