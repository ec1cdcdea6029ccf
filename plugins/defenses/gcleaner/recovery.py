"""GCleaner stage A: trigger recovery (paper Sec. 4.3, Eqs. 5-8; backdoor spec 1.3 A and 6.14).

An explainer ranks the nodes of each clean graph under the (frozen, eval-mode) suspicious
model; the ``n`` least important nodes are the trigger positions. An MLP generator maps those
nodes' features to trigger features ``X_t`` (n x d) and a trigger adjacency ``A_t`` (n x n:
sigmoid, symmetrised, zero diagonal, binarised at 0.5 in the forward pass and continuous in the
backward pass). ``Montage`` replaces the positions' features and every edge among them; the node
set is unchanged, so clean and triggered graphs stay aligned node by node. The generator is
trained so that trigger-carrying graphs share one embedding direction:
``mean_{p != q} relu(T - cos(h_p, h_q))`` over readout embeddings (Eq. 8 with its sign fixed).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dglcleaner._dgl import dgl
from dglcleaner.graph_ops import choose_nodes, replace_subgraph

FEATURE_ACTS = ("none", "relu", "sigmoid", "softmax", "degree")


def degree_onehot_st(deg: torch.Tensor, dim: int, tau: float = 0.5) -> torch.Tensor:
    """One-hot of ``clamp(round(deg), 0, dim - 1)`` in the forward pass; the gradient of a soft
    one-hot (``softmax(-(k - deg)^2 / tau)``) in the backward pass, so an edge weight that
    changes a trigger node's degree receives gradient through its feature row too."""
    ks = torch.arange(dim, device=deg.device, dtype=deg.dtype)
    soft = torch.softmax(-((ks[None, :] - deg.clamp(0, dim - 1)[:, None]) ** 2) / tau, dim=1)
    hard = F.one_hot(deg.detach().round().clamp(0, dim - 1).long(), dim).to(soft.dtype)
    return hard + soft - soft.detach()


class _StraightThrough(torch.autograd.Function):
    """Exact 0/1 forward (``a > threshold``), identity backward (GTA's ``GradWhere``)."""

    @staticmethod
    def forward(ctx, a, threshold):
        return (a > threshold).to(a.dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class TriggerGenerator(nn.Module):
    """Eq. 6: ``X_t = W_f MLP(x)``, ``A_t = W_a MLP(x)`` for the ``n`` selected nodes.

    Input ``(B, n, d)``; output ``X_t (B, n, d)`` and ``A_t (B, n, n)`` (binary forward values,
    straight-through gradients).
    """

    def __init__(self, in_dim: int, n: int, hidden: int = 64, feature_act: str = "none",
                 threshold: float = 0.5) -> None:
        super().__init__()
        self.n, self.feature_act, self.threshold = int(n), feature_act, float(threshold)
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU())
        self.w_f = nn.Linear(hidden, in_dim)
        self.w_a = nn.Linear(hidden, self.n)

    def forward(self, x: torch.Tensor):
        h = self.mlp(x)
        xt = self.w_f(h)
        if self.feature_act == "relu":
            xt = F.relu(xt)
        elif self.feature_act == "sigmoid":
            xt = torch.sigmoid(xt)
        elif self.feature_act == "softmax":
            xt = torch.softmax(xt, dim=-1)
        a = torch.sigmoid(self.w_a(h))
        a = (a + a.transpose(1, 2)) / 2
        a = a * (1 - torch.eye(self.n, device=a.device, dtype=a.dtype))
        return xt, _StraightThrough.apply(a, self.threshold)


def node_scores(model: nn.Module, graphs: Sequence, labels: torch.Tensor, explainer: Any,
                device: torch.device, batch_size: int = 64) -> Optional[List[np.ndarray]]:
    """The explainer's node importance for every graph (for its label), or ``None`` for
    ``explainer=None`` (random positions). Computed once and reused for several ``n``."""
    if explainer is None:
        return None
    out: List[np.ndarray] = []
    for start in range(0, len(graphs), batch_size):
        chunk = list(graphs[start:start + batch_size])
        bg = dgl.batch(chunk).to(device)
        target = labels[start:start + len(chunk)].to(device)
        imp = explainer.node_importance(model, bg, bg.ndata["feat"], target)
        imp = imp.detach().float().cpu().numpy().reshape(-1)
        off = 0
        for g in chunk:
            out.append(imp[off:off + g.num_nodes()])
            off += g.num_nodes()
    return out


def select_positions(model: nn.Module, graphs: Sequence, labels: torch.Tensor, n: int,
                     explainer: Any, rng: np.random.Generator, device: torch.device,
                     batch_size: int = 64,
                     scores: Optional[List[np.ndarray]] = None) -> List[np.ndarray]:
    """The ``n`` least important nodes of every graph (fewer for smaller graphs).

    ``explainer`` is an explainer plugin (``node_importance(model, bg, feat, target)``) or
    ``None`` for uniformly random positions; ``scores`` (from :func:`node_scores`) skips the
    explainer call. Ties are broken by ``rng``.
    """
    if scores is None and explainer is not None:
        scores = node_scores(model, graphs, labels, explainer, device, batch_size)
    if scores is None:
        out = [choose_nodes(g.num_nodes(), n, rng) for g in graphs]
    else:
        out = [choose_nodes(g.num_nodes(), n, rng, scores=sc, most=False)
               for g, sc in zip(graphs, scores)]
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in out]


def montage_batch(bg: "dgl.DGLGraph", feat: torch.Tensor, sel: torch.Tensor, xt: torch.Tensor,
                  at: torch.Tensor, degree_features: bool = False):
    """Differentiable Montage (Eq. 5) on a batched graph.

    ``sel`` holds global node ids ``(B, n)``. Returns ``(graph, feat, edge_weight)``: edges among
    the selected nodes are removed and all ``n(n-1)`` ordered pairs among them are added with
    weight ``A_t`` (0 or 1 forward, continuous gradient); other edges keep weight 1.
    ``degree_features``: the selected nodes' feature rows are the one-hot of their new degree
    (``xt`` ignored), for structural (degree one-hot) inputs.
    """
    b, n = sel.shape
    src, dst = bg.edges()
    inside = torch.zeros(bg.num_nodes(), dtype=torch.bool, device=bg.device)
    inside[sel.reshape(-1)] = True
    keep = ~(inside[src] & inside[dst])
    ii, jj = torch.meshgrid(torch.arange(n, device=bg.device), torch.arange(n, device=bg.device),
                            indexing="ij")
    off = ii != jj
    ii, jj = ii[off], jj[off]
    csrc = sel[:, ii].reshape(-1).to(src.dtype)
    cdst = sel[:, jj].reshape(-1).to(dst.dtype)
    cw = at[:, ii, jj].reshape(-1)
    g = dgl.graph((torch.cat([src[keep], csrc]), torch.cat([dst[keep], cdst])),
                  num_nodes=bg.num_nodes(), idtype=bg.idtype, device=bg.device)
    g.set_batch_num_nodes(bg.batch_num_nodes())
    # Edge order is not grouped by graph; readouts use batch_num_nodes only, so give each graph
    # a consistent count for completeness.
    gid = torch.repeat_interleave(torch.arange(b, device=bg.device), bg.batch_num_nodes())
    counts = torch.bincount(gid[torch.cat([src[keep], csrc]).long()], minlength=b)
    g.set_batch_num_edges(counts)
    ew = torch.cat([torch.ones(int(keep.sum()), device=feat.device, dtype=feat.dtype), cw])
    rows = sel.reshape(-1).long()
    if degree_features:
        # Structural features (degree one-hot): the trigger nodes' rows follow their new degree
        # (weighted in-degree, exact 0/1 forward), as the attacks' featurizer.refresh does.
        deg = torch.zeros(bg.num_nodes(), device=feat.device, dtype=feat.dtype)
        deg = deg.index_add(0, g.edges()[1].long(), ew)
        xt = degree_onehot_st(deg[rows], feat.shape[1])
    new_feat = feat.index_put((rows,), xt.reshape(-1, feat.shape[1]).to(feat.dtype))
    return g, new_feat, ew


def _global_sel(bg: "dgl.DGLGraph", positions: Sequence[np.ndarray]) -> torch.Tensor:
    offsets = torch.cumsum(bg.batch_num_nodes(), 0) - bg.batch_num_nodes()
    pos = torch.as_tensor(np.stack(positions), dtype=torch.int64, device=bg.device)
    return pos + offsets.to(torch.int64)[:, None]


def pairwise_hinge(emb: torch.Tensor, threshold: float,
                   center: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``mean_{p != q} relu(T - cos(h_p - c, h_q - c))`` (Eq. 8, sign fixed as the spec says);
    ``c`` = ``center`` (the clean graphs' mean embedding) or 0."""
    if center is not None:
        emb = emb - center
    z = F.normalize(emb, dim=1)
    cos = z @ z.t()
    mask = ~torch.eye(len(z), dtype=torch.bool, device=z.device)
    return F.relu(threshold - cos[mask]).mean()


@dataclass
class RecoveredTrigger:
    """A trained generator plus the positions it was trained on; applies itself to graphs."""

    generator: TriggerGenerator
    n: int
    info: Dict[str, Any] = field(default_factory=dict)

    @torch.no_grad()
    def apply(self, graphs: Sequence, positions: Sequence[np.ndarray]) -> List:
        """Discrete triggered copies: ``Montage`` with binarised ``A_t``; graphs with fewer
        than ``n`` nodes come back unchanged (a copy)."""
        self.generator.eval()
        dev = next(self.generator.parameters()).device
        out = []
        for g, pos in zip(graphs, positions):
            if len(pos) < self.n:
                out.append(_copy_with_feat(g))
                continue
            feat = g.ndata["feat"].to(dev)
            xt, at = self.generator(feat[torch.as_tensor(pos, device=dev)].unsqueeze(0))
            a = at[0].cpu().numpy() > 0.5
            edges = [(i, j) for i in range(self.n) for j in range(i + 1, self.n) if a[i, j]]
            h = replace_subgraph(g, pos, edges)
            new_feat = g.ndata["feat"].clone()
            if self.generator.feature_act == "degree":
                # Only edges among the positions changed, so only their degrees did.
                deg = h.in_degrees()[torch.as_tensor(pos)].clamp(max=new_feat.shape[1] - 1)
                xt = F.one_hot(deg.long(), new_feat.shape[1]).unsqueeze(0)
            new_feat[torch.as_tensor(pos)] = xt[0].to(new_feat.dtype).cpu()
            h.ndata["feat"] = new_feat
            out.append(h)
        return out


def _copy_with_feat(g):
    from dglcleaner.data.features import copy_graph

    return copy_graph(g)


def recover_trigger(model: nn.Module, graphs: Sequence, positions: Sequence[np.ndarray], n: int,
                    *, threshold: float = 0.9, epochs: int = 20, lr: float = 0.01,
                    weight_decay: float = 5e-4, batch_size: int = 64, hidden: int = 64,
                    feature_act: str = "none", seed: int = 0, center: bool = True,
                    target_class: Optional[int] = None, class_weight: float = 1.0,
                    train_index: Optional[Sequence[int]] = None,
                    device: Optional[torch.device] = None,
                    progress: Optional[Callable[[str], None]] = None) -> RecoveredTrigger:
    """Train the trigger generator against a frozen copy of ``model`` (Eqs. 6-8).

    ``center``: measure the cosine around the clean graphs' mean embedding (see
    ``GCleaner.embed_center``). Only graphs with at least ``n`` nodes take part, and of those
    only ``train_index`` when given. ``target_class`` (ours, GCleaner's ``class_search``) adds
    ``class_weight`` times the cross-entropy of the triggered graphs' logits towards that class,
    Neural Cleanse's targeted objective. Returns the trained :class:`RecoveredTrigger`; ``info``
    holds the final loss and the time taken.
    """
    start = time.perf_counter()
    device = device or next(model.parameters()).device
    frozen = copy.deepcopy(model).to(device).eval()  # eval: BatchNorm uses running stats
    for p in frozen.parameters():
        p.requires_grad_(False)
    torch.manual_seed(seed)
    in_dim = graphs[0].ndata["feat"].shape[1]
    gen = TriggerGenerator(in_dim, n, hidden, feature_act).to(device)
    opt = torch.optim.Adam(gen.parameters(), lr=lr, weight_decay=weight_decay)
    pool = range(len(positions)) if train_index is None else sorted({int(i) for i in train_index})
    usable = [i for i in pool if len(positions[i]) >= n]
    mu = None
    if center:
        # Cosine around the clean centroid: a model whose readouts all point one way (clean
        # pairwise cosine > T, measured 0.99 for GTA's model on AIDS) makes the uncentred hinge
        # zero from the start, so the generator would never move.
        from dglcleaner.training import batches

        with torch.no_grad():
            embs = [frozen.embed(b, b.ndata["feat"]) for b, _, _ in
                    batches(list(graphs), None, 256, device=device)]
        mu = torch.cat(embs).mean(0)
    gen_rng = torch.Generator().manual_seed(int(seed))
    last = float("nan")
    history: List[float] = []
    for epoch in range(epochs):
        order = [usable[i] for i in torch.randperm(len(usable), generator=gen_rng).tolist()]
        total, count = 0.0, 0
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            if len(idx) < 2:
                continue  # a pairwise loss needs two graphs
            bg = dgl.batch([graphs[i] for i in idx]).to(device)
            feat = bg.ndata["feat"]
            sel = _global_sel(bg, [positions[i] for i in idx])
            xt, at = gen(feat[sel])
            tg, tfeat, ew = montage_batch(bg, feat, sel, xt, at, feature_act == "degree")
            out = frozen.forward_full(tg, tfeat, ew)
            loss = pairwise_hinge(out.graph_emb, threshold, mu)
            if target_class is not None and class_weight > 0:
                want = torch.full((len(idx),), int(target_class), device=device)
                loss = loss + class_weight * F.cross_entropy(out.logits, want)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        last = total / max(count, 1)
        history.append(last)
        if progress is not None:
            progress(f"gcleaner recovery epoch {epoch + 1}/{epochs}: loss {last:.4f}")
    gen.eval()
    info = {"recovery_loss": last, "recovery_loss_first": history[0] if history else None,
            "recovery_graphs": len(usable), "recovery_s": time.perf_counter() - start}
    return RecoveredTrigger(gen, n, info)


@torch.no_grad()
def recovery_asr(model: nn.Module, triggered: Sequence, labels: torch.Tensor,
                 device: torch.device) -> Dict[str, Any]:
    """Defender-side recovery success: the dominant class predicted on triggered clean graphs
    and the fraction of graphs *not* of that class that it captures (the target label stays
    unknown to the defense; the evaluator compares ``dominant_class`` with it)."""
    from dglcleaner.training import predict

    return dominant_rate(predict(model, list(triggered), device=device), labels)


def dominant_rate(pred: torch.Tensor, labels: torch.Tensor) -> Dict[str, Any]:
    """:func:`recovery_asr` from the predictions on the triggered graphs."""
    labels = torch.as_tensor(labels)
    dominant = int(torch.bincount(pred).argmax())
    others = labels != dominant
    rate = float((pred[others] == dominant).float().mean()) if bool(others.any()) else float("nan")
    return {"recovery_asr": rate, "recovery_dominant_class": dominant}


def flip_rate(pred_clean: torch.Tensor, pred_triggered: torch.Tensor, target: int) -> float:
    """The fraction of graphs *not* predicted ``target`` on their clean version that the
    trigger sends to ``target`` (NaN when every clean graph is already predicted ``target``)."""
    moved = torch.as_tensor(pred_clean) != int(target)
    if not bool(moved.any()):
        return float("nan")
    return float((torch.as_tensor(pred_triggered)[moved] == int(target)).float().mean())
