"""Deep snapshots of graphs, tensors and models, to prove that nothing was mutated."""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import torch


def graph_state(g: Any) -> Tuple[Any, ...]:
    """Everything observable about one DGL graph: sizes, edges and all node/edge data."""
    src, dst = g.edges()
    return (g.num_nodes(), src.clone(), dst.clone(),
            {k: v.detach().clone() for k, v in g.ndata.items()},
            {k: v.detach().clone() for k, v in g.edata.items()})


def graphs_state(graphs: Sequence[Any]) -> List[Tuple[Any, ...]]:
    return [graph_state(g) for g in graphs]


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b))


def same_graph_state(a: Tuple[Any, ...], b: Tuple[Any, ...]) -> bool:
    if a[0] != b[0] or not (_same_tensor(a[1], b[1]) and _same_tensor(a[2], b[2])):
        return False
    for da, db in ((a[3], b[3]), (a[4], b[4])):
        if set(da) != set(db) or not all(_same_tensor(da[k], db[k]) for k in da):
            return False
    return True


def first_changed_graph(before: Sequence[Tuple[Any, ...]], graphs: Sequence[Any]) -> int:
    """Index of the first graph whose state differs from ``before`` (-1: none changed)."""
    if len(before) != len(graphs):
        return 0
    for i, (old, g) in enumerate(zip(before, graphs)):
        if not same_graph_state(old, graph_state(g)):
            return i
    return -1


def model_state(model: Any) -> Dict[str, torch.Tensor]:
    """Parameters and buffers of a torch module (empty for non-modules)."""
    if not isinstance(model, torch.nn.Module):
        return {}
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def changed_keys(before: Dict[str, torch.Tensor], after: Dict[str, torch.Tensor]) -> List[str]:
    keys = sorted(set(before) | set(after))
    return [k for k in keys if k not in before or k not in after
            or not _same_tensor(before[k], after[k])]
