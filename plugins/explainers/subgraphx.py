"""SubgraphX on DGL: the explanatory subgraph's nodes are the important ones.

Paper: Yuan, Yu, Wang, Li, Ji, "On Explainability of Graph Neural Networks via Subgraph
Explorations", ICML 2021. Implementation: ``dgl.nn.SubgraphX`` (DGL 2.1). Threat model: white box
(model outputs on masked inputs only).

SubgraphX searches connected subgraphs by Monte Carlo tree search, pruning one node at a time,
scoring each by a Monte Carlo Shapley value (node features outside a coalition are zeroed), and
returns the best subgraph with at most ``node_min`` nodes. It yields a node *set*, not scores:
node importance is 1 for the nodes of that subgraph and 0 for the others (ties are for the
caller to break; GCleaner puts the trigger on random nodes outside the explanatory subgraph).
Graphs with at most ``node_min`` nodes are their own explanation (all ones; DGL refuses them).

Speed: SubgraphX is slow (``num_rollouts`` x new tree nodes x ``shapley_steps`` x 2 forward
passes per graph), so the defaults are smaller than DGL's (rollouts 20 -> 10, children 12 -> 6,
Shapley samples 100 -> 20). DGL's ``shapley`` runs its 2 x ``shapley_steps`` forward passes one by
one; here they run as one batched forward pass with the same random coalitions (DGL's own
``np.random`` draws in DGL's order), which gives the same values (checked against DGL in the
tests) much faster. Everything else is DGL's code.

Parameters
----------
num_rollouts : int, default 10, in [1, 1000]
num_child : int, default 6, in [1, 100]
node_min : int, default 3, in [1, 100]
shapley_steps : int, default 20, in [1, 10000]
coef : float, default 10.0 (exploration weight)
high2low : bool, default True (expand high-degree nodes first)
seed : int, default 0 (per graph, from ``seed`` and a hash of the graph)

Example
-------
>>> SubgraphXPlugin().shapley_steps
20
"""
from __future__ import annotations

import numpy as np
import torch

from dglcleaner._dgl import dgl
from dglcleaner.params import Param

from ._common import ExplainerBase, graph_seed, num_conv_layers, seeded, unbatch_with_feat


def _subgraphx_class():
    from dgl.nn.pytorch.explain import SubgraphX

    class BatchedShapleySubgraphX(SubgraphX):
        """DGL's SubgraphX with the Shapley forward passes batched."""

        def shapley(self, subgraph_nodes):
            num_nodes = self.graph.num_nodes()
            subgraph_nodes = subgraph_nodes.tolist()
            local_region = subgraph_nodes
            for _ in range(self.num_hops - 1):
                in_neighbors, _ = self.graph.in_edges(local_region)
                _, out_neighbors = self.graph.out_edges(local_region)
                neighbors = torch.cat([in_neighbors, out_neighbors]).tolist()
                local_region = list(set(local_region + neighbors))
            split_point = num_nodes
            coalition_space = list(set(local_region) - set(subgraph_nodes)) + [split_point]
            masks = []
            for _ in range(self.shapley_steps):  # DGL's draws, in DGL's order
                permuted_space = np.random.permutation(coalition_space)
                split_idx = int(np.flatnonzero(permuted_space == split_point)[0])
                selected_nodes = permuted_space[:split_idx]
                exclude_mask = torch.ones(num_nodes)
                exclude_mask[local_region] = 0.0
                exclude_mask[selected_nodes] = 1.0
                include_mask = exclude_mask.clone()
                include_mask[subgraph_nodes] = 1.0
                masks += [exclude_mask, include_mask]
            mask = torch.cat(masks).to(self.feat.device).unsqueeze(1)
            reps = len(masks)
            if getattr(self, "_rep_key", None) != (id(self.graph), reps):
                self._rep_graph = dgl.batch([self.graph] * reps)
                self._rep_key = (id(self.graph), reps)
            feat = self.feat.repeat(reps, 1) * mask
            with torch.no_grad():
                probs = self.model(self._rep_graph, feat, **self.kwargs).softmax(dim=-1)
            value = probs[:, self.target_class].reshape(-1, 2)
            return (value[:, 1] - value[:, 0]).mean().item()

    return BatchedShapleySubgraphX


class SubgraphXPlugin(ExplainerBase):
    """DGL's SubgraphX; node importance = membership in the explanatory subgraph."""

    name = "subgraphx"
    summary = "DGL's SubgraphX (MCTS + Shapley); 1 for nodes of the explanatory subgraph."
    paper = ("Yuan et al. On Explainability of Graph Neural Networks via Subgraph "
             "Explorations. ICML 2021. https://arxiv.org/abs/2102.05152")
    params = (
        Param("num_rollouts", int, 10, "MCTS rollouts per graph", low=1, high=1000),
        Param("num_child", int, 6, "children expanded per tree node", low=1, high=100),
        Param("node_min", int, 3, "size of the explanatory subgraph (at most)", low=1,
              high=100),
        Param("shapley_steps", int, 20, "Monte Carlo samples per Shapley value", low=1,
              high=10000),
        Param("coef", float, 10.0, "exploration weight", low=0.0),
        Param("high2low", bool, True, "expand high-degree nodes first"),
        Param("seed", int, 0, "seed of the Shapley sampling", low=0),
    )

    def _explain(self, model, graph, feat, target):
        cls = _subgraphx_class()
        explainer = cls(model, num_hops=num_conv_layers(model), coef=self.coef,
                        high2low=self.high2low, num_child=self.num_child,
                        num_rollouts=self.num_rollouts, node_min=self.node_min,
                        shapley_steps=self.shapley_steps, log=False)
        out = []
        for i, (g, f) in enumerate(unbatch_with_feat(graph, feat)):
            score = torch.zeros(g.num_nodes(), device=feat.device)
            if g.num_nodes() <= self.node_min:
                score[:] = 1.0
            else:
                with seeded(graph_seed(self.seed, g, f, self.name), feat.device):
                    nodes = explainer.explain_graph(g, f, target_class=int(target[i]))
                score[nodes.long().to(score.device)] = 1.0
            out.append(score)
        return torch.cat(out)
