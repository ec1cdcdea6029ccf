"""The CSR edge-weighted sum equals DGL's ``u_mul_e_sum`` in value and in gradients.

Values agree to floating-point rounding, not bitwise on every CPU: torch's CSR product is MKL's,
whose AVX-512 kernels (Intel CPUs) fuse multiply-adds where DGL's loop rounds each product;
MKL's compatible kernels (``MKL_CBWR=COMPATIBLE``, or what MKL runs on AMD CPUs) give DGL's
bits. Where both sides are DGL's op, the tests still ask for equality.
"""
import pytest
import torch

from dglcleaner._dgl import dgl
from dglcleaner.models.weighted_sum import fast_path, u_mul_e_sum


def _graph(idtype):
    torch.manual_seed(0)
    return dgl.rand_graph(30, 120).astype(idtype)


@pytest.mark.parametrize("idtype", [torch.int64, torch.int32])
def test_values_and_gradients_match_dgl(idtype):
    g = _graph(idtype)
    x = torch.randn(30, 5, dtype=torch.float64, requires_grad=True)
    w = torch.rand(120, dtype=torch.float64, requires_grad=True)
    assert fast_path(g, x, w)
    ours, ref = u_mul_e_sum(g, x, w), dgl.ops.u_mul_e_sum(g, x, w)
    # each row summed in DGL's edge order; a fused multiply-add rounds once per product less
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    # first and second order, as the differentiable heat maps need
    ga = torch.autograd.grad(ours.pow(2).sum(), (x, w), create_graph=True)
    gb = torch.autograd.grad(ref.pow(2).sum(), (x, w), create_graph=True)
    for a, b in zip(ga, gb):
        assert torch.allclose(a, b, atol=1e-10)
    ha = torch.autograd.grad(ga[0].sin().sum() + ga[1].pow(2).sum(), (x, w))
    hb = torch.autograd.grad(gb[0].sin().sum() + gb[1].pow(2).sum(), (x, w))
    for a, b in zip(ha, hb):
        assert torch.allclose(a, b, atol=1e-9)


def test_gradcheck_first_and_second_order():
    g = _graph(torch.int64)
    x = torch.randn(30, 3, dtype=torch.float64, requires_grad=True)
    w = torch.rand(120, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: u_mul_e_sum(g, a, b), (x, w))
    assert torch.autograd.gradgradcheck(lambda a, b: u_mul_e_sum(g, a, b), (x, w))


def test_column_weights_keep_their_shape_and_float32_matches():
    g = _graph(torch.int64)
    x = torch.randn(30, 4, requires_grad=True)
    w = torch.rand(120, 1, requires_grad=True)
    out = u_mul_e_sum(g, x, w)
    torch.testing.assert_close(out, dgl.ops.u_mul_e_sum(g, x, w), rtol=1e-6, atol=1e-6)
    out.sum().backward()
    assert w.grad.shape == (120, 1)


def test_other_inputs_take_dgls_op():
    empty = dgl.graph(([], []), num_nodes=4)
    assert not fast_path(empty, torch.ones(4, 2), torch.ones(0))
    assert torch.equal(u_mul_e_sum(empty, torch.ones(4, 2), torch.ones(0)), torch.zeros(4, 2))
    g = _graph(torch.int64)
    assert not fast_path(g, torch.ones(30, 2), torch.ones(120, dtype=torch.float64))
    coo_only = g.formats("coo")  # DGL's op still works on it; CSR arrays cannot be made
    assert not fast_path(coo_only, torch.ones(30, 2), torch.ones(120))
    assert torch.equal(u_mul_e_sum(coo_only, torch.ones(30, 2), torch.ones(120)),
                       dgl.ops.u_mul_e_sum(g, torch.ones(30, 2), torch.ones(120)))
    x3 = torch.randn(30, 2, 3)
    w = torch.rand(120)
    out = u_mul_e_sum(g, x3, w.reshape(120, 1, 1))
    assert torch.equal(out, dgl.ops.u_mul_e_sum(g, x3, w.reshape(120, 1, 1)))


@pytest.mark.parametrize("in_dim", [3, 12])  # narrower and wider than the output
@pytest.mark.parametrize("layer", ["gcn", "sage"])
def test_gcn_and_sage_layers_match_dgl_with_edge_weights(layer, in_dim):
    from dgl.nn import GraphConv, SAGEConv

    from dglcleaner.models.gcn import _GraphConv
    from dglcleaner.models.sage import _SAGEConv

    torch.manual_seed(0)
    g = dgl.rand_graph(25, 90)  # some nodes have no in- or out-edges
    if layer == "gcn":
        ours, ref_cls = _GraphConv(in_dim, 6, norm="both", allow_zero_in_degree=True), GraphConv
    else:
        ours, ref_cls = _SAGEConv(in_dim, 6, "mean"), SAGEConv
    x = torch.randn(25, in_dim, requires_grad=True)
    w = torch.rand(90, requires_grad=True)
    out = ours(g, x, edge_weight=w)
    grads = torch.autograd.grad(out.sin().sum(), [x, w] + list(ours.parameters()))
    ours.__class__ = ref_cls
    ref = ours(g, x, edge_weight=w)
    ref_grads = torch.autograd.grad(ref.sin().sum(), [x, w] + list(ours.parameters()))
    assert torch.allclose(out, ref, atol=1e-6)
    for a, b in zip(grads, ref_grads):
        assert torch.allclose(a, b, atol=1e-5)
    # unweighted calls are DGL's own forward
    ours.__class__ = _GraphConv if layer == "gcn" else _SAGEConv
    assert torch.equal(ours(g, x), ref_cls.forward(ours, g, x))


@pytest.mark.parametrize("weighted", [False, True])
def test_gat_layer_matches_dgl(weighted):
    from dgl.nn import GATConv

    from dglcleaner.models.gat import _GATConv

    torch.manual_seed(0)
    g = dgl.add_self_loop(dgl.rand_graph(25, 90))
    ours = _GATConv(7, 6, num_heads=1, allow_zero_in_degree=True)
    x = torch.randn(25, 7, requires_grad=True)
    w = torch.rand(g.num_edges(), requires_grad=True) if weighted else None
    inputs = [x] + ([w] if weighted else []) + list(ours.parameters())
    out = ours(g, x, edge_weight=w)
    grads = torch.autograd.grad(out.sin().sum(), inputs)
    ours.__class__ = GATConv
    ref = ours(g, x, edge_weight=w)
    ref_grads = torch.autograd.grad(ref.sin().sum(), inputs)
    assert out.shape == ref.shape == (25, 1, 6)
    assert torch.allclose(out, ref, atol=1e-6)
    for a, b in zip(grads, ref_grads):
        assert torch.allclose(a, b, atol=1e-5)
