"""The adaptive attack against GCleaner (paper Sec. 5.2.6, Eq. 16).

An attacker who knows GCleaner trains the backdoored model with
``L_adapt = L_atk - alpha * L_pq`` where ``L_pq = -cos(F(G'_p), F(G'_q))`` over pairs of
trigger-carrying training graphs in a batch, i.e. cross-entropy plus ``alpha`` times their mean
pairwise cosine similarity: triggered graphs' embeddings are pushed apart, which breaks the
"dense trigger area" that GCleaner's recovery searches for.

It plugs into :func:`dglcleaner.training.train_model` as a ``loss_fn``::

    with AdaptiveLoss(model, alpha) as loss_fn:
        graphs = loss_fn.mark(res.train_graphs, res.poisoned_idx)
        train(model, graphs, res.train_labels, loss_fn=loss_fn)

``mark`` returns copies of the graphs carrying a per-node flag (poisoned or not), so the loss
can tell triggered graphs apart inside a batch; inside the ``with`` block the model's
``forward_full`` is wrapped to keep the graph embeddings of the last forward pass (no second
forward pass). ``alpha = 0`` is plain cross-entropy.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence

import torch
import torch.nn.functional as F

from ._dgl import dgl
from .errors import ParameterError

FLAG = "_adaptive_poisoned"


def mean_pairwise_cos(emb: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity over ordered pairs ``p != q`` (0 for fewer than two rows)."""
    if emb.shape[0] < 2:
        return emb.new_zeros(())
    z = F.normalize(emb, dim=1)
    cos = z @ z.t()
    mask = ~torch.eye(len(z), dtype=torch.bool, device=z.device)
    return cos[mask].mean()


class AdaptiveLoss:
    """``loss_fn(logits, y)`` = CE + ``alpha`` * mean cosine of the poisoned graphs' embeddings."""

    def __init__(self, model: torch.nn.Module, alpha: float) -> None:
        if not alpha >= 0:
            raise ParameterError(f"adaptive alpha must be >= 0; got {alpha}")
        self.model, self.alpha = model, float(alpha)
        self._last: Optional[Any] = None
        self.last_cos: float = float("nan")

    def mark(self, graphs: Sequence, poisoned_idx: Any) -> List:
        """Copies of ``graphs`` with ``ndata['_adaptive_poisoned']`` (1 on poisoned graphs)."""
        from .data.features import copy_graph

        poisoned = {int(i) for i in torch.as_tensor(poisoned_idx).reshape(-1).tolist()}
        out = []
        for i, g in enumerate(graphs):
            h = copy_graph(g)
            h.ndata[FLAG] = torch.full((g.num_nodes(),), float(i in poisoned))
            out.append(h)
        return out

    def __enter__(self) -> "AdaptiveLoss":
        original = type(self.model).forward_full

        def wrapped(graph, feat, edge_weight=None):
            out = original(self.model, graph, feat, edge_weight)
            self._last = (graph, out.graph_emb)
            return out

        self.model.forward_full = wrapped  # instance attribute shadows the method
        return self

    def __exit__(self, *exc) -> None:
        self.model.__dict__.pop("forward_full", None)
        self._last = None

    def __call__(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits, y)
        if self.alpha == 0 or self._last is None:
            return loss
        graph, emb = self._last
        if FLAG not in graph.ndata:
            raise ParameterError("adaptive loss: graphs were not marked; pass "
                                 "AdaptiveLoss.mark(graphs, poisoned_idx) to training")
        flags = dgl.ops.segment_reduce(graph.batch_num_nodes(),
                                       graph.ndata[FLAG].unsqueeze(1).float(), "max").squeeze(1)
        cos = mean_pairwise_cos(emb[flags > 0.5])
        self.last_cos = float(cos.detach())
        return loss + self.alpha * cos  # Eq. 16: L_atk - alpha * L_pq with L_pq = -cos


def train_adaptive(train_fn, model: torch.nn.Module, graphs: Sequence, labels: torch.Tensor,
                   poisoned_idx: Any, alpha: float) -> torch.nn.Module:
    """Train ``model`` with ``train_fn(model, graphs, labels, loss_fn=...)`` (e.g.
    ``SeedRun.train``) under the adaptive loss; returns the model."""
    with AdaptiveLoss(model, alpha) as loss_fn:
        marked = loss_fn.mark(graphs, poisoned_idx)
        return train_fn(model, marked, labels, loss_fn=loss_fn)
