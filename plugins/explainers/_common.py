"""Helpers shared by the explainer plugins.

Every explainer answers one question with one protocol: ``node_importance(model, bg, feat,
target=None)`` returns a 1-D tensor with one non-negative score per node of the batched graph
``bg`` (higher = more important for class ``target`` of that node's graph; default: the model's
prediction). :class:`ExplainerBase` does the shared part: argument checks, putting the model in
eval mode with its parameters frozen (so no ``.grad`` of the caller's model is touched) and
restoring both flags afterwards, the target classes, and the final shape/sign checks.
"""
from __future__ import annotations

import contextlib
import hashlib
from typing import Iterator, List, Optional, Union

import numpy as np
import torch

from dglcleaner._dgl import dgl
from dglcleaner.api import PluginBase
from dglcleaner.errors import ParameterError
from dglcleaner.seeding import derive_seed

Target = Optional[Union[int, torch.Tensor]]


@contextlib.contextmanager
def frozen(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Eval mode and ``requires_grad=False`` on every parameter; both restored on exit.

    Explainers differentiate with respect to inputs or masks only; freezing keeps the caller's
    parameter gradients (e.g. GCleaner in the middle of an optimisation step) untouched.
    """
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


@contextlib.contextmanager
def seeded(seed: int, device: Optional[torch.device] = None) -> Iterator[None]:
    """Seed torch's and numpy's *global* generators for code we do not control (DGL's
    explainers draw from them) and restore the caller's generator states afterwards."""
    devices = []
    if device is not None and device.type == "cuda":  # pragma: no cover - no GPU in CI
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    np_state = np.random.get_state()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        np.random.seed(int(seed) % (2**32))
        try:
            yield
        finally:
            np.random.set_state(np_state)


def graph_fingerprint(g: "dgl.DGLGraph", feat: Optional[torch.Tensor] = None) -> str:
    """A stable hash of one graph's structure (and features): per-graph seeds derived from it
    make a graph's explanation independent of the batch it arrives in."""
    h = hashlib.sha256()
    src, dst = g.edges()
    h.update(np.int64(g.num_nodes()).tobytes())
    h.update(src.detach().cpu().numpy().astype(np.int64).tobytes())
    h.update(dst.detach().cpu().numpy().astype(np.int64).tobytes())
    if feat is not None:
        h.update(feat.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()[:16]


def graph_seed(seed: int, g: "dgl.DGLGraph", feat: Optional[torch.Tensor], tag: str) -> int:
    """Seed for explaining graph ``g`` (depends on ``seed``, the explainer and the graph only)."""
    return derive_seed(seed, tag, graph_fingerprint(g, feat))


def unbatch_with_feat(bg: "dgl.DGLGraph", feat: torch.Tensor):
    """``[(graph, feat_of_graph), ...]`` for the graphs of a batch."""
    sizes = bg.batch_num_nodes().tolist()
    graphs = dgl.unbatch(bg) if bg.batch_size > 1 else [bg]
    return list(zip(graphs, torch.split(feat, sizes)))


def node_graph_ids(bg: "dgl.DGLGraph") -> torch.Tensor:
    """Graph index of every node of a batch."""
    sizes = bg.batch_num_nodes().to(bg.device)
    return torch.repeat_interleave(torch.arange(len(sizes), device=bg.device), sizes)


def edge_graph_ids(bg: "dgl.DGLGraph") -> torch.Tensor:
    """Graph index of every edge of a batch."""
    sizes = bg.batch_num_edges().to(bg.device)
    return torch.repeat_interleave(torch.arange(len(sizes), device=bg.device), sizes)


def segment_mean(values: torch.Tensor, seg: torch.Tensor, num: int) -> torch.Tensor:
    """Mean of ``values`` (first dim) per segment id; empty segments give 0."""
    shape = (num,) + tuple(values.shape[1:])
    total = torch.zeros(shape, dtype=values.dtype, device=values.device).index_add_(0, seg, values)
    count = torch.bincount(seg, minlength=num).clamp(min=1).to(values.dtype)
    return total / count.view((-1,) + (1,) * (values.dim() - 1))


AGGREGATES = ("sum", "mean", "log_degree")


def edge_mask_to_nodes(g: "dgl.DGLGraph", edge_mask: torch.Tensor, how: str = "sum"
                       ) -> torch.Tensor:
    """Per-node importance from a per-edge mask.

    ``sum``: half the sum of the mask over the node's in- and out-edges, i.e. for a bidirected
    graph the sum over its undirected incident edges of the two directions' mean (DGL's
    explainers give no node mask; spec item 12). ``mean``: that sum divided by the degree.
    ``log_degree``: divided by ``log(degree + 1)`` (XGBD's normalisation). Isolated nodes get 0.
    """
    src, dst = g.edges()
    n = g.num_nodes()
    m = edge_mask.detach().reshape(-1).to(torch.float32)
    score = torch.zeros(n, dtype=m.dtype, device=m.device)
    score.index_add_(0, src.long().to(m.device), m).index_add_(0, dst.long().to(m.device), m)
    score = score / 2
    if how == "sum":
        return score
    deg = (g.in_degrees() + g.out_degrees()).to(m.device, m.dtype) / 2
    if how == "mean":
        return score / deg.clamp(min=1)
    if how == "log_degree":
        return score / torch.log(deg + 1).clamp(min=float(np.log(2)))
    raise ParameterError(f"edge aggregate must be one of {', '.join(AGGREGATES)}; got {how!r}")


def num_conv_layers(model: torch.nn.Module, default: int = 3) -> int:
    """Number of message-passing layers (explainers' ``num_hops``)."""
    convs = getattr(model, "conv_layers", None)
    if callable(convs):
        return len(convs())
    return default


def full_forward(model: torch.nn.Module, g, feat, edge_weight=None):
    """``model.forward_full`` (logits, graph embedding, per-layer node activations), with a
    one-line error for models that lack it."""
    fn = getattr(model, "forward_full", None)
    if fn is None:
        raise ParameterError(
            f"this explainer needs per-layer node activations: the model "
            f"{type(model).__name__} has no forward_full(graph, feat, edge_weight) method "
            f"(dglcleaner.models classifiers have it)")
    return fn(g, feat, edge_weight)


class ExplainerBase(PluginBase):
    """Shared protocol implementation; subclasses implement :meth:`_explain`."""

    kind = "explainer"
    task = "graph"

    def node_importance(self, model: torch.nn.Module, graph: "dgl.DGLGraph",
                        feat: torch.Tensor, target: Target = None) -> torch.Tensor:
        """One non-negative score per node of the (batched) ``graph`` for ``target`` (an int
        for every graph, a ``(batch_size,)`` tensor, or ``None`` = the model's prediction).
        The model is run in eval mode with frozen parameters; its train/eval flag and
        ``requires_grad`` flags are restored afterwards."""
        if feat.dim() != 2 or feat.shape[0] != graph.num_nodes():
            raise ParameterError(
                f"feat must have shape (num_nodes, dim) = ({graph.num_nodes()}, ...); "
                f"got {tuple(feat.shape)}")
        if graph.num_nodes() == 0:
            return torch.zeros(0, device=feat.device)
        feat = feat.detach()
        with frozen(model):
            tgt = resolve_target(model, graph, feat, target)
            scores = self._explain(model, graph, feat, tgt)
        scores = scores.detach().reshape(-1).to(torch.float32)
        if scores.shape[0] != graph.num_nodes():  # pragma: no cover - internal contract
            raise RuntimeError(f"{self.name}: {scores.shape[0]} scores for "
                               f"{graph.num_nodes()} nodes")
        # Tiny negative values come from float error only; NaN would poison any ranking.
        return torch.nan_to_num(scores, nan=0.0).clamp(min=0.0)

    def _explain(self, model, graph, feat, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    #: Whether :meth:`heat_map` reaches the model's parameters (gradient-based explainers).
    #: Mask-optimising or search explainers (GNNExplainer, PGExplainer, SubgraphX) do not.
    differentiable = False

    def heat_map(self, model: torch.nn.Module, graph: "dgl.DGLGraph", feat: torch.Tensor,
                 target: Target = None) -> torch.Tensor:
        """Per-node scores to use *as a training loss* (GCleaner's heat-map term, Table 6).

        For a ``differentiable`` explainer the scores keep their autograd graph back to the
        model's parameters (second-order gradients, ``create_graph=True``), and the model's
        train/eval flag and ``requires_grad`` flags are left as the caller set them. For the
        others this is :meth:`node_importance`: a constant, which trains nothing."""
        if not self.differentiable:
            return self.node_importance(model, graph, feat, target)
        if graph.num_nodes() == 0:
            return torch.zeros(0, device=feat.device)
        tgt = resolve_target(model, graph, feat.detach(), target)
        with torch.enable_grad():
            scores = self._heat(model, graph, feat.detach(), tgt)
        return scores.reshape(-1)

    def _heat(self, model, graph, feat, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def resolve_target(model: torch.nn.Module, g: "dgl.DGLGraph", feat: torch.Tensor,
                   target: Target) -> torch.Tensor:
    """Target class per graph as a ``(batch_size,)`` long tensor on the graph's device."""
    b = g.batch_size
    if target is None:
        with torch.no_grad():
            return model(g, feat).argmax(dim=-1).long()
    classes = getattr(model, "num_classes", None)
    t = torch.as_tensor(target, device=g.device).long().reshape(-1)
    if t.numel() == 1 and b > 1:
        t = t.expand(b).clone()
    if t.numel() != b:
        raise ParameterError(
            f"target must be one class per graph ({b} graphs in the batch); got {t.numel()}")
    if (t < 0).any() or (classes is not None and (t >= classes).any()):
        raise ParameterError(
            f"target classes must be in [0, {(classes or 1) - 1}]; got {t.tolist()}")
    return t


def split_scores(scores: torch.Tensor, bg: "dgl.DGLGraph") -> List[torch.Tensor]:
    """Per-graph views of a batch's node scores."""
    return list(torch.split(scores, bg.batch_num_nodes().tolist()))
