"""Splits, folds, budget rule, the defender's protocol, the runner and the npz reader."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from dglcleaner.errors import DataError, UnknownNameError
from dglcleaner.node.models import MODELS, build_model, community_labels
from dglcleaner.node.protocol import PROTOCOLS, defend_and_test, get_protocol, make_split
from dglcleaner.node.runner import run_label_poisoning
from dglcleaner.node.splits import budget_of, class_equal_split, random_split, stratified_folds
from dglcleaner_plugins.label_poisoning.rnd import RND
from dglcleaner_plugins.label_poisoning.sgc import SGCBin

FAST = dict(epochs=40, patience=10, n_folds=2)


def test_budget_rule():
    assert [budget_of(280, p) for p in (0.05, 0.1, 0.15, 0.2, 0.3)] == [14, 28, 42, 56, 84]
    assert [budget_of(120, p) for p in (0.05, 0.1, 0.15, 0.2, 0.3)] == [6, 12, 18, 24, 36]


def test_splits(csbm):
    tr, va, te = random_split(csbm.num_nodes, 3, seed=4)
    assert len(tr) == len(va) == 60
    allidx = torch.cat([tr, va, te])
    assert len(torch.unique(allidx)) == csbm.num_nodes
    tr2, _, _ = random_split(csbm.num_nodes, 3, seed=4)
    assert torch.equal(tr, tr2)
    tr, va, te = class_equal_split(csbm.labels, 3, seed=0, val_size=100)
    assert torch.bincount(csbm.labels[tr]).tolist() == [20, 20, 20]
    assert len(va) == 100


def test_stratified_folds(csbm):
    idx = torch.arange(0, 120)
    folds = stratified_folds(idx, csbm.labels, 5, seed=0)
    assert len(folds) == 5
    for fit, val in folds:
        assert len(set(fit.tolist()) & set(val.tolist())) == 0
        assert sorted(fit.tolist() + val.tolist()) == idx.tolist()
        for c in range(3):
            n_c = int((csbm.labels[idx] == c).sum())
            assert int((csbm.labels[fit] == c).sum()) == n_c // 2
    assert not torch.equal(folds[0][0], folds[1][0])


@pytest.mark.parametrize("model", MODELS)
def test_models_forward(csbm, model):
    extra = {"clusters": community_labels(csbm.adj, 3)} if model == "cpgcn" else {}
    net = build_model(model, csbm.features.shape[1], 3, **extra)
    out = net(csbm.graph(), csbm.features)
    assert out.shape == (csbm.num_nodes, 3)
    with pytest.raises(UnknownNameError):
        build_model("gin", 4, 3)


def test_protocols_and_skip_rule(csbm):
    assert set(PROTOCOLS) >= {"faithful", "flawed", "flawed-no-tuning"}
    p = get_protocol("faithful", n_trials=2, **FAST)
    split = make_split(p, csbm.labels, 3, seed=0)
    assert torch.equal(split["attackable"], torch.cat([split["train"], split["val"]]).sort().values)
    g = csbm.graph()
    r = defend_and_test(p, "gcn", g, csbm.features, csbm.labels, csbm.labels, split, 3)
    assert 50.0 < r["acc"] <= 100.0 and set(r["params"]) == {"lr", "weight_decay", "dropout"}
    # a class with 1..2 poisoned labels -> the split is skipped (reference behaviour, spec A5)
    yp = csbm.labels.clone()
    lab = split["attackable"]
    cls2 = lab[csbm.labels[lab] == 2]
    yp[cls2[1:]] = 0
    assert defend_and_test(p, "gcn", g, csbm.features, csbm.labels, yp, split, 3) is None
    flawed = make_split(get_protocol("flawed"), csbm.labels, 3, seed=0)
    assert torch.equal(flawed["attackable"], flawed["train"])
    for name in PROTOCOLS:
        sp_ = make_split(get_protocol(name), csbm.labels, 3, seed=1)
        parts = torch.cat([sp_["train"], sp_["val"], sp_["test"]])
        assert len(sp_["test"]) > 0 and len(torch.unique(parts)) == len(parts) == csbm.num_nodes
    with pytest.raises(UnknownNameError):
        get_protocol("honest")


def test_runner_poisoned_below_clean(csbm):
    p = get_protocol("flawed-no-tuning", **FAST)
    out = run_label_poisoning(csbm, SGCBin(), model="gcn", budgets=[0.3], splits=2, protocol=p)
    s = out["summary"]
    assert s["clean"]["acc"]["n"] == 2 and s["poisoned"]["acc"]["n"] == 2
    assert s["poisoned"]["acc"]["mean"] < s["clean"]["acc"]["mean"]
    flips = [r["flips"] for r in out["runs"] if r["budget"]]
    assert flips == [36, 36]
    again = run_label_poisoning(csbm, SGCBin(), model="gcn", budgets=[0.3], splits=2, protocol=p)
    assert again["summary"] == s
    rnd = run_label_poisoning(csbm, RND(), model="gcn", budgets=[0.3], splits=2, protocol=p, clean=False)
    assert rnd["summary"]["poisoned"]["acc"]["mean"] > s["poisoned"]["acc"]["mean"]


def test_npz_resolution_errors(tmp_path, monkeypatch):
    from dglcleaner.data.npz import load_npz_dataset

    with pytest.raises(UnknownNameError):
        load_npz_dataset("cora-ml-typo", data_dir=str(tmp_path))
    monkeypatch.delenv("DGLCLEANER_DATA_DIR", raising=False)
    monkeypatch.setenv("DGLCLEANER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DGLCLEANER_DOWNLOAD_BASE", (tmp_path / "nowhere").as_uri())
    with pytest.raises(DataError):
        load_npz_dataset("cora_ml", data_dir=str(tmp_path))


def test_npz_layout_and_download_base(tmp_path, monkeypatch, csbm):
    """A file served from DGLCLEANER_DOWNLOAD_BASE is cached; the LCC and symmetrisation apply."""
    import scipy.sparse as sp

    from dglcleaner.data.npz import load_npz_dataset

    a = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
    x = sp.csr_matrix(np.eye(4, dtype=np.float32))
    src = tmp_path / "srv"
    src.mkdir()
    np.savez(src / "cora.npz", adj_data=a.data, adj_indices=a.indices, adj_indptr=a.indptr,
             adj_shape=a.shape, attr_data=x.data, attr_indices=x.indices, attr_indptr=x.indptr,
             attr_shape=x.shape, labels=np.array([0, 1, 1, 0]))
    monkeypatch.delenv("DGLCLEANER_DATA_DIR", raising=False)
    monkeypatch.setenv("DGLCLEANER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DGLCLEANER_DOWNLOAD_BASE", src.as_uri())
    ds = load_npz_dataset("cora")
    assert (tmp_path / "cache" / "npz" / "cora.npz").is_file()
    assert ds.num_nodes == 2 and ds.adj.nnz == 2 and ds.adj.diagonal().sum() == 0
    assert ds.node_ids.tolist() == [0, 1] and ds.num_classes == 2


@pytest.mark.skipif(not os.environ.get("DGLCLEANER_DATA_DIR"), reason="DGLCLEANER_DATA_DIR unset")
def test_real_npz_statistics():
    from dglcleaner.data.npz import load_npz_dataset

    ds = load_npz_dataset("cora_ml")
    assert (ds.num_nodes, ds.info["num_edges"], ds.num_classes) == (2810, 7981, 7)
    assert (ds.adj != ds.adj.T).nnz == 0
    cs = load_npz_dataset("citeseer")
    assert (cs.num_nodes, cs.info["num_edges"], cs.num_classes) == (2110, 3668, 6)


def test_tune_reuses_repeated_configurations():
    """A configuration TPE samples again is not retrained, and the selection is unchanged."""
    from dglcleaner.node.tuning import tune

    calls = []

    def objective(params):
        calls.append(dict(params))
        key = (params["lr"], params["weight_decay"], params["dropout"])
        val = round((hash(key) % 1000) / 1000, 1)  # deterministic, with ties
        return val, (hash(key[::-1]) % 1000) / 1000

    best = tune("gcn", objective, n_trials=40, seed=0)
    assert best["trials"] == 40
    keys = [tuple(c.values()) for c in calls]
    assert len(keys) == len(set(keys)) < 40  # every distinct configuration evaluated once
    results = [objective(c) for c in list(calls)]
    assert (best["val_acc"], best["test_acc"]) == max(results)
