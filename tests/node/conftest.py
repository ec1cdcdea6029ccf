"""A small contextual stochastic block model (CSBM) graph for the label-poisoning tests."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from dglcleaner.api import NodeAttackContext
from dglcleaner.data.npz import NodeDataset, largest_component


def make_csbm(n: int = 300, c: int = 3, d: int = 24, p_in: float = 0.06, p_out: float = 0.008,
              mu: float = 1.0, seed: int = 0) -> NodeDataset:
    """Undirected SBM with class-dependent Gaussian features (LCC kept, classes unbalanced)."""
    rng = np.random.default_rng(seed)
    y = rng.choice(c, size=n, p=np.linspace(1.0, 0.5, c) / np.linspace(1.0, 0.5, c).sum())
    prob = np.where(y[:, None] == y[None, :], p_in, p_out)
    upper = np.triu(rng.random((n, n)) < prob, 1)
    adj = sp.csr_matrix((upper | upper.T).astype(np.float32))
    means = rng.normal(0, 1, (c, d)) * mu
    x = means[y] + rng.normal(0, 1.5, (n, d))
    keep = largest_component(adj)
    adj = adj[keep][:, keep].tocsr()
    return NodeDataset(name="csbm", adj=adj, features=torch.tensor(x[keep], dtype=torch.float32),
                       labels=torch.tensor(y[keep]), num_classes=c, node_ids=keep)


@pytest.fixture(scope="session")
def csbm() -> NodeDataset:
    return make_csbm()


def context(ds: NodeDataset, budget: int = 12, seed: int = 0, n_labeled: int = 60) -> NodeAttackContext:
    gen = torch.Generator().manual_seed(seed)
    labeled = torch.randperm(ds.num_nodes, generator=gen)[:n_labeled].sort().values
    return NodeAttackContext(graph=ds.graph(self_loops=False), features=ds.features,
                             labels=ds.labels.clone(), labeled_idx=labeled,
                             num_classes=ds.num_classes, budget=budget, seed=seed,
                             device=torch.device("cpu"))
