"""GTA: Graph Trojaning Attack with an adaptive, per-graph trigger.

Paper: Xi, Pang, Ji, Wang, "Graph Backdoor", USENIX Security 2021.
Reference implementation: ``zhaohan-xi/GraphBackdoor`` (= ``HarrialX/GraphBackdoor``) @ 3d975d7;
GCleaner's settings (generators 5 epochs per iteration, 20 bi-level iterations) are the defaults.

Threat model: data poisoning with control of training (the attacker trains the backdoored model
itself, starting from a benign model, as the release does), dirty label, white box on the model
it trains. The trigger is *adaptive*: two generators map each graph to its own trigger.

Algorithm (per the release, with the topology generator made trainable):

1. Poison ``injection_ratio`` of the training set (non-target graphs with at least ``k`` nodes;
   the release draws from all classes: ``poison_all_classes``). In each, ``k`` random nodes are
   the trigger nodes; edges among them are removed and their features zeroed (``init_trigger``).
2. Generator inputs (``gtn_input_type='2hop'``): ``A_in = binarise(A + A^2)`` with zero diagonal,
   ``X_in = A_in X``, computed on the graph after step 1; rows padded to ``N_max`` (the largest
   training graph).
3. Topology generator (``GraphTrojanNet``: dropout, then ``layers`` Linear layers of width
   ``N_max`` with ReLU/dropout between): ``sigmoid`` -> symmetrise -> hard threshold 0.5 in the
   forward pass, identity in the backward pass (straight-through, the release's ``GradWhere``) ->
   trigger block only. Feature generator (same MLP of width ``d``): ``ReLU``, trigger rows only.
4. Bi-level loop, ``iterations`` times: train the topology generator ``gen_epochs`` steps, then
   the feature generator ``gen_epochs`` steps (Adam, lr 0.01, wd 5e-4, one full-batch step per
   epoch, GNN frozen in eval mode, cross-entropy towards the target label); regenerate the
   triggers of the poisoned graphs; train the GNN ``model_epochs`` epochs on the poisoned set.
   With ``resample_steps`` > 1 (the release's outer loop, ``resample_steps = 3`` x
   ``bilevel_steps = 4``), steps 1-4 repeat: each resampling step draws a new poisoned set and
   new trigger nodes (the previous draw's graphs go back to clean, as in the release, which
   rebuilds its training data from the benign copy each time), and runs ``iterations`` bi-level
   iterations on it; the generators, their optimisers and the model carry over. The result's
   poisoned set (``train_graphs``, ``poisoned_idx``) is the **last draw**: it is the data of the
   model's last training round. The release keeps no poisoned set; its in-memory model after the
   loop is the one we return, but its ``save_bkd_model`` checkpoint is written during the first
   draw only (``rs_step == 0``), which we do not reproduce. The model has also been trained on the
   earlier draws' triggered graphs: ``trigger.poisoned_over_draws`` counts every training graph
   that carried a trigger in some draw.
5. Test time: the trained generators produce a trigger for each graph (fresh random trigger
   nodes, same rule).

Why the topology generator learns here: the candidate trigger edges (all pairs among the trigger
nodes) are passed to the model as extra edges whose ``edge_weight`` is the binarised generator
output, so the model's gradient reaches the generator through the straight-through estimator.
The release builds the DGL graph from a detached adjacency, so its topology generator never gets a
gradient (``zhaohan-xi/GraphBackdoor#4``); ``official_detach=True`` reproduces that.

Parameters
----------
iterations : int, default 20, in [1, 1000]
    Bi-level iterations per resampling step (GCleaner: 20; release: ``bilevel_steps = 4``).
resample_steps : int, default 1, in [1, 1000]
    Draws of the poisoned set; total bi-level iterations = ``resample_steps * iterations``
    (GCleaner: 1; release: 3).
gen_epochs : int, default 5, in [0, 1000]
    Generator steps per iteration, for each generator (GCleaner: 5; release: 20).
model_epochs : int, default 2, in [0, 1000]
    GNN training epochs on the poisoned set per iteration (run's optimiser settings).
gen_lr : float, default 0.01, in (0, 1]
gen_weight_decay : float, default 5e-4, in [0, 1]
layers : int, default 3, in [1, 10]
    Linear layers per generator (``gtn_layernum``).
dropout : float, default 0.05, in [0, 1)
threshold : float, default 0.5, in (0, 1)
    Binarisation threshold of the topology generator (``topo_thrd``).
input_type : str, default "2hop", one of 1hop, 2hop
feat_activation : str, default "relu", one of relu, sigmoid
    Output activation of the feature generator (release option ``feat_activation``; ``relu``
    is unbounded, ``sigmoid`` keeps generated features in (0, 1) like one-hot inputs).
official_detach : bool, default False
    Detach the generated adjacency from the model (the release's behaviour: the topology generator
    does not learn).
poison_all_classes : bool, default False
    Draw poisoned graphs from all classes (release) instead of non-target graphs only.
init_from_clean : bool, default True
    Start the bi-level loop from a copy of the clean model (release: the benign model);
    otherwise from a fresh model trained on the clean set first.
gen_batch : int, default 256, in [1, 100000]
    Graphs per forward chunk in generator training (gradients are accumulated, one step per
    epoch, as in the release); only memory and speed depend on it.

Preset ``official``: ``official_detach``, ``poison_all_classes``, ``gen_epochs=20``,
``resample_steps=3``, ``iterations=4``.

Adaptive attack (GCleaner Sec. 5.2.6): with the run's ``adaptive_alpha`` > 0 the GNN steps of
the bi-level loop use Eq. 16's loss (cross-entropy plus alpha times the mean pairwise cosine of
the poisoned graphs' embeddings), since GTA, not the runner, trains its backdoored model. The
model copied from the clean one at the start is not adapted (it has seen no trigger).

Known deviations: no early stop at 100 % test ASR (the attacker has no test set here); the
generator optimisers keep their Adam state across iterations (the release makes new ones in
every ``train_gtn`` call); the GNN step uses the run's mini-batch trainer on the whole poisoned
training set instead of the release's full-batch ``loss_pos + loss_neg`` steps; clean negatives
are left out of the generator loss (they have no path to the generators, so the gradient
direction is the same). Test graphs larger than ``N_max`` get their trigger on nodes ``< N_max``
and generator inputs truncated to ``N_max`` columns. With GCN/GAT, a candidate edge of weight 0
still counts in the layer's degree normalisation / attention softmax during generator training
(GIN, the default, is exact).

Example
-------
>>> from dglcleaner_plugins.attacks.gta import GTA
>>> GTA().iterations, GTA(preset="official").official_detach
(20, True)
>>> GTA(preset="official").resample_steps * GTA(preset="official").iterations
12
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Dict, List, Sequence

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from dglcleaner._dgl import dgl
from dglcleaner.api import AttackContext, AttackResult, PluginBase
from dglcleaner.backdoor import assemble_poisoned, check_context, select_poison_indices
from dglcleaner.graph_ops import from_pairs, replace_subgraph, undirected_pairs
from dglcleaner.params import Param
from dglcleaner.seeding import derive_seed


class TrojanNet(nn.Module):
    """GTA's ``GraphTrojanNet``: dropout, ``layers`` square Linear layers with ReLU/dropout."""

    def __init__(self, dim: int, layers: int = 3, dropout: float = 0.05) -> None:
        super().__init__()
        mods: List[nn.Module] = [nn.Dropout(dropout)] if dropout > 0 else []
        for _ in range(layers - 1):
            mods += [nn.Linear(dim, dim), nn.ReLU()]
            if dropout > 0:
                mods.append(nn.Dropout(dropout))
        mods.append(nn.Linear(dim, dim))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _GradWhere(torch.autograd.Function):
    """Exact 0/1 forward, identity backward (``hard + p - p.detach()`` would leave 1 - 6e-8)."""

    @staticmethod
    def forward(ctx, prob: torch.Tensor,  # type: ignore[override]
                threshold: float) -> torch.Tensor:
        return (prob > threshold).to(prob.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad, None


def straight_through(prob: torch.Tensor, threshold: float) -> torch.Tensor:
    """Hard 0/1 in the forward pass, identity gradient in the backward pass (``GradWhere``)."""
    return _GradWhere.apply(prob, float(threshold))


@dataclass
class _Chunk:
    """Precomputed, fixed structure of a chunk of trigger-carrying graphs.

    ``bg``: batched graphs with the trigger block emptied plus every candidate pair among the
    trigger nodes (both directions); ``feat0``: features with trigger rows zeroed; ``topo_in``
    (G*k, N_max) and ``feat_in`` (G*k, d): generator inputs of the trigger slots;
    ``pair_*``: valid candidate pairs (graph, slot a, slot b) and their two edge ids in ``bg``;
    ``row_*``: valid slots and their node ids in ``bg``.
    """

    bg: "dgl.DGLGraph"
    feat0: torch.Tensor
    topo_in: torch.Tensor
    feat_in: torch.Tensor
    nodes: torch.Tensor  # (G, k) local node ids (0 where invalid)
    pair_g: torch.Tensor
    pair_a: torch.Tensor
    pair_b: torch.Tensor
    pair_fwd: torch.Tensor
    pair_bwd: torch.Tensor
    row_g: torch.Tensor
    row_a: torch.Tensor
    row_node: torch.Tensor
    base_graphs: list  # per graph: graph with trigger block emptied (features refreshed)
    valid: np.ndarray  # (G, k) bool


class GTA(PluginBase):
    """Graph Trojaning Attack (adaptive trigger from topology and feature generators)."""

    name = "gta"
    kind = "attack"
    task = "graph"
    summary = "Adaptive per-graph trigger from trained topology/feature generators (bi-level)."
    paper = ("Xi, Pang, Ji, Wang. Graph Backdoor. USENIX Security 2021. "
             "https://arxiv.org/abs/2006.11890")
    threat_model = "data poisoning + training control, dirty label, white box"
    params = (
        Param("iterations", int, 20, "bi-level iterations (per resampling step)", low=1,
              high=1000),
        Param("resample_steps", int, 1, "draws of the poisoned set (release: 3)", low=1,
              high=1000),
        Param("gen_epochs", int, 5, "generator steps per iteration (each generator)", low=0,
              high=1000),
        Param("model_epochs", int, 2, "GNN epochs on the poisoned set per iteration", low=0,
              high=1000),
        Param("gen_lr", float, 0.01, "generator learning rate", low=0.0, high=1.0,
              low_open=True),
        Param("gen_weight_decay", float, 5e-4, "generator weight decay", low=0.0, high=1.0),
        Param("layers", int, 3, "Linear layers per generator", low=1, high=10),
        Param("dropout", float, 0.05, "generator dropout", low=0.0, high=1.0, high_open=True),
        Param("threshold", float, 0.5, "topology binarisation threshold", low=0.0, high=1.0,
              low_open=True, high_open=True),
        Param("input_type", str, "2hop", "generator input aggregation", choices=("1hop", "2hop")),
        Param("feat_activation", str, "relu", "feature generator output activation",
              choices=("relu", "sigmoid")),
        Param("official_detach", bool, False,
              "detach the generated adjacency (release bug: topology generator does not learn)"),
        Param("poison_all_classes", bool, False, "poison graphs of every class (release)"),
        Param("init_from_clean", bool, True, "start from a copy of the clean model"),
        Param("gen_batch", int, 256, "graphs per forward chunk in generator training", low=1,
              high=100000),
    )
    presets = {
        "official": {"official_detach": True, "poison_all_classes": True, "gen_epochs": 20,
                     "resample_steps": 3, "iterations": 4},
    }

    # ------------------------------------------------------------------------------------
    def check(self, ctx: AttackContext) -> None:
        check_context(ctx)

    def run(self, ctx: AttackContext) -> AttackResult:
        self.check(ctx)
        k = int(ctx.trigger_size)
        device = torch.device(ctx.device)
        timings: Dict[str, float] = {"prepare": 0.0, "topology_generator": 0.0,
                                     "feature_generator": 0.0, "materialise": 0.0,
                                     "model": 0.0}
        say = ctx.progress or (lambda msg: None)
        torch.manual_seed(derive_seed(ctx.seed, "gta", "torch"))

        # 1. the pool the poisoned graphs are drawn from (one draw per resampling step)
        pick_rng = np.random.default_rng(derive_seed(ctx.seed, "gta", "poison"))
        pos_rng = np.random.default_rng(derive_seed(ctx.seed, "gta", "positions"))
        target_for_pool = -1 if self.poison_all_classes else ctx.target_label
        self.n_max_ = n_max = max(g.num_nodes() for g in ctx.train_graphs)

        def draw():
            """A fresh poisoned set and trigger nodes (the release's ``bkd_cdd('train')``)."""
            start = time.perf_counter()
            picked = np.unique(select_poison_indices(
                ctx.train_graphs, ctx.train_labels, target_for_pool, ctx.injection_ratio,
                pick_rng, min_nodes=k))
            victims = [ctx.train_graphs[i] for i in picked.tolist()]
            slots = [self._choose(g.num_nodes(), k, pos_rng) for g in victims]
            built = [self._prepare(victims[s:s + self.gen_batch], slots[s:s + self.gen_batch],
                                   k, ctx.featurizer, device)
                     for s in range(0, len(victims), self.gen_batch)]
            timings["prepare"] += time.perf_counter() - start
            return picked, built

        # 2. generators (kept across resampling steps, as in the release)
        d = int(ctx.featurizer.dim)
        torch.manual_seed(derive_seed(ctx.seed, "gta", "generators"))
        self.toponet_ = TrojanNet(n_max, self.layers, self.dropout).to(device)
        self.featnet_ = TrojanNet(d, self.layers, self.dropout).to(device)
        topo_init = [p.detach().clone() for p in self.toponet_.parameters()]
        opt_topo = torch.optim.Adam(self.toponet_.parameters(), lr=self.gen_lr,
                                    weight_decay=self.gen_weight_decay)
        opt_feat = torch.optim.Adam(self.featnet_.parameters(), lr=self.gen_lr,
                                    weight_decay=self.gen_weight_decay)
        idx, chunks = draw()
        self.draws_ = [idx]  # poisoned indices of every draw (inspection, tests)

        # 3. the model the attacker trains (release: a copy of the benign model)
        start = time.perf_counter()
        if self.init_from_clean and ctx.clean_model is not None:
            model = copy.deepcopy(ctx.clean_model).to(device)
        else:
            model = ctx.train(ctx.build_model(), ctx.train_graphs, ctx.train_labels)
        timings["model"] += time.perf_counter() - start

        target = int(ctx.target_label)
        history = []
        for rs in range(self.resample_steps):
            if rs > 0:  # a new draw; the previous draw's graphs are clean again (release)
                idx, chunks = draw()
                self.draws_.append(idx)
            labels = ctx.train_labels.clone()
            labels[torch.as_tensor(idx, dtype=torch.long)] = ctx.target_label
            graphs = list(ctx.train_graphs)
            for it in range(self.iterations):
                say(f"gta resampling {rs + 1}/{self.resample_steps}, "
                    f"iteration {it + 1}/{self.iterations}")
                start = time.perf_counter()
                if not self.official_detach:  # detached: no gradient, the step would be a no-op
                    loss_t = self._train_generator(model, chunks, "topo", opt_topo, target)
                else:
                    loss_t = float("nan")
                timings["topology_generator"] += time.perf_counter() - start
                start = time.perf_counter()
                loss_f = self._train_generator(model, chunks, "feat", opt_feat, target)
                timings["feature_generator"] += time.perf_counter() - start

                start = time.perf_counter()
                triggered = self._materialise(chunks, ctx.featurizer)
                for i, g in zip(idx.tolist(), triggered):
                    graphs[i] = g
                timings["materialise"] += time.perf_counter() - start
                start = time.perf_counter()
                if self.model_epochs > 0:  # with the adaptive loss of the run, if any
                    model = ctx.train_poisoned(model, graphs, labels, idx,
                                               epochs=self.model_epochs)
                timings["model"] += time.perf_counter() - start
                history.append({"topology_loss": loss_t, "feature_loss": loss_f})
        model.eval()

        topo_change = float(sum(float((p.detach() - q).norm() ** 2) for p, q in
                                zip(self.toponet_.parameters(), topo_init)) ** 0.5)
        featurizer = ctx.featurizer

        def apply_trigger(test_graphs: Sequence, seed: int) -> list:
            rng = np.random.default_rng(derive_seed(seed, "gta", "test-positions"))
            test_slots = [self._choose(g.num_nodes(), k, rng) for g in test_graphs]
            out: list = []
            for s in range(0, len(test_graphs), self.gen_batch):
                chunk = self._prepare(list(test_graphs[s:s + self.gen_batch]),
                                      test_slots[s:s + self.gen_batch], k, featurizer, device)
                out.extend(self._materialise([chunk], featurizer))
            return out

        result_graphs, result_labels = assemble_poisoned(
            ctx.train_graphs, ctx.train_labels, idx, ctx.target_label, lambda i: graphs[i])
        return AttackResult(
            train_graphs=result_graphs, train_labels=result_labels,
            poisoned_idx=torch.as_tensor(idx, dtype=torch.long),
            apply_trigger=apply_trigger,
            trigger={"kind": "gta-adaptive", "size": k, "n_max": n_max,
                     "input_type": self.input_type, "official_detach": self.official_detach,
                     "resample_steps": self.resample_steps,
                     "poisoned_over_draws": int(len(np.unique(np.concatenate(self.draws_)))),
                     "topology_param_change": round(topo_change, 6),
                     "final_losses": history[-1] if history else {},
                     "timings_s": {key: round(v, 3) for key, v in timings.items()}},
            model=model, adaptive_alpha=float(ctx.adaptive_alpha) if self.model_epochs else 0.0,
        )

    # ------------------------------------------------------------------------------------
    def _choose(self, n: int, k: int, rng: np.random.Generator) -> np.ndarray:
        """``k`` random trigger nodes among the first ``N_max`` nodes (all of them if fewer)."""
        pool = min(n, self.n_max_)
        return np.sort(rng.choice(pool, size=min(k, pool), replace=False))

    def _prepare(self, graphs: Sequence, slots: Sequence[np.ndarray], k: int, featurizer,
                 device: torch.device) -> _Chunk:
        """Build the fixed structure of a chunk (see :class:`_Chunk`)."""
        n_max = self.n_max_
        G = len(graphs)
        nodes = np.zeros((G, k), dtype=np.int64)
        valid = np.zeros((G, k), dtype=bool)
        topo_in = np.zeros((G, k, n_max), dtype=np.float32)
        feat_rows: List[torch.Tensor] = []
        base_graphs, with_cand, feats0 = [], [], []
        pair_g, pair_a, pair_b, pair_fwd, pair_bwd = [], [], [], [], []
        edge_off = 0
        for gi, (g, sel) in enumerate(zip(graphs, slots)):
            n, m = g.num_nodes(), len(sel)
            nodes[gi, :m] = sel
            valid[gi, :m] = True
            g0 = featurizer.refresh(replace_subgraph(g, sel, []))
            base_graphs.append(g0)
            x0 = g0.ndata["feat"].clone()
            x0[torch.as_tensor(sel, dtype=torch.long)] = 0.0  # init_trigger: zero features
            feats0.append(x0)
            u, v = undirected_pairs(g0)
            adj = sp.csr_matrix((np.ones(len(u) * 2, dtype=np.float32),
                                 (np.concatenate([u, v]), np.concatenate([v, u]))), shape=(n, n))
            if self.input_type == "2hop":
                adj = ((adj + adj @ adj) > 0).astype(np.float32)
                adj.setdiag(0)
                adj.eliminate_zeros()
            rows = adj[sel]
            dense = rows.toarray()
            cols = min(n, n_max)
            topo_in[gi, :m, :cols] = dense[:, :cols]
            feat_rows.append(torch.as_tensor(rows @ x0.cpu().numpy(), dtype=torch.float32))
            # candidate pairs among trigger slots, appended after g0's edges
            a, b = np.triu_indices(m, 1)
            src, dst = (t.cpu().numpy() for t in g0.edges())
            e0 = len(src)
            cu, cv = sel[a], sel[b]
            gc = dgl.graph((np.concatenate([src, cu, cv]), np.concatenate([dst, cv, cu])),
                           num_nodes=n, idtype=g0.idtype)
            with_cand.append(gc)
            npair = len(a)
            pair_g.append(np.full(npair, gi))
            pair_a.append(a)
            pair_b.append(b)
            pair_fwd.append(edge_off + e0 + np.arange(npair))
            pair_bwd.append(edge_off + e0 + npair + np.arange(npair))
            edge_off += e0 + 2 * npair
        bg = dgl.batch(with_cand).to(device)
        node_off = np.concatenate([[0], np.cumsum([g.num_nodes() for g in graphs])[:-1]])
        rg, ra = np.nonzero(valid)
        feat_in = np.zeros((G, k, feat_rows[0].shape[1] if feat_rows else 0), dtype=np.float32)
        for gi, fr in enumerate(feat_rows):
            feat_in[gi, :fr.shape[0]] = fr.numpy()

        def t(x, dtype=torch.long):
            return torch.as_tensor(np.concatenate(x) if isinstance(x, list) else x,
                                   dtype=dtype, device=device)

        return _Chunk(
            bg=bg, feat0=torch.cat(feats0).to(device),
            topo_in=torch.as_tensor(topo_in.reshape(G * k, n_max), device=device),
            feat_in=torch.as_tensor(feat_in.reshape(G * k, -1), device=device),
            nodes=torch.as_tensor(nodes, device=device),
            pair_g=t(pair_g), pair_a=t(pair_a), pair_b=t(pair_b),
            pair_fwd=t(pair_fwd), pair_bwd=t(pair_bwd),
            row_g=t(rg), row_a=t(ra), row_node=t(node_off[rg] + nodes[rg, ra]),
            base_graphs=base_graphs, valid=valid,
        )

    def _topology(self, c: _Chunk) -> torch.Tensor:
        """Binarised (straight-through) weights of the valid candidate pairs."""
        G, k = c.nodes.shape
        out = torch.sigmoid(self.toponet_(c.topo_in)).view(G, k, -1)
        block = torch.gather(out, 2, c.nodes.unsqueeze(1).expand(G, k, k))  # [g, a, nodes[b]]
        block = (block + block.transpose(1, 2)) / 2.0
        w = straight_through(block, self.threshold)[c.pair_g, c.pair_a, c.pair_b]
        return w.detach() if self.official_detach else w

    def _features(self, c: _Chunk) -> torch.Tensor:
        """Generated features of the valid trigger slots (rows ``row_node`` of the batch)."""
        G, k = c.nodes.shape
        raw = self.featnet_(c.feat_in)
        act = torch.sigmoid if self.feat_activation == "sigmoid" else F.relu
        out = act(raw).view(G, k, -1)
        return out[c.row_g, c.row_a]

    def _forward(self, model, c: _Chunk, w: torch.Tensor, xt: torch.Tensor) -> torch.Tensor:
        ew = torch.ones(c.bg.num_edges(), device=w.device, dtype=w.dtype)
        ew = ew.scatter(0, c.pair_fwd, w).scatter(0, c.pair_bwd, w)
        feat = c.feat0.index_add(0, c.row_node, xt)
        return model(c.bg, feat, edge_weight=ew)

    def _train_generator(self, model, chunks: List[_Chunk], which: str,
                         opt: torch.optim.Optimizer, target: int) -> float:
        """``gen_epochs`` full-batch steps of one generator with the GNN frozen (eval mode)."""
        if self.gen_epochs == 0 or not chunks:
            return float("nan")
        model.eval()
        frozen = [p.requires_grad for p in model.parameters()]
        for p in model.parameters():
            p.requires_grad_(False)
        net = self.toponet_ if which == "topo" else self.featnet_
        net.train()
        total = sum(int(c.valid.shape[0]) for c in chunks)
        last = float("nan")
        try:
            for _ in range(self.gen_epochs):
                opt.zero_grad()
                running = 0.0
                for c in chunks:
                    if which == "topo":
                        w = self._topology(c)
                        with torch.no_grad():
                            self.featnet_.eval()
                            xt = self._features(c)
                    else:
                        with torch.no_grad():
                            self.toponet_.eval()
                            w = self._topology(c)
                        xt = self._features(c)
                    logits = self._forward(model, c, w, xt)
                    y = torch.full((logits.shape[0],), target, device=logits.device)
                    loss = F.cross_entropy(logits, y, reduction="sum") / total
                    loss.backward()
                    running += float(loss.detach())
                opt.step()
                last = running
        finally:
            for p, flag in zip(model.parameters(), frozen):
                p.requires_grad_(flag)
            net.eval()
        return last

    @torch.no_grad()
    def _materialise(self, chunks: List[_Chunk], featurizer) -> list:
        """Concrete triggered graphs from the generators in eval mode: the base graph plus the
        candidate edges the topology generator switches on; trigger rows get the generated
        features, every other row is recomputed by the featurizer."""
        self.toponet_.eval()
        self.featnet_.eval()
        out = []
        for c in chunks:
            w = self._topology(c).cpu().numpy() > 0.5
            xt = self._features(c).cpu()
            pg, pa, pb = (x.cpu().numpy() for x in (c.pair_g, c.pair_a, c.pair_b))
            rg, ra = c.row_g.cpu().numpy(), c.row_a.cpu().numpy()
            nodes = c.nodes.cpu().numpy()
            for gi, g0 in enumerate(c.base_graphs):
                sel = (pg == gi) & w
                u, v = undirected_pairs(g0)
                tu, tv = nodes[gi, pa[sel]], nodes[gi, pb[sel]]
                lo, hi = np.minimum(tu, tv), np.maximum(tu, tv)
                g = featurizer.refresh(from_pairs(g0.num_nodes(), np.concatenate([u, lo]),
                                                  np.concatenate([v, hi]), g0))
                rows = rg == gi
                feat = g.ndata["feat"].clone()
                feat[torch.as_tensor(nodes[gi, ra[rows]], dtype=torch.long)] = \
                    xt[torch.as_tensor(np.flatnonzero(rows), dtype=torch.long)].to(feat.dtype)
                g.ndata["feat"] = feat
                out.append(g)
        return out
