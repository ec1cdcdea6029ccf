"""Grad-CAM node importance for graph classifiers (per graph).

Paper: Pope, Kolouri, Rostami, Martin, Hoffmann, "Explainability Methods for Graph Convolutional
Neural Networks", CVPR 2019 (Grad-CAM for graphs); the heat map GCleaner's unlearning loss uses
(its Eqs. 10-13). Threat model: white box (gradients of the class score).

For conv layer ``l`` with node activations ``F_l`` (``model.forward_full(...).layers``) and the
class score ``y^c`` (the logit of the target class):

``alpha_k = mean over the graph's nodes of dy^c/dF_l[n, k]`` (computed **per graph** of the
batch, not pooled over the batch as GCleaner's released code does), and
``heat_l[n] = ReLU(sum_k alpha_k F_l[n, k])``.

``layer="last"`` (default) uses the last conv layer; ``layer="all"`` averages the heat maps of all
conv layers (Pope et al.'s multi-layer variant); an integer ``layer`` picks one layer (0 = input
side; negative counts from the end).

Parameters
----------
layer : str, default "last"; "last", "all" or an integer index as text

Example
-------
>>> GradCAM(layer="all").layer
'all'
"""
from __future__ import annotations

from typing import List

import torch

from dglcleaner.errors import ParameterError
from dglcleaner.params import Param

from ._common import ExplainerBase, full_forward, node_graph_ids, segment_mean


def gradcam_heatmaps(model, graph, feat, target, layers: List[int]) -> List[torch.Tensor]:
    """Grad-CAM heat map ``(num_nodes,)`` of each requested conv layer (detached)."""
    # The model's parameters are frozen: track the input so the activations get a grad_fn.
    out = full_forward(model, graph, feat.detach().clone().requires_grad_(True))
    acts = [out.layers[i] for i in layers]
    rows = torch.arange(graph.batch_size, device=out.logits.device)
    score = out.logits[rows, target].sum()  # graphs are independent: one backward for all
    grads = torch.autograd.grad(score, acts, allow_unused=True)
    nid = node_graph_ids(graph)
    heats = []
    for act, grad in zip(acts, grads):
        if grad is None:  # a layer the readout does not depend on
            heats.append(torch.zeros(graph.num_nodes(), device=act.device))
            continue
        alpha = segment_mean(grad, nid, graph.batch_size)  # (B, K): per-graph channel weights
        heats.append(torch.relu((act * alpha[nid]).sum(dim=1)).detach())
    return heats


class GradCAM(ExplainerBase):
    """Per-graph Grad-CAM on the last (or every) conv layer."""

    name = "gradcam"
    summary = "Grad-CAM heat map per node (last conv layer, or all layers)."
    paper = ("Pope et al. Explainability Methods for Graph Convolutional Neural Networks. "
             "CVPR 2019")
    params = (Param("layer", str, "last", "conv layer: last, all, or an integer index"),)

    def __init__(self, preset=None, **params) -> None:
        super().__init__(preset, **params)
        text = str(self.layer).strip().lower()
        if text not in ("last", "all"):
            try:
                int(text)
            except ValueError:
                raise ParameterError(
                    f"parameter 'layer' must be last, all or an integer; got {self.layer!r}"
                ) from None
        self.layer = text

    def _layer_ids(self, model) -> List[int]:
        n = len(model.conv_layers()) if hasattr(model, "conv_layers") else None
        if self.layer == "last":
            return [-1]
        if self.layer == "all":
            if n is None:
                raise ParameterError("gradcam layer=all needs model.conv_layers()")
            return list(range(n))
        idx = int(self.layer)
        if n is not None and not -n <= idx < n:
            raise ParameterError(f"gradcam layer must be in [{-n}, {n - 1}] for this model; "
                                 f"got {idx}")
        return [idx]

    def _explain(self, model, graph, feat, target):
        with torch.enable_grad():
            heats = gradcam_heatmaps(model, graph, feat, target, self._layer_ids(model))
        return torch.stack(heats).mean(dim=0)
