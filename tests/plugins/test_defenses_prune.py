"""Prune: removes exactly the edges with low endpoint similarity (and, isolate, their nodes)."""
import warnings

import pytest
import torch

from dglcleaner._dgl import dgl
from dglcleaner.api import DefenseContext, ThreatModel
from dglcleaner.graph_ops import undirected_pairs
from dglcleaner_plugins.defenses.prune import Prune, is_one_hot, prune_graph


class KeepFeat:
    """Stand-in featurizer for raw attributes (tests pass refresh_features=False)."""

    dim = 2

    def refresh(self, g):  # pragma: no cover - not called with refresh_features=False
        raise AssertionError("refresh must not be called")


def _graph():
    # path 0-1-2-3 plus edge 1-3; node 2 points away from the others
    u = torch.tensor([0, 1, 2, 1])
    v = torch.tensor([1, 2, 3, 3])
    g = dgl.graph((torch.cat([u, v]), torch.cat([v, u])), num_nodes=4)
    g.ndata["feat"] = torch.tensor([[1.0, 0.1], [1.0, 0.0], [-0.2, 1.0], [1.0, 0.2]])
    return g


def _edges(g):
    u, v = undirected_pairs(g)
    return set(zip(u.tolist(), v.tolist()))


def test_prune_removes_exactly_low_similarity_edges():
    g = _graph()
    before = _edges(g), g.ndata["feat"].clone()
    out = prune_graph(g, 0.1, KeepFeat(), refresh_features=False)
    # cos(1,2) < 0 and cos(2,3) ~ 0.0 < 0.1: only edges touching node 2 go
    assert _edges(out) == {(0, 1), (1, 3)}
    assert out.num_nodes() == 4
    assert _edges(g) == before[0] and torch.equal(g.ndata["feat"], before[1])  # input intact
    # threshold below every similarity: nothing removed
    assert _edges(prune_graph(g, -0.99, KeepFeat(), refresh_features=False)) == _edges(g)


def test_isolate_drops_incident_nodes():
    out = prune_graph(_graph(), 0.1, KeepFeat(), isolate=True, refresh_features=False)
    # UGBA's isolate: both ends of every dissimilar edge (1-2, 2-3) go; node 0 stays alone
    assert out.num_nodes() == 1 and out.num_edges() == 0
    assert torch.allclose(out.ndata["feat"][0], torch.tensor([1.0, 0.1]))
    # a graph whose every node would go keeps its nodes and loses only the bad edges
    g = _graph()
    g.ndata["feat"][0] = torch.tensor([-1.0, 0.0])
    out = prune_graph(g, 0.1, KeepFeat(), isolate=True, refresh_features=False)
    assert out.num_nodes() == 4 and _edges(out) == {(1, 3)}


def test_one_hot_detection():
    assert is_one_hot([torch.eye(3)])
    assert not is_one_hot([_graph().ndata["feat"]])


def test_run_warns_on_one_hot_trains_and_transforms(synthetic_run):
    d = synthetic_run.data
    graphs, labels = d["train"]
    graphs, labels = graphs[:60], labels[:60]
    ctx = DefenseContext(
        threat_model=ThreatModel.TRAINING_CONTROL, featurizer=d["featurizer"],
        num_classes=d["num_classes"], seed=1, device=torch.device("cpu"),
        build_model=synthetic_run.build_model,
        train=lambda m, g, y, **kw: synthetic_run.train(m, g, y, **{**kw, "epochs": 2}),
        train_graphs=graphs, train_labels=labels)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        res = Prune().run(ctx)
    assert sum("one-hot" in str(x.message) for x in w) == 1
    assert 0 < res.info["train_edges_kept"] < 1
    out = res.transform(graphs[:5])
    for g, h in zip(graphs[:5], out):
        assert _edges(h) <= _edges(g)
        assert h.ndata["feat"].shape == (g.num_nodes(), d["featurizer"].dim)
        # degree one-hot: only edges between equal-degree endpoints survive
        deg = g.in_degrees()
        assert all(int(deg[a]) == int(deg[b]) for a, b in _edges(h))
    again = res.transform(graphs[:5])
    assert [_edges(a) for a in out] == [_edges(b) for b in again]


def test_bad_threshold_is_a_user_error():
    from dglcleaner.errors import ParameterError

    with pytest.raises(ParameterError):
        Prune(threshold=2.0)
