"""Node-feature builders: ``ndata['feat']`` for model input, computed from a graph.

Modes (``FEATURE_MODES``):

``degree_onehot``
    One-hot node degree, clipped to ``max_degree`` = max degree over the fitting graphs (the
    training split) + 4, as GCleaner/XGBD do; ``dim = max_degree + 1``. Structural, so
    :meth:`Featurizer.refresh` recomputes it after an attack edits a graph.
``node_label_onehot``
    One-hot of ``ndata['node_label']`` over the vocabulary of the whole dataset; a value outside
    the vocabulary gets an all-zero row.
``attributes``
    ``ndata['attr']`` as float32.

For the two per-node modes, :meth:`Featurizer.refresh` keeps each node's existing ``feat`` row:
nodes an attack added with DGL's ``add_nodes`` get DGL's zero fill, i.e. an all-zero feature
row (their ``node_label``/``attr`` are zero-filled too, and ``node_label`` 0 may be a real label,
which is why refresh does not recompute from it).
"""
from __future__ import annotations

from typing import List, Sequence

import torch

from dglcleaner._dgl import dgl

from ..errors import DataError, unknown_name

FEATURE_MODES = ("degree_onehot", "node_label_onehot", "attributes")


def copy_graph(g: "dgl.DGLGraph") -> "dgl.DGLGraph":
    """A new graph with the same structure and cloned node/edge data (input untouched)."""
    u, v = g.edges()
    h = dgl.graph((u.clone(), v.clone()), num_nodes=g.num_nodes(), idtype=g.idtype,
                  device=g.device)
    for key, val in g.ndata.items():
        h.ndata[key] = val.clone()
    for key, val in g.edata.items():
        h.edata[key] = val.clone()
    return h


class Featurizer:
    """Base class: ``featurizer(g)`` returns a float32 ``[num_nodes, dim]`` tensor on g's device."""

    mode: str = ""
    dim: int = 0

    def __call__(self, g) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def apply(self, graphs: Sequence) -> List:
        """New graphs (copies) carrying ``ndata['feat']``; the inputs are not modified."""
        out = []
        for g in graphs:
            h = copy_graph(g)
            h.ndata["feat"] = self(h)
            out.append(h)
        return out

    def refresh(self, g):
        """A new graph with ``ndata['feat']`` valid after a structural edit of ``g``."""
        h = copy_graph(g)
        h.ndata["feat"] = self(h)
        return h

    def to_dict(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def from_dict(d: dict) -> "Featurizer":
        """Rebuild a featurizer saved with :meth:`to_dict` (e.g. inside a model file)."""
        mode = d.get("mode")
        if mode == "degree_onehot":
            return DegreeOneHot(int(d["max_degree"]))
        if mode == "node_label_onehot":
            return NodeLabelOneHot([int(v) for v in d["vocab"]])
        if mode == "attributes":
            return Attributes(int(d["dim"]))
        raise unknown_name("feature mode", str(mode), FEATURE_MODES)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mode={self.mode!r}, dim={self.dim})"


class DegreeOneHot(Featurizer):
    """One-hot degree clipped to ``max_degree``."""

    mode = "degree_onehot"

    def __init__(self, max_degree: int) -> None:
        self.max_degree = int(max_degree)
        self.dim = self.max_degree + 1

    def __call__(self, g) -> torch.Tensor:
        # Graphs are stored with both directions, so in-degree = undirected degree.
        deg = g.in_degrees().clamp(max=self.max_degree).long()
        return torch.nn.functional.one_hot(deg, self.dim).to(torch.float32)

    def to_dict(self) -> dict:
        return {"mode": self.mode, "dim": self.dim, "max_degree": self.max_degree}


class _PerNode(Featurizer):
    """Shared refresh for the modes whose values belong to nodes, not structure."""

    def refresh(self, g):
        h = copy_graph(g)
        feat = h.ndata.get("feat") if "feat" in h.ndata else None
        if feat is None or feat.dim() != 2 or feat.shape[1] != self.dim:
            h.ndata["feat"] = self(h)
        return h


class NodeLabelOneHot(_PerNode):
    """One-hot ``node_label`` over a fixed vocabulary (sorted original values)."""

    mode = "node_label_onehot"

    def __init__(self, vocab: Sequence[int]) -> None:
        self.vocab = sorted(int(v) for v in vocab)
        self.dim = len(self.vocab)
        self._values = torch.tensor(self.vocab, dtype=torch.long)

    def __call__(self, g) -> torch.Tensor:
        if "node_label" not in g.ndata:
            raise DataError("feature mode node_label_onehot needs ndata['node_label'] on every graph")
        lab = g.ndata["node_label"].long().reshape(-1)
        values = self._values.to(lab.device)
        pos = torch.searchsorted(values, lab).clamp(max=max(self.dim - 1, 0))
        known = values[pos] == lab if self.dim else torch.zeros_like(lab, dtype=torch.bool)
        out = torch.zeros(lab.numel(), self.dim, dtype=torch.float32, device=lab.device)
        rows = torch.nonzero(known).reshape(-1)
        out[rows, pos[rows]] = 1.0
        return out

    def to_dict(self) -> dict:
        return {"mode": self.mode, "dim": self.dim, "vocab": list(self.vocab)}


class Attributes(_PerNode):
    """``ndata['attr']`` as float32."""

    mode = "attributes"

    def __init__(self, dim: int) -> None:
        self.dim = int(dim)

    def __call__(self, g) -> torch.Tensor:
        if "attr" not in g.ndata:
            raise DataError("feature mode attributes needs ndata['attr'] on every graph")
        attr = g.ndata["attr"].to(torch.float32)
        attr = attr.reshape(attr.shape[0], -1)
        if attr.shape[1] != self.dim:
            raise DataError(f"node attributes have {attr.shape[1]} columns; this featurizer expects {self.dim}")
        return attr.clone()

    def to_dict(self) -> dict:
        return {"mode": self.mode, "dim": self.dim}


def make_featurizer(mode: str, dataset, fit_idx=None) -> Featurizer:
    """Build a featurizer for ``dataset``.

    ``degree_onehot`` fits ``max_degree`` on ``dataset.graphs[fit_idx]`` (all graphs if
    ``fit_idx`` is None; pass the training split); the other modes use the whole dataset.
    Unknown modes and missing node data raise a one-line :class:`UserError`.
    """
    key = str(mode).lower().replace("-", "_")
    aliases = {"degree": "degree_onehot", "node_label": "node_label_onehot", "attr": "attributes"}
    key = aliases.get(key, key)
    if key not in FEATURE_MODES:
        raise unknown_name("feature mode", str(mode), FEATURE_MODES)
    graphs = dataset.graphs
    if key == "degree_onehot":
        idx = range(len(graphs)) if fit_idx is None else [int(i) for i in torch.as_tensor(fit_idx).reshape(-1)]
        max_deg = 0
        for i in idx:
            g = graphs[i]
            if g.num_nodes():
                max_deg = max(max_deg, int(g.in_degrees().max()))
        return DegreeOneHot(max_deg + 4)
    field = "node_label" if key == "node_label_onehot" else "attr"
    missing = [i for i, g in enumerate(graphs) if field not in g.ndata and g.num_nodes()]
    if missing or not graphs:
        raise DataError(
            f"dataset {dataset.name} has no node {'labels' if field == 'node_label' else 'attributes'} "
            f"(ndata['{field}']); use a feature mode it supports, e.g. degree_onehot"
        )
    if key == "node_label_onehot":
        vals = torch.cat([g.ndata["node_label"].reshape(-1) for g in graphs if g.num_nodes()])
        return NodeLabelOneHot(torch.unique(vals).tolist())
    dims = {g.ndata["attr"].reshape(g.num_nodes(), -1).shape[1] for g in graphs if g.num_nodes()}
    if len(dims) != 1:
        raise DataError(f"dataset {dataset.name}: node attribute widths differ between graphs: {sorted(dims)}")
    return Attributes(dims.pop())


__all__ = ["FEATURE_MODES", "Featurizer", "DegreeOneHot", "NodeLabelOneHot", "Attributes",
           "make_featurizer", "copy_graph"]
