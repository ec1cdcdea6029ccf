"""Guided Backpropagation node importance.

Paper: Springenberg, Dosovitskiy, Brox, Riedmiller, "Striving for Simplicity: The All
Convolutional Net", ICLR workshop 2015; for graphs as in Pope et al. (CVPR 2019); one of the
heat-map sources of GCleaner's Table 6. Threat model: white box.

The gradient of the target logit with respect to the node features is taken with every ReLU's
backward pass replaced by the guided rule ``grad_in = relu(grad_out) * 1[x > 0]`` (negative
gradients are not propagated). ELU activations (GAT) get the same rule with ELU's derivative.
The replacement is scoped: a ``torch.overrides.TorchFunctionMode`` intercepts ``F.relu``,
``torch.relu``, ``Tensor.relu`` and ``F.elu`` (``nn.ReLU`` calls ``F.relu``) during this
explainer's forward pass only; no module or global function is patched. Other non-linearities
(GAT's LeakyReLU inside attention scores) keep their ordinary gradients.

Node score (Pope et al.'s gradient saliency): the L2 norm over features of the positive part of
the guided gradient, ``|| relu(dy^c/dX_n) ||_2``. As GCleaner's heat-map source (``heat_map``)
the guided gradient is kept differentiable in the model's parameters (second-order gradients
through the guided rule), so the heat-map loss trains the model.

Parameters: none.

Example
-------
>>> GuidedBackprop().name
'guided-bp'
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ._common import ExplainerBase


class _GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad_out.clamp(min=0) * (x > 0).to(grad_out.dtype)


class _GuidedELU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return torch.where(x > 0, x, alpha * torch.expm1(x))

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        deriv = torch.where(x > 0, torch.ones_like(x), ctx.alpha * torch.exp(x))
        return grad_out.clamp(min=0) * deriv, None


_RELUS = {F.relu, torch.relu, torch.Tensor.relu}


class _GuidedMode(TorchFunctionMode):
    """Routes ReLU/ELU calls to their guided versions while active."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _RELUS:
            return _GuidedReLU.apply(args[0])
        if func is F.elu:
            alpha = kwargs.get("alpha", args[1] if len(args) > 1 else 1.0)
            return _GuidedELU.apply(args[0], float(alpha))
        return func(*args, **kwargs)


def guided_gradients(model, graph, feat, target, create_graph: bool = False) -> torch.Tensor:
    """Guided-backprop gradient of the target logits w.r.t. the node features;
    ``create_graph``: keep it differentiable in the model's parameters."""
    x = feat.clone().requires_grad_(True)
    rows = torch.arange(graph.batch_size, device=feat.device)
    with _GuidedMode():
        logits = model(graph, x)
    return torch.autograd.grad(logits[rows, target].sum(), x, create_graph=create_graph)[0]


class GuidedBackprop(ExplainerBase):
    """Guided-backprop saliency per node (norm of the positive guided gradient)."""

    name = "guided-bp"
    summary = "Guided backpropagation saliency per node."
    paper = ("Springenberg et al. Striving for Simplicity: The All Convolutional Net. "
             "ICLR-W 2015; Pope et al. CVPR 2019")
    params = ()

    differentiable = True

    def _explain(self, model, graph, feat, target):
        with torch.enable_grad():
            grad = guided_gradients(model, graph, feat, target)
        return grad.clamp(min=0).norm(dim=1)

    def _heat(self, model, graph, feat, target):
        pos = guided_gradients(model, graph, feat, target, create_graph=True).clamp(min=0)
        # sqrt with an epsilon: the norm's gradient is undefined at the all-zero rows that the
        # positive part often leaves.
        return torch.sqrt((pos ** 2).sum(dim=1) + 1e-12)
