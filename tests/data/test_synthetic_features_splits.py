"""Synthetic data, featurizers and splits."""
import json

import pytest
import torch

from dglcleaner._dgl import dgl
from dglcleaner.data import (FEATURE_MODES, Featurizer, GraphDataset, make_featurizer,
                             make_synthetic, official_holding, split_dataset)
from dglcleaner.errors import DataError, ParameterError, UnknownNameError, UserError


@pytest.fixture(scope="module")
def syn():
    return make_synthetic(60, seed=3)


def test_synthetic_deterministic_and_balanced(syn):
    again = make_synthetic(60, seed=3)
    other = make_synthetic(60, seed=4)
    assert syn.labels.tolist() == again.labels.tolist()
    for a, b in zip(syn.graphs, again.graphs):
        assert a.num_nodes() == b.num_nodes()
        assert torch.equal(torch.stack(a.edges()), torch.stack(b.edges()))
    assert [g.num_nodes() for g in syn.graphs] != [g.num_nodes() for g in other.graphs]
    assert syn.stats()["class_counts"] == [30, 30]
    assert all(10 <= g.num_nodes() <= 30 for g in syn.graphs)
    assert "node_label" in syn.graphs[0].ndata


def test_synthetic_classes_separable_by_degree(syn):
    # Learnability proxy: the leaf fraction alone separates the classes (trees ~50% leaves).
    for g, y in zip(syn.graphs, syn.labels.tolist()):
        leaves = float((g.in_degrees() == 1).float().mean())
        assert (leaves > 0.3) if y == 0 else (leaves < 0.2)
        assert not bool((g.edges()[0] == g.edges()[1]).any())
        assert dgl.to_bidirected(g).num_edges() == g.num_edges()  # symmetric, no duplicates


def test_degree_featurizer(syn):
    fit = list(range(10))
    fz = make_featurizer("degree_onehot", syn, fit_idx=fit)
    max_deg = max(int(syn.graphs[i].in_degrees().max()) for i in fit)
    assert fz.dim == max_deg + 5
    before = [set(g.ndata.keys()) for g in syn.graphs]
    out = fz.apply(syn.graphs)
    assert [set(g.ndata.keys()) for g in syn.graphs] == before  # input untouched
    g = out[0]
    assert g.ndata["feat"].dtype == torch.float32 and g.ndata["feat"].shape == (g.num_nodes(), fz.dim)
    assert torch.equal(g.ndata["feat"].argmax(1), g.in_degrees().clamp(max=fz.max_degree))
    # refresh after a structural edit: a hub far above max_degree clips to the last column
    n = g.num_nodes()
    h = dgl.add_edges(g, torch.zeros(n - 1, dtype=torch.int64), torch.arange(1, n))
    h = dgl.add_edges(h, torch.arange(1, n), torch.zeros(n - 1, dtype=torch.int64))
    stale = h.ndata["feat"].clone()
    r = fz.refresh(h)
    assert r is not h and torch.equal(h.ndata["feat"], stale)  # refresh returns a new graph
    assert int(r.ndata["feat"][0].argmax()) == min(int(r.in_degrees()[0]), fz.max_degree)
    assert not torch.equal(r.ndata["feat"], stale)


def test_node_label_featurizer_and_refresh_keeps_rows(syn):
    fz = make_featurizer("node_label_onehot", syn)
    assert fz.dim == len(torch.unique(torch.cat([g.ndata["node_label"] for g in syn.graphs])))
    g = fz.apply(syn.graphs[:1])[0]
    assert torch.equal(g.ndata["feat"].sum(1), torch.ones(g.num_nodes()))
    h = dgl.add_nodes(g, 2)  # DGL zero-fills feat/node_label of the new nodes
    r = fz.refresh(h)
    assert torch.equal(r.ndata["feat"][-2:], torch.zeros(2, fz.dim))
    assert torch.equal(r.ndata["feat"][:-2], g.ndata["feat"])


def test_featurizer_round_trip_and_errors(syn):
    for mode in ("degree_onehot", "node_label_onehot"):
        fz = make_featurizer(mode, syn)
        back = Featurizer.from_dict(json.loads(json.dumps(fz.to_dict())))
        assert back.mode == fz.mode and back.dim == fz.dim
        assert torch.equal(back(syn.graphs[5]), fz(syn.graphs[5]))
    with pytest.raises(UnknownNameError, match="Valid feature modes"):
        make_featurizer("degre_onehot", syn)
    with pytest.raises(DataError, match="attributes"):
        make_featurizer("attributes", syn)
    assert set(FEATURE_MODES) == {"degree_onehot", "node_label_onehot", "attributes"}


def test_attributes_featurizer():
    g = dgl.graph(([0, 1], [1, 0]), num_nodes=2)
    g.ndata["attr"] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    ds = GraphDataset("a", [g], torch.tensor([0]), 1, {0: 0})
    fz = make_featurizer("attributes", ds)
    assert fz.dim == 2 and torch.equal(fz.apply([g])[0].ndata["feat"], g.ndata["attr"])


def test_split_sizes_disjoint_deterministic():
    s = split_dataset(1000, seed=1)
    assert len(s.train_idx) == 800 and len(s.test_idx) == 200
    assert len(s.holding_idx) == 30 and len(s.eval_idx) == 170
    tr, te = set(s.train_idx.tolist()), set(s.test_idx.tolist())
    ho, ev = set(s.holding_idx.tolist()), set(s.eval_idx.tolist())
    assert not tr & te and tr | te == set(range(1000))
    assert ho <= te and not ho & ev and ho | ev == te
    assert torch.equal(s.train_idx, torch.sort(s.train_idx).values)
    s2 = split_dataset(1000, seed=1)
    assert all(torch.equal(getattr(s, k), getattr(s2, k)) for k in ("train_idx", "holding_idx"))
    assert not torch.equal(split_dataset(1000, seed=2).train_idx, s.train_idx)


def test_split_errors():
    for kw in ({"train_ratio": 1.0}, {"train_ratio": 0.0}, {"holding_ratio": 0.0},
               {"holding_ratio": 0.5}):
        with pytest.raises(ParameterError):
            split_dataset(100, **kw)


def test_holding_label_agnostic_and_official():
    # split_dataset never sees labels, so holding depends only on (N, seed): same for any labels
    s = split_dataset(400, seed=0)
    labels = torch.arange(400) % 2
    off = official_holding(labels, s, target_label=1, fraction=0.25, seed=0)
    assert len(off.holding_idx) > 0 and bool((labels[off.holding_idx] != 1).all())
    assert not set(off.holding_idx.tolist()) & set(off.eval_idx.tolist())
    assert len(off.eval_idx) == len(s.test_idx) - round(0.25 * len(s.test_idx))
    assert isinstance(ParameterError("x"), UserError)
