"""Base class of the graph classifiers.

Every classifier takes ``(graph, feat, edge_weight=None)`` and returns **raw logits**; every
graph-convolution layer honours ``edge_weight`` so that trigger edges with continuous weights
(GTA's topology generator, GCleaner's recovery) receive gradients. :meth:`forward_full` also
returns the graph embedding (the readout, input of the classifier head) and every conv
layer's node activations, which GCleaner's Grad-CAM loss and the explainers need.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .._dgl import dgl


@dataclass
class ModelOutput:
    """Logits ``(B, C)``, graph embeddings ``(B, H)`` and per-layer node activations."""

    logits: torch.Tensor
    graph_emb: torch.Tensor
    layers: List[torch.Tensor]


class GraphClassifier(nn.Module):
    """Common interface; subclasses implement :meth:`_convolve` and :meth:`_head`.

    Parameters
    ----------
    in_dim : int
        Node feature width.
    num_classes : int
        Number of graph classes.
    hidden : int, default 64
        Hidden width of every layer.
    num_layers : int
        Number of graph-convolution layers (architecture default when ``None``).
    dropout : float, default 0.5
        Dropout before the final linear layer.
    """

    arch: str = ""
    default_layers: int = 3

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 64,
                 num_layers: Optional[int] = None, dropout: float = 0.5) -> None:
        super().__init__()
        self.in_dim = int(in_dim)
        self.num_classes = int(num_classes)
        self.hidden = int(hidden)
        self.num_layers = int(num_layers or self.default_layers)
        self.dropout = float(dropout)

    # --- to implement -------------------------------------------------------------------
    def _convolve(self, g: "dgl.DGLGraph", feat: torch.Tensor,
                  edge_weight: Optional[torch.Tensor]) -> List[torch.Tensor]:
        """Return the node activations after each conv layer."""
        raise NotImplementedError

    def _readout(self, g: "dgl.DGLGraph", layers: List[torch.Tensor]) -> torch.Tensor:
        """Pool the last layer with ``self.pool`` (sum or mean, per architecture)."""
        return self.pool(g, layers[-1])  # type: ignore[attr-defined]

    def _head(self, hg: torch.Tensor) -> torch.Tensor:
        """Dropout then the linear classifier ``self.fc``."""
        return self.fc(F.dropout(hg, self.dropout, self.training))  # type: ignore[attr-defined]

    # --- public -------------------------------------------------------------------------
    def forward_full(self, graph: "dgl.DGLGraph", feat: torch.Tensor,
                     edge_weight: Optional[torch.Tensor] = None) -> ModelOutput:
        """Logits, graph embedding and per-layer node activations in one pass."""
        with graph.local_scope():
            layers = self._convolve(graph, feat, edge_weight)
            hg = self._readout(graph, layers)
            return ModelOutput(self._head(hg), hg, layers)

    def forward(self, graph: "dgl.DGLGraph", feat: torch.Tensor,
                edge_weight: Optional[torch.Tensor] = None,
                eweight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Raw logits ``(num_graphs, num_classes)``. ``eweight`` is an alias of
        ``edge_weight`` (DGL's explainers pass it under that name)."""
        if edge_weight is None:
            edge_weight = eweight
        return self.forward_full(graph, feat, edge_weight).logits

    def embed(self, graph: "dgl.DGLGraph", feat: torch.Tensor,
              edge_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Graph embeddings (the readout fed to the classifier head)."""
        return self.forward_full(graph, feat, edge_weight).graph_emb

    def conv_layers(self) -> List[nn.Module]:
        """The graph-convolution layers, input side first (Grad-CAM hooks use these)."""
        return list(self.convs)  # type: ignore[attr-defined]

    def config(self) -> Dict[str, Any]:
        """JSON description from which :func:`dglcleaner.models.build_model` rebuilds it."""
        return {
            "arch": self.arch,
            "in_dim": self.in_dim,
            "num_classes": self.num_classes,
            "hidden": self.hidden,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
        }


def with_self_loops(g: "dgl.DGLGraph", edge_weight: Optional[torch.Tensor]):
    """Add a self loop to every node (GCN/GAT need them); loops get weight 1."""
    n = g.num_nodes()
    loops = torch.arange(n, device=g.device, dtype=g.idtype)
    g2 = dgl.add_edges(g, loops, loops)
    if edge_weight is None:
        return g2, None
    ones = torch.ones(n, device=edge_weight.device, dtype=edge_weight.dtype)
    return g2, torch.cat([edge_weight, ones])
