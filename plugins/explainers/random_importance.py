"""Random node importance: the "no explainer" control of GCleaner's explainer ablation.

Paper: GCleaner (Zhang et al., "No Matter What You Do!", 2024), Table 4 ablation baseline.
Threat model: none (ignores the model).

Each node gets an independent Uniform(0, 1) score. The stream for a graph is seeded from
``seed`` and a hash of that graph (structure and features), so a graph's scores do not depend on
the batch it arrives in or on earlier calls.

Parameters
----------
seed : int, default 0, >= 0

Example
-------
>>> RandomImportance(seed=3).seed
3
"""
from __future__ import annotations

import torch

from dglcleaner.params import Param

from ._common import ExplainerBase, graph_seed, unbatch_with_feat


class RandomImportance(ExplainerBase):
    """Uniform random node scores (seeded per graph)."""

    name = "random"
    summary = "Uniform random node importance (control)."
    paper = "Baseline of GCleaner's explainer ablation (Table 4)"
    params = (Param("seed", int, 0, "random seed", low=0),)

    def _explain(self, model, graph, feat, target):
        out = []
        for g, f in unbatch_with_feat(graph, feat):
            gen = torch.Generator().manual_seed(graph_seed(self.seed, g, f, self.name))
            out.append(torch.rand(g.num_nodes(), generator=gen))
        return torch.cat(out).to(feat.device)
