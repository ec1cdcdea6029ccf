"""Randomized subsampling: the kept fraction is beta within sampling error; seeded."""
import math

import numpy as np
import torch

from dglcleaner.api import DefenseContext, ThreatModel
from dglcleaner_plugins.defenses.smoothing import (RandomizedSmoothing, ResampledGraphs,
                                                   subsample_graph)


def _edges(g):
    return g.num_edges() // 2


def test_kept_fraction_is_beta(synthetic_run):
    graphs, _ = synthetic_run.data["train"]
    fz = synthetic_run.data["featurizer"]
    total = sum(_edges(g) for g in graphs)
    for sampling in ("bernoulli", "pairs"):
        for beta in (0.1, 0.5):
            rng = np.random.default_rng(0)
            kept = sum(_edges(subsample_graph(g, beta, rng, fz, sampling)) for g in graphs)
            sd = math.sqrt(total * beta * (1 - beta))
            # 'pairs' keeps int(beta * n(n-1)/2) pairs: slightly under beta per edge
            assert abs(kept - beta * total) < 5 * sd + 0.02 * total, (sampling, beta, kept)


def test_subsample_only_removes_and_refreshes(synthetic_run):
    graphs, _ = synthetic_run.data["train"]
    fz = synthetic_run.data["featurizer"]
    g = graphs[0]
    h = subsample_graph(g, 0.5, np.random.default_rng(1), fz)
    src, dst = g.edges()
    old = set(zip(src.tolist(), dst.tolist()))
    s2, d2 = h.edges()
    assert set(zip(s2.tolist(), d2.tolist())) <= old
    assert torch.equal(h.ndata["feat"], fz(h))  # degree features follow the new structure
    assert g.num_edges() == len(old)  # input untouched


def test_resampled_view_is_fresh_per_access_and_seeded(synthetic_run):
    graphs, _ = synthetic_run.data["train"]
    fz = synthetic_run.data["featurizer"]
    a = ResampledGraphs(graphs[:10], 0.5, 7, fz, "bernoulli")
    b = ResampledGraphs(graphs[:10], 0.5, 7, fz, "bernoulli")
    first, second = a[3], a[3]
    assert len(a) == 10
    assert not torch.equal(first.edges()[0], second.edges()[0]) or first.num_edges() == 0
    assert torch.equal(b[3].edges()[0], first.edges()[0])


def test_run_transform_and_vote_deterministic(synthetic_run):
    d = synthetic_run.data
    graphs, labels = d["train"]
    ctx = DefenseContext(
        threat_model=ThreatModel.TRAINING_CONTROL, featurizer=d["featurizer"],
        num_classes=d["num_classes"], seed=5, device=torch.device("cpu"),
        build_model=synthetic_run.build_model,
        train=lambda m, g, y, **kw: synthetic_run.train(m, g, y, **{**kw, "epochs": 2}),
        train_graphs=graphs[:40], train_labels=labels[:40])
    torch.manual_seed(0)
    r1 = RandomizedSmoothing(beta=0.3).run(ctx)
    torch.manual_seed(0)
    r2 = RandomizedSmoothing(beta=0.3).run(ctx)
    for p, q in zip(r1.model.parameters(), r2.model.parameters()):
        assert torch.equal(p, q)
    t1, t2 = r1.transform(graphs[:8]), r1.transform(graphs[:8])
    assert [g.num_edges() for g in t1] == [g.num_edges() for g in t2]
    cert = RandomizedSmoothing(beta=0.3, certified=True, num_samples=5)
    torch.manual_seed(0)
    r3 = cert.run(ctx)
    assert r3.transform is None
    v1, v2 = r3.predict(r3.model, graphs[:8]), r3.predict(r3.model, graphs[:8])
    assert v1.shape == (8,) and torch.equal(v1, v2)
    assert int(v1.max()) < d["num_classes"]
