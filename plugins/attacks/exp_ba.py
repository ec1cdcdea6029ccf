"""Exp-BA: explainability-based backdoor attack (trigger on explainer-chosen nodes).

Paper: Xu, Xue, Picek, "Explainability-based Backdoor Attacks Against Graph Neural Networks",
WiseML 2021. Reference implementation: ``xujing1994/Explanability_bkd_gnn`` @ d4d522c
(``official`` preset). GCleaner's description: "replaces the nodes with the top-k highest
importance values with the subgraph trigger".

Threat model: data poisoning, dirty label; the attacker has white-box access to a *clean* model
(``ctx.clean_model``, trained on the clean training set) to run an explainer on.

Algorithm (spec item 12):

1. One trigger for the whole attack: ER(k, ``density``) (k = the run's trigger size).
2. Poison ``injection_ratio`` of the training set, drawn without replacement from graphs whose
   label is not the target and that have at least k nodes.
3. Positions: the explainer (``explainer``, default GNNExplainer; any registered explainer) scores
   every node of each poisoned graph under the clean model (for the model's predicted class);
   the trigger goes on the k **most** important nodes (``least=true``: the k least important,
   the paper's LIAS variant). Ties are broken at random (seeded).
4. Injection toggles the edges among the k positions to match the trigger (existing pairs not in
   the trigger are removed, missing ones added); the node count is unchanged and features are
   recomputed. Label := target.
5. Test time: ``test_positions="explainer"`` (default) chooses positions by the same rule on each
   evaluation graph (clean model, same explainer); ``random`` (the released code) picks k random
   nodes.

Parameters
----------
explainer : str, default "gnnexplainer" (any name of the ``dglcleaner.explainers`` group)
least : bool, default False (trigger on the least important nodes: LIAS)
density : float, default 0.8, in (0, 1] (ER edge probability)
test_positions : str, default "explainer", one of explainer, random
selection : str, default "random", one of random, first (the release poisons the *first*
    eligible training graphs)
batch_size : int, default 64, in [1, 4096] (graphs per explainer call)

Presets: ``official`` = random test positions, first eligible graphs poisoned.

Known deviations: the release reads positions from a precomputed ranking file whose generating
code is missing (``xujing1994/Explanability_bkd_gnn#1``); here they are computed with the chosen
explainer. The release's defaults (trigger size 5, poisoning intensity 0.2, target 0) are
run-level settings (``--trigger-size``, ``--injection-ratio``, ``--target``), not part of the
preset. Graphs with fewer than k nodes are not poisoned; at test time they get the trigger's
induced subgraph on all their nodes.

Example
-------
>>> ExpBA(least=True).least
True
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np
import torch

from dglcleaner.api import AttackContext, AttackResult, PluginBase
from dglcleaner.backdoor import (assemble_poisoned, check_context, poison_count,
                                 select_poison_indices)
from dglcleaner.errors import ParameterError
from dglcleaner.graph_ops import (choose_nodes, random_trigger_graph, replace_subgraph,
                                  trigger_edges_for)
from dglcleaner.params import Param
from dglcleaner.seeding import derive_seed


class ExpBA(PluginBase):
    """ER trigger on the nodes an explainer ranks most (or least) important."""

    name = "exp-ba"
    kind = "attack"
    task = "graph"
    summary = "ER trigger on the top-k nodes of an explainer run on a clean model."
    paper = ("Xu, Xue, Picek. Explainability-based Backdoor Attacks Against Graph Neural "
             "Networks. WiseML 2021. https://arxiv.org/abs/2104.03674")
    threat_model = "data poisoning, dirty label, white-box clean model"
    params = (
        Param("explainer", str, "gnnexplainer", "explainer plugin that ranks nodes"),
        Param("least", bool, False, "trigger on the least important nodes (LIAS)"),
        Param("density", float, 0.8, "ER edge probability", low=0.0, high=1.0, low_open=True),
        Param("test_positions", str, "explainer", "test-time positions",
              choices=("explainer", "random")),
        Param("selection", str, "random", "which eligible training graphs to poison",
              choices=("random", "first")),
        Param("batch_size", int, 64, "graphs per explainer call", low=1, high=4096),
    )
    presets = {"official": {"test_positions": "random", "selection": "first"}}

    def __init__(self, preset=None, **params) -> None:
        super().__init__(preset, **params)
        # Resolve the explainer name now: a typo fails before any model is trained.
        from dglcleaner.registry import find

        self.explainer = find("explainer", self.explainer).name

    # ---------------------------------------------------------------------------------------
    def _make_explainer(self, ctx: AttackContext):
        get = ctx.get_explainer
        if get is None:
            from dglcleaner.runner import get_explainer as get
        seed = derive_seed(ctx.seed, "exp-ba", "explainer")
        try:
            return get(self.explainer, seed=seed)
        except ParameterError:  # an explainer without a seed parameter
            return get(self.explainer)

    def node_scores(self, explainer, model, graphs: Sequence, device) -> List[np.ndarray]:
        """Explainer scores of every node of each graph, under ``model`` (eval mode)."""
        from dglcleaner._dgl import dgl

        out: List[np.ndarray] = []
        for start in range(0, len(graphs), self.batch_size):
            chunk = list(graphs[start:start + self.batch_size])
            bg = dgl.batch(chunk).to(device)
            scores = explainer.node_importance(model, bg, bg.ndata["feat"])
            out += [s.cpu().numpy() for s in torch.split(scores, bg.batch_num_nodes().tolist())]
        return out

    def check(self, ctx: AttackContext) -> None:
        check_context(ctx)

    def run(self, ctx: AttackContext) -> AttackResult:
        self.check(ctx)
        k = int(ctx.trigger_size)
        trig = random_trigger_graph("er", k, self.density,
                                    derive_seed(ctx.seed, "exp-ba", "trigger"))
        edges = sorted((min(a, b), max(a, b)) for a, b in trig.edges())
        model = ctx.clean_model
        if model is None:  # outside the runner: train the clean model the attack needs
            model = ctx.train(ctx.build_model(), ctx.train_graphs, ctx.train_labels)
        model = model.to(ctx.device).eval()
        explainer = self._make_explainer(ctx)
        featurizer = ctx.featurizer
        most = not self.least

        def plant(g, nodes):
            return featurizer.refresh(replace_subgraph(g, nodes,
                                                       trigger_edges_for(g.num_nodes(), edges, k)))

        def positions(graphs, rng, use_explainer=True):
            if not use_explainer:
                return [choose_nodes(g.num_nodes(), k, rng) for g in graphs]
            scores = self.node_scores(explainer, model, graphs, ctx.device)
            return [choose_nodes(g.num_nodes(), k, rng, s, most=most)
                    for g, s in zip(graphs, scores)]

        pick_rng = np.random.default_rng(derive_seed(ctx.seed, "exp-ba", "poison"))
        if self.selection == "first":
            idx = _first_eligible(ctx, k)
        else:
            idx = select_poison_indices(ctx.train_graphs, ctx.train_labels, ctx.target_label,
                                        ctx.injection_ratio, pick_rng, min_nodes=k)
        if ctx.progress:
            ctx.progress(f"exp-ba: explaining {len(idx)} graphs with {self.explainer}")
        pos_rng = np.random.default_rng(derive_seed(ctx.seed, "exp-ba", "positions"))
        chosen = dict(zip(idx.tolist(), positions([ctx.train_graphs[i] for i in idx], pos_rng)))
        graphs, labels = assemble_poisoned(ctx.train_graphs, ctx.train_labels, idx,
                                           ctx.target_label,
                                           lambda i: plant(ctx.train_graphs[i], chosen[i]))
        use_explainer = self.test_positions == "explainer"

        def apply_trigger(test_graphs, seed: int):
            rng = np.random.default_rng(derive_seed(seed, "exp-ba", "test-positions"))
            where = positions(list(test_graphs), rng, use_explainer)
            return [plant(g, nodes) for g, nodes in zip(test_graphs, where)]

        return AttackResult(
            train_graphs=graphs, train_labels=labels,
            poisoned_idx=torch.as_tensor(np.unique(idx), dtype=torch.long),
            apply_trigger=apply_trigger,
            trigger={"kind": "er", "size": k, "density": self.density,
                     "edges": [list(e) for e in edges], "explainer": self.explainer,
                     "positions": "least" if self.least else "most",
                     "test_positions": self.test_positions,
                     # node j of the trigger sits on positions[j]
                     "train_positions": {str(i): [int(x) for x in p]
                                         for i, p in chosen.items()}},
        )


def _first_eligible(ctx: AttackContext, k: int) -> np.ndarray:
    """The release's choice: the first eligible training graphs (label != target, >= k nodes)."""
    labels = ctx.train_labels.cpu().numpy()
    pool = [i for i, g in enumerate(ctx.train_graphs)
            if labels[i] != ctx.target_label and g.num_nodes() >= k]
    if not pool:
        raise ParameterError(f"no training graph with a label other than {ctx.target_label} has "
                             f"at least {k} nodes; lower the trigger size")
    return np.asarray(pool[:poison_count(len(ctx.train_graphs), ctx.injection_ratio)],
                      dtype=np.int64)
