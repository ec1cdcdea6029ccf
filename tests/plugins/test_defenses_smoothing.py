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


def _reference_subsample(g, beta, rng, fz, sampling):
    """The sampler before its speed-up: build, then featurizer.refresh (a second copy)."""
    from dglcleaner.graph_ops import from_pairs, undirected_pairs

    n = g.num_nodes()
    u, v = undirected_pairs(g)
    if sampling == "pairs":
        total = n * (n - 1) // 2
        k = int(beta * total)
        chosen = rng.choice(total, size=k, replace=False) if k else np.empty(0, dtype=np.int64)
        keep = np.isin(u * n - u * (u + 1) // 2 + (v - u - 1), chosen)
    else:
        keep = rng.random(len(u)) < beta
    return fz.refresh(from_pairs(n, u[keep], v[keep], g))


def test_sampler_gives_the_reference_graphs_bit_for_bit(synthetic_run):
    from dglcleaner.data.features import NodeLabelOneHot

    graphs, _ = synthetic_run.data["train"]
    graphs = graphs[:25]
    labelled = []
    for g in graphs:   # a second feature mode: per-node data carried over, not recomputed
        h = g.clone()
        h.ndata["node_label"] = torch.arange(h.num_nodes()) % 3
        labelled.append(h)
    for fz, gs in ((synthetic_run.data["featurizer"], graphs),
                   (NodeLabelOneHot([0, 1, 2]), labelled)):
        for sampling in ("bernoulli", "pairs"):
            view = ResampledGraphs(gs, 0.4, 11, fz, sampling)
            for i, g in enumerate(gs):
                for c in range(2):   # the second access uses the cached edge pairs
                    new = view[i]
                    ref = _reference_subsample(g, 0.4, np.random.default_rng([11, 0, i, c]),
                                               fz, sampling)
                    assert all(torch.equal(a, b) for a, b in zip(new.edges(), ref.edges()))
                    assert set(new.ndata) == set(ref.ndata)
                    for key in ref.ndata:
                        assert torch.equal(new.ndata[key], ref.ndata[key]), key
                    for key in g.ndata:   # the sample owns its node data
                        if key != "feat":
                            assert new.ndata[key].data_ptr() != g.ndata[key].data_ptr()


def test_make_batch_is_dgl_batch_of_the_samples(synthetic_run):
    """The training loop's batches: same graph, same samples, same counters."""
    from dglcleaner._dgl import dgl

    graphs, _ = synthetic_run.data["train"]
    fz = synthetic_run.data["featurizer"]
    labelled = []
    for g in graphs[:20]:
        h = g.clone()
        h.ndata["node_label"] = torch.arange(h.num_nodes()) % 3
        labelled.append(h)
    for sampling in ("bernoulli", "pairs"):
        a = ResampledGraphs(labelled, 0.4, 3, fz, sampling)
        b = ResampledGraphs(labelled, 0.4, 3, fz, sampling)
        for ids in ([4, 0, 17, 4], [9], list(range(20))):
            made = a.make_batch(ids)
            ref = dgl.batch([b[i] for i in ids])
            assert all(torch.equal(x, y) for x, y in zip(made.edges(), ref.edges()))
            assert torch.equal(made.batch_num_nodes(), ref.batch_num_nodes())
            assert torch.equal(made.batch_num_edges(), ref.batch_num_edges())
            assert set(made.ndata) == set(ref.ndata)
            for key in ref.ndata:
                assert torch.equal(made.ndata[key], ref.ndata[key]), key
        assert np.array_equal(a.count, b.count)
