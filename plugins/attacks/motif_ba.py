"""Motif-Backdoor: a graph motif as trigger, planted where a shadow model reacts most.

Paper: Zheng, Xiong, Chen, Ma, Huang, "Motif-Backdoor: Rethinking the Backdoor Attack on Graph
Neural Networks via Motifs", IEEE TCSS 2023 (arXiv 2210.13710).
Reference implementation: ``Seaocn/Motif-Backdoor`` @ 8e69c3b (``attack_utils.py``:
``motif_trans``, ``motif_poison`` with ``position_type='Motif-DC-B'``).

Threat model: data poisoning, dirty label, gray box (a shadow model of the same task: here the
run's clean model, ``ctx.clean_model``; trained on the clean training set when absent). With
``poisoned_per_batch`` > 0 the attacker also controls training: it trains the backdoored model
itself (returned as ``AttackResult.model``; the runner then uses it as is, so the runner's
``adaptive_alpha`` training does not apply).

Algorithm (``Motif-DC-B``, the release's default path):

1. Trigger = a motif from the catalogue (``motif_trans``): M31 (2-path), M32 (triangle),
   M41 (4-path), M42 (star), M43 (4-cycle), **M44 (default: triangle with a pendant, edges
   (0,1),(1,2),(2,3),(0,2))**, M45 (4-cycle with one chord), M46 (K4). The trigger size is the
   motif's node count (3 or 4), not the run's ``trigger_size``.
2. Poison ``injection_ratio`` of the training set, drawn without replacement from non-target
   graphs with more than 4 nodes (the release skips graphs with <= 4 nodes).
3. Positions: the ``candidates`` (10) nodes of highest degree centrality (ties: lower node id
   first, as Python's stable sort over networkx's node order) are scored by the mean squared
   change of the shadow model's output when all of that node's edges are deleted (score 0 if the
   graph would be left without edges); the motif goes on the ``m`` best-scoring nodes, the
   i-th best node playing motif node i.
4. Edges among those nodes are deleted, the motif's edges added, the label set to the target;
   features are recomputed by the run's featurizer. The same rule places the trigger at test
   time.
5. Optional (``poisoned_per_batch`` > 0; the release: 5 per batch of 32): the backdoored model
   (a fresh model of the run's architecture) is trained with the run's training settings on
   batches that each hold ``min(poisoned_per_batch, #poisoned)`` distinct poisoned graphs,
   drawn afresh for every batch, plus clean graphs; the clean graphs are shuffled and each is
   seen once per epoch (:func:`dglcleaner.backdoor.forced_batches`). With the run's adaptive
   alpha > 0 (GCleaner Sec. 5.2.6) that training uses Eq. 16's loss, as GTA does.

The position search is batched: for a chunk of graphs, the original and all its
one-node-isolated variants are assembled into one batched graph and scored in one forward pass.

Parameters
----------
motif : str, default "M44", one of M31, M32, M41, M42, M43, M44, M45, M46
candidates : int, default 10, in [1, 1000]
    Degree-centrality candidates scored with the shadow model (``DC_num``).
positions : str, default "motif-dc-b", one of motif-dc-b, dc-b, random
    ``dc-b``: top degree centrality without the model; ``random``: uniform (ablations of the
    paper).
min_nodes : int, default 5, in [1, 1000]
    Poisoned training graphs need at least this many nodes (release: more than 4).
poison_all_classes : bool, default False
    Draw poisoned graphs from every class, target class included (release).
with_replacement : bool, default False
    Sample poisoned graphs with replacement (release).
score_batch : int, default 64, in [1, 100000]
    Graphs per batched scoring pass (speed/memory only).
poisoned_per_batch : int, default 0, in [0, 1000]
    Poisoned graphs forced into every training batch (0 = off: the runner trains the
    backdoored model with ordinary shuffled batches; release: 5). Must be smaller than the
    run's batch size.

Preset ``official``: ``poison_all_classes``, ``with_replacement`` and ``poisoned_per_batch=5``.

Known deviations: the variants' node features are the original graph's (the release keeps the
node features and changes only the edge list; they are not recomputed for scoring);
with ``poisoned_per_batch``, the release's batches are 27 graphs drawn at random from the whole
(poisoned) training set, so a batch may hold more than 5 poisoned graphs or one twice, an epoch
is 50 such batches and the optimiser is Adam 1e-3 with StepLR(50, 0.5); here the clean part
excludes the poisoned graphs (exactly ``poisoned_per_batch`` per batch), an epoch is one pass
over the clean graphs, and the run's optimiser settings apply; the paper picks the
motif from frequency statistics (rare motifs make better triggers), here it is a parameter
(default M44 as in the release); test graphs with fewer nodes than the motif get the motif's
induced subgraph on all their nodes (the release leaves graphs with <= 4 nodes out of its test
set).

Example
-------
>>> from dglcleaner_plugins.attacks.motif_ba import MOTIFS, MotifBA
>>> MotifBA().motif, MOTIFS["M44"]
('M44', ((0, 1), (1, 2), (2, 3), (0, 2)))
"""
from __future__ import annotations

import time
from typing import List, Sequence

import numpy as np
import torch

from dglcleaner._dgl import dgl
from dglcleaner.api import AttackContext, AttackResult, PluginBase
from dglcleaner.backdoor import (assemble_poisoned, check_context, forced_batches,
                                 select_poison_indices)
from dglcleaner.errors import ParameterError
from dglcleaner.graph_ops import replace_subgraph, trigger_edges_for
from dglcleaner.params import Param
from dglcleaner.seeding import derive_seed

#: The release's motif catalogue (``motif_trans``), node ids local to the motif.
MOTIFS = {
    "M31": ((0, 1), (0, 2)),
    "M32": ((0, 1), (0, 2), (1, 2)),
    "M41": ((0, 1), (1, 2), (2, 3)),
    "M42": ((0, 1), (0, 2), (0, 3)),
    "M43": ((0, 1), (1, 2), (2, 3), (3, 0)),
    "M44": ((0, 1), (1, 2), (2, 3), (0, 2)),
    "M45": ((0, 1), (1, 2), (2, 3), (0, 2), (1, 3)),
    "M46": ((0, 1), (1, 2), (2, 3), (3, 0), (0, 2), (1, 3)),
}


def motif_size(name: str) -> int:
    """Number of nodes of a catalogue motif (``M3x`` -> 3, ``M4x`` -> 4)."""
    return int(name[1])


def degree_candidates(g: "dgl.DGLGraph", count: int) -> np.ndarray:
    """The ``count`` nodes of highest degree, ties broken by lower node id."""
    deg = g.in_degrees().cpu().numpy()
    order = np.argsort(-deg, kind="stable")
    return order[:min(count, g.num_nodes())]


@torch.no_grad()
def isolation_scores(model: torch.nn.Module, graphs: Sequence, cands: Sequence[np.ndarray],
                     device: torch.device, batch: int = 64) -> List[np.ndarray]:
    """For each graph and candidate node, ``MSE(model(G), model(G without the node's edges))``
    (0 when no edge would be left), batched: a chunk's originals and variants go through the
    model in one pass. The model is put in eval mode and restored afterwards."""
    was_training = model.training
    model.eval()
    out: List[np.ndarray] = []
    for s in range(0, len(graphs), batch):
        part = list(graphs[s:s + batch])
        srcs, dsts, feats, nn_, ne_ = [], [], [], [], []
        off = 0
        for g, cand in zip(part, cands[s:s + batch]):
            n = g.num_nodes()
            src, dst = (t.cpu().numpy() for t in g.edges())
            feat = g.ndata["feat"]
            reps = len(cand) + 1
            # variant 0 = the original; variant j isolates cand[j-1]
            drop = np.concatenate([[-1], np.asarray(cand, dtype=np.int64)])
            for j in range(reps):
                keep = (src != drop[j]) & (dst != drop[j])
                srcs.append(src[keep] + off)
                dsts.append(dst[keep] + off)
                nn_.append(n)
                ne_.append(int(keep.sum()))
                off += n
            feats.append(feat.repeat(reps, 1))
        bg = dgl.graph((torch.as_tensor(np.concatenate(srcs)),
                        torch.as_tensor(np.concatenate(dsts))), num_nodes=off)
        bg.set_batch_num_nodes(torch.as_tensor(nn_))
        bg.set_batch_num_edges(torch.as_tensor(ne_))
        bg = bg.to(device)
        logits = model(bg, torch.cat(feats).to(device)).cpu()
        pos = 0
        for cand in cands[s:s + batch]:
            reps = len(cand) + 1
            block = logits[pos:pos + reps]
            empty = np.asarray(ne_[pos + 1:pos + reps]) == 0
            score = ((block[1:] - block[:1]) ** 2).mean(dim=1).numpy()
            score[empty] = 0.0
            out.append(_round_sig(score))
            pos += reps
    model.train(was_training)
    return out


def _round_sig(x: np.ndarray, digits: int = 6) -> np.ndarray:
    """Round to ``digits`` significant digits, so that candidates whose isolation gives
    isomorphic graphs tie exactly (float summation order differs between batch layouts) and the
    tie goes to the higher-centrality candidate."""
    return np.array([float(f"{v:.{digits}g}") for v in np.asarray(x, dtype=np.float64)])


class MotifBA(PluginBase):
    """Motif-Backdoor (motif trigger at degree-centrality + shadow-model positions)."""

    name = "motif-ba"
    kind = "attack"
    task = "graph"
    summary = "Motif trigger (M44 default) on high-centrality nodes a shadow model reacts to."
    paper = ("Zheng, Xiong, Chen, Ma, Huang. Motif-Backdoor: Rethinking the Backdoor Attack on "
             "Graph Neural Networks via Motifs. IEEE TCSS 2023. https://arxiv.org/abs/2210.13710")
    threat_model = ("data poisoning, dirty label, gray box (shadow model); with "
                    "poisoned_per_batch > 0 also training control")
    params = (
        Param("motif", str, "M44", "trigger motif", choices=tuple(MOTIFS)),
        Param("candidates", int, 10, "degree-centrality candidates scored by the shadow model",
              low=1, high=1000),
        Param("positions", str, "motif-dc-b", "position rule",
              choices=("motif-dc-b", "dc-b", "random")),
        Param("min_nodes", int, 5, "poisoned training graphs need at least this many nodes",
              low=1, high=1000),
        Param("poison_all_classes", bool, False, "poison graphs of every class (release)"),
        Param("with_replacement", bool, False, "sample poisoned graphs with replacement"),
        Param("score_batch", int, 64, "graphs per batched scoring pass", low=1, high=100000),
        Param("poisoned_per_batch", int, 0,
              "poisoned graphs forced into every training batch (0 = off; release: 5)",
              low=0, high=1000),
    )
    presets = {"official": {"poison_all_classes": True, "with_replacement": True,
                            "poisoned_per_batch": 5}}

    def check(self, ctx: AttackContext) -> None:
        m = motif_size(self.motif)
        check_context(ctx)
        check_context(ctx, m)
        if self.positions == "motif-dc-b" and self.candidates < m:
            raise ParameterError(
                f"motif-ba: candidates must be >= the motif's {m} nodes; got {self.candidates}")

    def run(self, ctx: AttackContext) -> AttackResult:
        self.check(ctx)
        m = motif_size(self.motif)
        device = torch.device(ctx.device)
        shadow = ctx.clean_model
        if shadow is None and self.positions == "motif-dc-b":
            shadow = ctx.train(ctx.build_model(), ctx.train_graphs, ctx.train_labels)
        edges = MOTIFS[self.motif]
        featurizer = ctx.featurizer
        self.search_seconds_ = 0.0

        def positions(graphs: Sequence, rng: np.random.Generator) -> List[np.ndarray]:
            start = time.perf_counter()
            if self.positions == "random":
                out = [np.sort(rng.choice(g.num_nodes(), size=min(m, g.num_nodes()),
                                          replace=False)) for g in graphs]
            else:
                count = self.candidates if self.positions == "motif-dc-b" else m
                cands = [degree_candidates(g, count) for g in graphs]
                if self.positions == "dc-b":
                    out = [c[:m] for c in cands]
                else:
                    scores = isolation_scores(shadow, graphs, cands, device, self.score_batch)
                    out = [c[np.argsort(-s, kind="stable")[:m]] for c, s in zip(cands, scores)]
            self.search_seconds_ += time.perf_counter() - start
            return out

        def plant(g, nodes: np.ndarray):
            local = trigger_edges_for(len(nodes), edges, m)
            return featurizer.refresh(replace_subgraph(g, nodes, local))

        pick_rng = np.random.default_rng(derive_seed(ctx.seed, "motif-ba", "poison"))
        target_for_pool = -1 if self.poison_all_classes else ctx.target_label
        idx = select_poison_indices(ctx.train_graphs, ctx.train_labels, target_for_pool,
                                    ctx.injection_ratio, pick_rng,
                                    min_nodes=max(m, self.min_nodes),
                                    with_replacement=self.with_replacement)
        uniq = np.unique(idx)
        pos_rng = np.random.default_rng(derive_seed(ctx.seed, "motif-ba", "positions"))
        chosen = dict(zip(uniq.tolist(), positions([ctx.train_graphs[i] for i in uniq], pos_rng)))
        graphs, labels = assemble_poisoned(ctx.train_graphs, ctx.train_labels, idx,
                                           ctx.target_label,
                                           lambda i: plant(ctx.train_graphs[i], chosen[i]))
        train_search = self.search_seconds_
        model, model_seconds = None, 0.0
        if self.poisoned_per_batch > 0:
            start = time.perf_counter()
            poisoned, per_batch = uniq.tolist(), self.poisoned_per_batch

            def plan(epoch: int, batch_size: int, gen: torch.Generator) -> List[List[int]]:
                return forced_batches(len(graphs), poisoned, batch_size, per_batch, gen)

            if ctx.progress:
                ctx.progress(f"motif-ba: training with {per_batch} poisoned graphs per batch")
            torch.manual_seed(derive_seed(ctx.seed, "motif-ba", "model"))
            model = ctx.train_poisoned(ctx.build_model(), graphs, labels, uniq, batch_plan=plan)
            model_seconds = time.perf_counter() - start

        def apply_trigger(test_graphs: Sequence, seed: int) -> list:
            rng = np.random.default_rng(derive_seed(seed, "motif-ba", "test-positions"))
            pos = positions(list(test_graphs), rng)
            return [plant(g, p) for g, p in zip(test_graphs, pos)]

        return AttackResult(
            train_graphs=graphs, train_labels=labels,
            poisoned_idx=torch.as_tensor(uniq, dtype=torch.long),
            apply_trigger=apply_trigger,
            trigger={"kind": "motif", "motif": self.motif, "size": m,
                     "edges": [list(e) for e in edges], "positions": self.positions,
                     "positions_by_graph": {str(i): chosen[i].tolist() for i in uniq.tolist()},
                     "search_seconds": round(train_search, 3),
                     "poisoned_per_batch": self.poisoned_per_batch,
                     "model_seconds": round(model_seconds, 3)},
            model=model, adaptive_alpha=float(ctx.adaptive_alpha) if model is not None else 0.0,
        )
