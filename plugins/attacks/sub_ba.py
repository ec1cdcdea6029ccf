"""Sub-BA: subgraph-based backdoor attack.

Paper: Zhang, Jia, Wang, Gong, "Backdoor Attacks to Graph Neural Networks", SACMAT 2021.
Reference implementation: ``zaixizhang/graphbackdoor`` @ af8344f; GCleaner's re-implementation
(``Graph-Axis/GCleaner`` @ 8352e54) is the ``official`` preset.

Threat model: data poisoning, dirty label, black box. The attacker poisons a fraction of the
training set; the trigger is one fixed random graph (Erdos-Renyi by default) planted on
``trigger_size`` randomly chosen nodes of each poisoned graph, whose label becomes the target.

Algorithm (paper default):

1. One trigger graph for the whole attack: ER(k, p=0.8) (or Watts-Strogatz / Barabasi-Albert).
2. Poison ``injection_ratio`` of the training set, drawn without replacement from graphs whose
   label is not the target and that have at least ``k`` nodes.
3. In each poisoned graph choose ``k`` nodes uniformly at random (a fresh random stream per
   graph), delete every edge among them, add the trigger's edges on them, relabel to the target.
   The node count is unchanged; features are recomputed (degree one-hot follows the new
   structure).
4. At test time the same trigger is planted the same way on every evaluation graph.

Parameters
----------
generator : str, default "er"
    Trigger generator: ``er``, ``ws`` or ``ba``.
density : float, default 0.8, in (0, 1]
    ER edge probability / WS rewiring probability (the paper's rho).
degree : int, default 2, in [1, 10]
    WS neighbours ``K`` / BA attachment ``m``.
with_replacement : bool, default False
    Sample poisoned graphs with replacement (GCleaner's released code).
fixed_positions : bool, default False
    Use the same node indices in every graph (GCleaner's re-seeding quirk).
trigger_seed : int or None, default None, in [0, 2**31 - 1]
    Seed of the trigger graph. ``None`` derives it from the run seed, so every seed draws its own
    trigger; the ``official`` preset uses 10, the released code's default ``args.seed`` (for
    k = 3 that draw is a triangle). With k = 3 the shape (one edge, a path or a triangle)
    decides much of the ASR, so a fixed trigger separates the trigger's luck from the seed's.
degree_feature_bug : bool, default False
    Reproduce the Sub-BA release's bug: degree features are computed from a graph whose trigger
    edges sit on nodes ``0..k-1`` while the structure has them on the chosen nodes.

Known deviations: graphs with fewer than ``k`` nodes are not poisoned (the release samples
positions with replacement there); at test time such graphs get the trigger's induced subgraph on
all their nodes.

Example
-------
>>> from dglcleaner_plugins.attacks.sub_ba import SubBA
>>> SubBA().density
0.8
"""
from __future__ import annotations

import numpy as np
import torch

from dglcleaner.api import AttackContext, AttackResult, PluginBase
from dglcleaner.backdoor import assemble_poisoned, check_context, select_poison_indices
from dglcleaner.graph_ops import (choose_nodes, from_pairs, random_trigger_graph,
                                  replace_subgraph, trigger_edges_for, undirected_pairs)
from dglcleaner.params import Param
from dglcleaner.seeding import derive_seed


class SubBA(PluginBase):
    """Subgraph-based backdoor (random trigger at random positions)."""

    name = "sub-ba"
    kind = "attack"
    task = "graph"
    summary = "Random subgraph trigger (ER by default) planted at random nodes."
    paper = ("Zhang, Jia, Wang, Gong. Backdoor Attacks to Graph Neural Networks. "
             "SACMAT 2021. https://arxiv.org/abs/2006.11165")
    threat_model = "data poisoning, dirty label, black box"
    params = (
        Param("generator", str, "er", "trigger graph generator", choices=("er", "ws", "ba")),
        Param("density", float, 0.8, "ER edge probability / WS rewiring (rho)", low=0.0,
              high=1.0, low_open=True),
        Param("degree", int, 2, "WS neighbours K / BA attachment m", low=1, high=10),
        Param("with_replacement", bool, False, "sample poisoned graphs with replacement"),
        Param("fixed_positions", bool, False, "same node indices in every graph"),
        Param("trigger_seed", int, None, "seed of the trigger graph (default: from the run seed)",
              low=0, high=2**31 - 1),
        Param("degree_feature_bug", bool, False,
              "features from trigger edges on nodes 0..k-1 (Sub-BA release bug)"),
    )
    presets = {
        "official": {"with_replacement": True, "fixed_positions": True, "trigger_seed": 10},
        "sub-ba-release": {"degree_feature_bug": True},
    }

    def check(self, ctx: AttackContext) -> None:
        check_context(ctx)

    def run(self, ctx: AttackContext) -> AttackResult:
        self.check(ctx)
        k = int(ctx.trigger_size)
        trigger_seed = (derive_seed(ctx.seed, "sub-ba", "trigger") if self.trigger_seed is None
                        else int(self.trigger_seed))
        trig = random_trigger_graph(self.generator, k, self.density, trigger_seed, self.degree)
        edges = sorted((min(a, b), max(a, b)) for a, b in trig.edges())
        # Fixed positions: k indices drawn once below the smallest poisonable graph's size, so
        # every graph of at least that size gets the trigger on the same node ids.
        smallest = min(g.num_nodes() for g in ctx.train_graphs if g.num_nodes() >= k)
        fixed_rng = np.random.default_rng(derive_seed(ctx.seed, "sub-ba", "fixed"))
        fixed = np.sort(fixed_rng.choice(smallest, size=k, replace=False))
        featurizer = ctx.featurizer

        def plant(g, rng: np.random.Generator):
            n = g.num_nodes()
            if self.fixed_positions:
                nodes = fixed if n >= smallest else np.arange(min(n, k))
            else:
                nodes = choose_nodes(n, k, rng)
            local = trigger_edges_for(n, edges, k)
            new = replace_subgraph(g, nodes, local)
            out = featurizer.refresh(new)
            if self.degree_feature_bug:
                first = np.arange(min(n, k))
                buggy = _add_pairs(replace_subgraph(g, nodes, []), first, local)
                out.ndata["feat"] = featurizer(buggy)
            return out

        pos_rng = np.random.default_rng(derive_seed(ctx.seed, "sub-ba", "positions"))
        pick_rng = np.random.default_rng(derive_seed(ctx.seed, "sub-ba", "poison"))
        idx = select_poison_indices(ctx.train_graphs, ctx.train_labels, ctx.target_label,
                                    ctx.injection_ratio, pick_rng, min_nodes=k,
                                    with_replacement=self.with_replacement)
        graphs, labels = assemble_poisoned(ctx.train_graphs, ctx.train_labels, idx,
                                           ctx.target_label,
                                           lambda i: plant(ctx.train_graphs[i], pos_rng))

        def apply_trigger(test_graphs, seed: int):
            rng = np.random.default_rng(derive_seed(seed, "sub-ba", "test-positions"))
            return [plant(g, rng) for g in test_graphs]

        return AttackResult(
            train_graphs=graphs, train_labels=labels,
            poisoned_idx=torch.as_tensor(np.unique(idx), dtype=torch.long),
            apply_trigger=apply_trigger,
            trigger={"kind": self.generator, "size": k, "density": self.density,
                     "edges": [list(e) for e in edges]},
        )


def _add_pairs(g, nodes: np.ndarray, edges):
    """``g`` plus the trigger edges on ``nodes``, deleting nothing (networkx ``add_edge``, as
    in the release's bug)."""
    u, v = undirected_pairs(g)
    te = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    a, b = nodes[te[:, 0]], nodes[te[:, 1]]
    pairs = np.stack([np.concatenate([u, np.minimum(a, b)]),
                      np.concatenate([v, np.maximum(a, b)])], 1)
    pairs = np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)
    return from_pairs(g.num_nodes(), pairs[:, 0], pairs[:, 1], g)
