"""The cached sparse operators and the victims' fast propagation equal the dense / DGL maths."""
from __future__ import annotations

import pytest
import scipy.sparse as sp
import torch

from dglcleaner.node.models import APPNP, GCN, GCNJKNet, appnp_prop, build_model, graph_conv
from dglcleaner.node.sparse import SparseOp, feature_op, gcn_norm_op, spmm


def _rand_sparse(n, m, density, seed):
    return sp.random(n, m, density=density, format="csr", random_state=seed, dtype="float64")


def test_spmm_forward_backward_and_double_backward_match_dense():
    a = _rand_sparse(9, 7, 0.3, 0)
    op = SparseOp.from_scipy(a, torch.float64)
    dense = torch.from_numpy(a.toarray())
    h = torch.randn(7, 4, dtype=torch.float64, requires_grad=True)
    assert torch.allclose(op @ h, dense @ h)
    assert torch.allclose(op.T.mat.to_dense(), dense.T)
    # first and second derivatives through a nonlinearity, as in the meta-gradient
    def f(mm):
        g, = torch.autograd.grad((torch.tanh(mm(h)) ** 2).sum(), h, create_graph=True)
        return (g * torch.sin(h)).sum()
    g_sparse, = torch.autograd.grad(f(lambda t: spmm(op, t)), h)
    g_dense, = torch.autograd.grad(f(lambda t: dense @ t), h)
    assert torch.allclose(g_sparse, g_dense)
    assert torch.autograd.gradcheck(lambda t: spmm(op, t), (h.detach().requires_grad_(True),))


def test_with_values_keeps_the_transpose_consistent():
    a = _rand_sparse(6, 8, 0.4, 1)
    op = SparseOp.from_scipy(a, torch.float64)
    vals = torch.randn(a.nnz, dtype=torch.float64)
    op2 = op.with_values(vals)
    assert torch.allclose(op2.T.mat.to_dense(), op2.mat.to_dense().T)
    assert not torch.allclose(op2.mat.to_dense(), op.mat.to_dense())


def test_feature_op_is_cached_per_tensor():
    x = torch.from_numpy(_rand_sparse(10, 5, 0.3, 2).toarray()).float().to_sparse_csr()
    assert feature_op(x) is feature_op(x)
    assert torch.allclose(feature_op(x).mat.to_dense(), x.to_dense())


@pytest.fixture(scope="module")
def graph(csbm):
    return csbm.graph(self_loops=True)


def test_graph_conv_and_appnp_equal_the_dgl_modules(csbm, graph):
    torch.manual_seed(0)
    h = torch.randn(csbm.num_nodes, 16)
    for conv in (GCN(16, 3, hidden=16).conv1, GCN(16, 3, hidden=16).conv2, GCNJKNet(16, 3).conv2):
        assert torch.allclose(graph_conv(conv, graph, h), conv(graph, h), atol=1e-5)
    prop = APPNP(16, 3).prop
    assert torch.allclose(appnp_prop(prop, graph, h), prop(graph, h), atol=1e-5)
    assert gcn_norm_op(graph) is gcn_norm_op(graph)


@pytest.mark.parametrize("name", ["mlp", "gcn", "appnp", "gcn-jknet"])
def test_sparse_and_dense_features_give_the_same_training_step(csbm, graph, name):
    x = csbm.features.clone()
    x[x.abs() < 1.0] = 0.0  # make it sparse-ish
    outs = []
    for feats in (x, x.to_sparse_csr()):
        torch.manual_seed(0)
        # input dropout draws differ (dense: all entries, sparse: the non-zeros only)
        model = build_model(name, x.shape[1], csbm.num_classes, hidden=8, dropout=0.0)
        torch.manual_seed(1)
        loss = model(graph, feats).logsumexp(1).sum()
        loss.backward()
        outs.append((loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    assert torch.allclose(outs[0][0], outs[1][0], rtol=1e-5)
    for g0, g1 in zip(outs[0][1], outs[1][1]):
        assert torch.allclose(g0, g1, rtol=1e-4, atol=1e-5)
