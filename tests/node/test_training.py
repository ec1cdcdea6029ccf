"""The node trainer's speed paths change no numbers: trunk reuse, fused Adam, the dropout mask."""
from __future__ import annotations

import pytest
import torch

from dglcleaner.node.models import build_model, community_labels, dropout
from dglcleaner.node.training import adam, reset_seed, train_eval


class _Plain(torch.nn.Module):
    """Hides ``trunk``/``head`` so :func:`train_eval` takes the plain two-pass loop."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        if hasattr(inner, "aux_loss"):
            self.aux_loss = inner.aux_loss

    def forward(self, g, x):
        return self.inner(g, x)


def _fit(csbm, name: str, plain: bool):
    g, x, y = csbm.graph(self_loops=True), csbm.features, csbm.labels
    n = y.shape[0]
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(3))
    fit, val, test = idx[:40], idx[40:80], idx[80:]
    kw = {"clusters": community_labels(csbm.adj, csbm.num_classes)} if name == "cpgcn" else {}
    reset_seed(0)
    model = build_model(name, x.shape[1], csbm.num_classes, hidden=16, dropout=0.5, **kw)
    if plain:
        model = _Plain(model)
    r = train_eval(model, g, x, y, fit, y, val, y, test, epochs=60, patience=10)
    return r, [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("name", ["gcn", "gcn-jknet", "cpgcn"])
def test_trunk_reuse_equals_the_two_pass_loop(csbm, name):
    (r0, w0), (r1, w1) = _fit(csbm, name, plain=True), _fit(csbm, name, plain=False)
    assert r0 == r1 and r0["epochs_run"] > 1
    assert all(torch.equal(a, b) for a, b in zip(w0, w1))


def test_fused_adam_matches_the_default_adam():
    torch.manual_seed(0)
    w = [torch.randn(50, 8), torch.randn(8)]
    runs = []
    def plain(p, lr, weight_decay):
        return torch.optim.Adam(p, lr=lr, weight_decay=weight_decay)

    for make in (adam, plain):
        ps = [t.clone().requires_grad_() for t in w]
        opt = make(ps, lr=0.05, weight_decay=5e-4)
        for step in range(20):
            opt.zero_grad()
            (ps[0].sin().sum() * (step + 1) + (ps[1] ** 2).sum()).backward()
            opt.step()
        runs.append(ps)
    for a, b in zip(*runs):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_dropout_keeps_one_minus_p_and_rescales():
    h = torch.ones(200, 100)
    torch.manual_seed(0)
    out = dropout(h, 0.3, True)
    kept = out != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.01
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / 0.7))
    assert torch.equal(dropout(h, 0.3, False), h) and torch.equal(dropout(h, 0.0, True), h)
    assert torch.equal(dropout(h, 1.0, True), torch.zeros_like(h))
    torch.manual_seed(0)
    assert torch.equal(dropout(h, 0.3, True), out)  # seeded
    g = torch.ones(5, 4, requires_grad=True)
    torch.manual_seed(1)
    y = dropout(g, 0.5, True)
    y.sum().backward()
    assert torch.equal(g.grad, y.detach())  # gradient = mask / (1 - p), with h = 1
