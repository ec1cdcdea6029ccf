"""The training speed-ups change no bit: same seed, same trained parameters as before them.

The reference is the code before the speed-ups, kept here: DGL's own ``GINConv`` and Adam/SGD
with PyTorch's default (per-parameter) implementation on CPU.
"""
import os

import pytest
import torch

from dglcleaner._dgl import dgl  # before any other dgl import (see dglcleaner._dgl)
from dgl.nn import GINConv

from dglcleaner import training
from dglcleaner.data import load_dataset, make_featurizer, make_synthetic, split_dataset
from dglcleaner.models import build_model
from dglcleaner.models.gin import _GINConv
from dglcleaner.seeding import derive_seed, seed_everything
from dglcleaner.training import TrainConfig, predict_logits, train_model


def reference_optimizer(model, cfg):
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def _train(arch, graphs, labels, in_dim, num_classes, cfg, *, reference, monkeypatch):
    """Train and predict, with the current code or the reference."""
    seed_everything(0)
    model = build_model(arch, in_dim, num_classes)
    with monkeypatch.context() as m:
        if reference:
            m.setattr(training, "make_optimizer", reference_optimizer)
            for conv in getattr(model, "convs", []):
                if isinstance(conv, _GINConv):
                    conv.__class__ = GINConv
        train_model(model, graphs, labels, cfg, seed=7)
        logits = predict_logits(model, graphs)
    return model.state_dict(), logits


def _assert_bitwise(a, b):
    sd_a, logits_a = a
    sd_b, logits_b = b
    assert list(sd_a) == list(sd_b)
    for k in sd_a:
        assert torch.equal(sd_a[k], sd_b[k]), f"parameter {k} differs"
    assert torch.equal(logits_a, logits_b)


@pytest.fixture(scope="module")
def synthetic():
    ds = make_synthetic(160, seed=2)
    feat = make_featurizer("degree_onehot", ds)
    return feat.apply(ds.graphs), ds.labels, feat.dim, ds.num_classes


@pytest.mark.parametrize("arch", ["gin", "gcn", "sage"])
def test_training_is_bitwise_unchanged_on_synthetic(arch, synthetic, monkeypatch):
    graphs, labels, in_dim, num_classes = synthetic
    # 3 epochs: the first batches with dgl.batch, the next two from the pack; lr decay at 2
    cfg = TrainConfig(epochs=3, batch_size=32, step_size=2)
    new = _train(arch, graphs, labels, in_dim, num_classes, cfg, reference=False,
                 monkeypatch=monkeypatch)
    ref = _train(arch, graphs, labels, in_dim, num_classes, cfg, reference=True,
                 monkeypatch=monkeypatch)
    _assert_bitwise(new, ref)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_weight_decay_and_sgd_are_bitwise_unchanged(optimizer, synthetic, monkeypatch):
    graphs, labels, in_dim, num_classes = synthetic
    cfg = TrainConfig(epochs=2, batch_size=64, weight_decay=1e-3, optimizer=optimizer)
    new = _train("gin", graphs, labels, in_dim, num_classes, cfg, reference=False,
                 monkeypatch=monkeypatch)
    ref = _train("gin", graphs, labels, in_dim, num_classes, cfg, reference=True,
                 monkeypatch=monkeypatch)
    _assert_bitwise(new, ref)


@pytest.mark.parametrize("eps", [0.0, 0.25])
def test_gin_conv_matches_dgl_with_edge_weights(eps, synthetic):
    graphs = synthetic[0][:20]
    bg = dgl.batch(graphs)
    torch.manual_seed(0)
    mlp = torch.nn.Linear(synthetic[2], 8)
    fast = _GINConv(mlp, aggregator_type="sum", init_eps=eps)
    slow = GINConv(mlp, aggregator_type="sum", init_eps=eps)
    outs = []
    for conv in (fast, slow):
        x = bg.ndata["feat"].clone().requires_grad_()
        w = torch.rand(bg.num_edges(), generator=torch.Generator().manual_seed(1),
                       requires_grad=True)
        mlp.zero_grad()
        for weights in (None, w):
            out = conv(bg, x, weights)
            (out * torch.arange(out.numel()).reshape(out.shape).sin()).sum().backward()
            outs.append(out.detach())
        outs += [x.grad, w.grad, mlp.weight.grad.clone()]
    half = len(outs) // 2
    assert torch.equal(outs[0], outs[half])  # unweighted: the same DGL kernel on both sides
    # with weights ours is torch's CSR product (MKL): DGL's values up to a fused multiply-add's
    # rounding on CPUs where MKL uses one (AVX-512); bitwise with MKL's compatible kernels
    for a, b in zip(outs[1:half], outs[half + 1:]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert set(bg.edata.keys()) == set()  # the caller's graph is untouched


@pytest.mark.skipif(not os.path.isdir(os.environ.get("DGLCLEANER_DATA_DIR", "")),
                    reason="DGLCLEANER_DATA_DIR unset; real-data test skipped")
def test_aids_gin_training_is_bitwise_unchanged(monkeypatch):
    data_dir = os.environ["DGLCLEANER_DATA_DIR"]
    ds = load_dataset("AIDS", data_dir, download=False)
    split = split_dataset(len(ds), train_ratio=0.8, holding_ratio=0.03,
                          seed=derive_seed(0, "split"))
    feat = make_featurizer("degree_onehot", ds, split.train_idx)
    idx = split.train_idx.tolist()
    graphs, labels = feat.apply([ds.graphs[i] for i in idx]), ds.labels[idx]
    cfg = TrainConfig(epochs=1)
    new = _train("gin", graphs, labels, feat.dim, ds.num_classes, cfg, reference=False,
                 monkeypatch=monkeypatch)
    ref = _train("gin", graphs, labels, feat.dim, ds.num_classes, cfg, reference=True,
                 monkeypatch=monkeypatch)
    _assert_bitwise(new, ref)


@pytest.mark.parametrize("weighted", [False, True])
def test_gin_layer_on_wide_inputs_matches_dgl(weighted):
    """Inputs wider than the MLP (projected before aggregation) give DGL's GINConv output and
    gradients up to floating-point rounding."""
    torch.manual_seed(0)
    g = dgl.rand_graph(40, 200)
    mlp = torch.nn.Sequential(torch.nn.Linear(300, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16))
    ours = _GINConv(mlp, aggregator_type="sum")
    x = torch.rand(40, 300, requires_grad=True)
    w = torch.rand(200, requires_grad=True) if weighted else None
    out = ours(g, x, w)
    ours.__class__ = GINConv
    ref = ours(g, x, w)
    assert torch.allclose(out, ref, atol=1e-5)
    ga = torch.autograd.grad(out.sum(), [x] + ([w] if weighted else []) + [mlp[0].weight])
    gb = torch.autograd.grad(ref.sum(), [x] + ([w] if weighted else []) + [mlp[0].weight])
    for a, b in zip(ga, gb):
        assert torch.allclose(a, b, atol=1e-4)


def test_smoothing_batches_train_bitwise_as_single_samples(synthetic):
    """Randomized smoothing's view builds whole batches (``make_batch``); training on it gives
    the same parameters as training on the same samples drawn one by one and batched."""
    from collections.abc import Sequence

    from dglcleaner_plugins.defenses.smoothing import ResampledGraphs

    graphs, labels, in_dim, num_classes = synthetic
    fz = make_featurizer("degree_onehot", make_synthetic(160, seed=2))

    class OneByOne(Sequence):   # the same view without the batch hook
        def __init__(self, view):
            self.view = view

        def __len__(self):
            return len(self.view)

        def __getitem__(self, i):
            return self.view[i]

    cfg = TrainConfig(epochs=3, batch_size=32, step_size=2)
    states = []
    for wrap in (lambda v: v, OneByOne):
        view = ResampledGraphs(graphs, 0.5, 3, fz, "bernoulli")
        seed_everything(0)
        model = build_model("gin", in_dim, num_classes)
        train_model(model, wrap(view), labels, cfg, seed=7)
        states.append(model.state_dict())
        assert view.count.sum() == 3 * len(graphs)
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k
