"""Randomized smoothing by subsampling: keep each node pair with probability beta.

Paper: Zhang, Jia, Wang, Gong, "Backdoor Attacks to Graph Neural Networks", SACMAT 2021
(certified defense by randomized subsampling); reference code ``zaixizhang/graphbackdoor`` @
af8344f (``--adversarial_training --randomly_preserve 0.1``). GCleaner (Table 3) uses it as a
baseline without giving beta or N.

Threat model: training control. The defender trains its own model on subsampled (possibly
poisoned) training graphs and controls test-time inputs.

Algorithm:

1. Training: every time a training graph is drawn into a batch (so: a fresh sample every epoch,
   as the release subsamples each training batch) it is replaced by a subsample that keeps each
   node pair with probability ``beta``: an edge survives with probability ``beta``, no edge is
   ever added. Features are recomputed from the subsampled structure (the release recomputes
   the degree features).
2. Test (``certified`` false, the release): each evaluated graph is subsampled once
   (``DefenseResult.transform``).
3. Test (``certified`` true, the paper's smoothed classifier): majority vote of the model's
   predictions over ``num_samples`` independent subsamples (``DefenseResult.predict``; ties go
   to the smaller class index). No certificate radius is computed.

Parameters
----------
beta : float, default 0.1, in (0, 1]
    Keep probability of each node pair (the release's ``randomly_preserve``).
sampling : str, default "bernoulli", one of bernoulli, pairs
    ``bernoulli``: every edge kept independently with probability beta. ``pairs``: the
    release's sampler, exactly ``int(beta * n(n-1)/2)`` node pairs drawn without replacement
    and the edges among them kept (the kept count then varies less).
certified : bool, default False
    Majority vote over ``num_samples`` subsamples at test time.
num_samples : int, default 20, in [1, 10000]
    Votes per graph in the certified variant (the paper's N is not stated in GCleaner; larger
    is smoother and proportionally slower).

Known deviations: the release draws a single subsample of each test graph per evaluation;
that is ``certified=false``. Randomness comes from per-graph streams derived from the defense
seed, so results do not depend on batch composition.

Example
-------
>>> RandomizedSmoothing(beta=0.3).beta
0.3
"""
from __future__ import annotations

from typing import Any, List, Sequence

import numpy as np
import torch

from dglcleaner.api import DefenseContext, DefenseResult, PluginBase, ThreatModel
from dglcleaner.graph_ops import undirected_pairs
from dglcleaner.params import Param


def _keep_mask(u: np.ndarray, v: np.ndarray, n: int, beta: float, rng: np.random.Generator,
               sampling: str) -> np.ndarray:
    """Which of a graph's undirected edges ``(u, v)`` (``u < v``, ``n`` nodes) survive."""
    if sampling == "pairs":
        total = n * (n - 1) // 2
        k = int(beta * total)
        chosen = rng.choice(total, size=k, replace=False) if k else np.empty(0, dtype=np.int64)
        # index of pair (u, v), u < v, in row-major order of the strict upper triangle
        pair_id = u * n - u * (u + 1) // 2 + (v - u - 1)
        return np.isin(pair_id, chosen)
    return rng.random(len(u)) < beta


def subsample_graph(g, beta: float, rng: np.random.Generator, featurizer: Any,
                    sampling: str = "bernoulli", pairs: Any = None):
    """A new graph keeping each node pair of ``g`` with probability ``beta`` (edges only
    survive, none are added), with ``ndata['feat']`` recomputed by ``featurizer``.

    ``pairs``: ``undirected_pairs(g)`` when the caller already has it (it is the same for
    every sample of ``g``).
    """
    from dglcleaner.graph_ops import from_pairs

    n = g.num_nodes()
    u, v = undirected_pairs(g) if pairs is None else pairs
    keep = _keep_mask(u, v, n, beta, rng, sampling)
    # clone: no sample aliases the caller's tensors. Setting feat on this fresh graph is what
    # featurizer.refresh computes, without refresh's second copy of the whole graph (about a
    # third of a sample's time, profiled on Bitcoin).
    h = from_pairs(n, u[keep], v[keep], g, clone=True)
    h.ndata["feat"] = featurizer(h)
    return h


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) % (2**32)] + [int(k) for k in keys])


class ResampledGraphs(Sequence):
    """A list-like view of ``graphs`` whose every access returns a fresh subsample.

    The training loop indexes graphs once per epoch, so each epoch sees new subsamples; access
    ``c`` of graph ``i`` uses the stream ``(seed, i, c)``, hence the same seed and batch order
    give the same samples.
    """

    def __init__(self, graphs: Sequence, beta: float, seed: int, featurizer: Any,
                 sampling: str) -> None:
        self.graphs, self.beta, self.seed = graphs, beta, seed
        self.featurizer, self.sampling = featurizer, sampling
        self.count = np.zeros(len(graphs), dtype=np.int64)
        self._pairs: List[Any] = [None] * len(graphs)  # each graph's edges, found once

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        c = int(self.count[i])
        self.count[i] += 1
        if self._pairs[i] is None:
            self._pairs[i] = undirected_pairs(self.graphs[i])
        return subsample_graph(self.graphs[i], self.beta, _rng(self.seed, 0, i, c),
                               self.featurizer, self.sampling, self._pairs[i])

    def make_batch(self, ids: Sequence[int]):
        """``dgl.batch([self[i] for i in ids])``, built as one graph (the training loop's
        hook, :func:`dglcleaner.training.batch_of`): the same samples from the same streams,
        the same edge order and node data, without a DGL graph per sample (most of a
        smoothing run's time, profiled on Bitcoin)."""
        from dglcleaner._dgl import dgl

        src, dst, sizes, kept = [], [], [], []
        offset = 0
        for i in ids:
            i = int(i)
            c = int(self.count[i])
            self.count[i] += 1
            g = self.graphs[i]
            if self._pairs[i] is None:
                self._pairs[i] = undirected_pairs(g)
            u, v = self._pairs[i]
            n = g.num_nodes()
            keep = _keep_mask(u, v, n, self.beta, _rng(self.seed, 0, i, c), self.sampling)
            ku, kv = u[keep] + offset, v[keep] + offset
            # from_pairs's order: the pairs one way, then the other way
            src += [ku, kv]
            dst += [kv, ku]
            sizes.append(n)
            kept.append(2 * len(ku))
            offset += n
        first = self.graphs[int(ids[0])]
        bg = dgl.graph((torch.as_tensor(np.concatenate(src), dtype=torch.int64),
                        torch.as_tensor(np.concatenate(dst), dtype=torch.int64)),
                       num_nodes=offset, idtype=first.idtype, device=first.device)
        bg.set_batch_num_nodes(torch.tensor(sizes, dtype=first.idtype, device=first.device))
        bg.set_batch_num_edges(torch.tensor(kept, dtype=first.idtype, device=first.device))
        for key in first.ndata.keys():
            if key != "feat":
                bg.ndata[key] = torch.cat([self.graphs[int(i)].ndata[key] for i in ids])
        bg.ndata["feat"] = self.featurizer(bg)
        return bg


class RandomizedSmoothing(PluginBase):
    """Train and test on random subsamples of the graphs; optional majority vote."""

    name = "smoothing"
    kind = "defense"
    task = "graph"
    summary = "Randomized subsampling of node pairs at train and test time (optional vote)."
    paper = ("Zhang, Jia, Wang, Gong. Backdoor Attacks to Graph Neural Networks. SACMAT 2021 "
             "(randomized-subsampling defense). https://arxiv.org/abs/2006.11165")
    threat_model = ThreatModel.TRAINING_CONTROL
    params = (
        Param("beta", float, 0.1, "keep probability of each node pair", low=0.0, high=1.0,
              low_open=True),
        Param("sampling", str, "bernoulli", "edge sampler", choices=("bernoulli", "pairs")),
        Param("certified", bool, False, "majority vote over num_samples subsamples at test time"),
        Param("num_samples", int, 20, "votes per graph (certified variant)", low=1, high=10000),
    )
    presets = {"certified": {"certified": True}, "official": {"sampling": "pairs"}}

    def subsample(self, graphs: Sequence, seed: int, featurizer: Any, stream: int = 1,
                  pairs: Any = None) -> List:
        """One subsample of each graph; graph ``i`` uses the stream ``(seed, stream, i)``.
        ``pairs``: the graphs' ``undirected_pairs``, if known."""
        pairs = pairs or [None] * len(graphs)
        return [subsample_graph(g, self.beta, _rng(seed, stream, i), featurizer, self.sampling,
                                p) for i, (g, p) in enumerate(zip(graphs, pairs))]

    def vote(self, model, graphs: Sequence, seed: int, featurizer: Any,
             num_classes: int) -> torch.Tensor:
        """Majority vote of ``model`` over ``num_samples`` subsamples of each graph."""
        from dglcleaner.training import predict

        counts = torch.zeros(len(graphs), num_classes, dtype=torch.long)
        rows = torch.arange(len(graphs))
        pairs = [undirected_pairs(g) for g in graphs]
        for s in range(self.num_samples):
            pred = predict(model, self.subsample(graphs, seed, featurizer, stream=2 + s,
                                                 pairs=pairs))
            counts[rows, pred] += 1
        return counts.argmax(dim=1)  # argmax returns the first maximum: ties -> smaller class

    def run(self, ctx: DefenseContext) -> DefenseResult:
        from dglcleaner.seeding import derive_seed

        featurizer, num_classes = ctx.featurizer, ctx.num_classes
        train_seed = derive_seed(ctx.seed, "smoothing", "train")
        test_seed = derive_seed(ctx.seed, "smoothing", "test")
        view = ResampledGraphs(ctx.train_graphs, self.beta, train_seed, featurizer,
                               self.sampling)
        model = ctx.train(ctx.build_model(), view, ctx.train_labels)
        info = {"beta": self.beta, "train_samples_drawn": int(view.count.sum())}
        if self.certified:
            return DefenseResult(
                model=model, info=info,
                predict=lambda m, gs: self.vote(m, gs, test_seed, featurizer, num_classes))
        return DefenseResult(model=model, info=info,
                             transform=lambda gs: self.subsample(gs, test_seed, featurizer))
