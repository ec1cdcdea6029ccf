"""An embedded synthetic 2-class graph-classification dataset (no files; for CI and demos).

Class 0: random recursive trees grown by preferential attachment (Barabasi-Albert, m = 1):
about half the nodes are leaves (degree 1), a few hubs. Class 1: Watts-Strogatz small worlds
(ring lattice, every node joined to its 2 nearest neighbours on each side, degree 4, each edge
rewired with probability 0.1, self-loops and duplicates avoided): almost no leaves, degrees 3-6.

Why these classes: degree statistics separate them (a GIN on one-hot degrees learns it), and a
backdoor trigger (Erdos-Renyi(k, 0.8) on k = 20% of the nodes, Sub-BA style) implanted in a tree
rewires only k nodes, leaving ~80% of the tree with its leaves, so a *clean* model rarely calls a
triggered tree a lattice: the trigger is not a natural adversarial perturbation towards class 1.

``ndata['node_label']`` = the node's degree at generation time clipped to 4 (0..4): fixed per
node like an atom type, so it does not follow later structural edits.
Graphs have 10-30 nodes (uniform); classes are exactly balanced (odd counts: one more class 0).
Deterministic for a seed (numpy Generator only; no networkx RNG).
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ParameterError
from .graph_dataset import GraphDataset, assemble_graphs

MIN_NODES, MAX_NODES = 10, 30


def _tree(n: int, rng: np.random.Generator) -> list:
    """Preferential-attachment tree: node i joins an earlier node chosen proportionally to degree."""
    edges = [(0, 1)]
    ends = [0, 1]  # every edge endpoint once: sampling from it is degree-proportional
    for i in range(2, n):
        j = ends[int(rng.integers(len(ends)))]
        edges.append((j, i))
        ends.extend((j, i))
    return edges


def _small_world(n: int, rng: np.random.Generator, k: int = 4, p: float = 0.1) -> list:
    """Watts-Strogatz: ring lattice (k/2 neighbours per side), each edge rewired with prob. p."""
    adj = {i: set() for i in range(n)}
    for i in range(n):
        for s in range(1, k // 2 + 1):
            j = (i + s) % n
            adj[i].add(j)
            adj[j].add(i)
    for s in range(1, k // 2 + 1):
        for i in range(n):
            j = (i + s) % n
            if j in adj[i] and rng.random() < p:
                choices = [w for w in range(n) if w != i and w not in adj[i]]
                if choices:
                    w = choices[int(rng.integers(len(choices)))]
                    adj[i].discard(j)
                    adj[j].discard(i)
                    adj[i].add(w)
                    adj[w].add(i)
    return [(i, j) for i in range(n) for j in adj[i] if i < j]


def make_synthetic(num_graphs: int = 600, seed: int = 0) -> GraphDataset:
    """Generate the synthetic trees-vs-small-worlds dataset (see module docstring).

    Parameters: ``num_graphs`` >= 2 (default 600: with 300 the 5% poisoned set is too small for a reliable backdoor; measured ASR 50 vs 92% over 2 seeds), ``seed`` (default 0).
    """
    if int(num_graphs) != num_graphs or num_graphs < 2:
        raise ParameterError(f"synthetic num_graphs must be an integer >= 2; got {num_graphs!r}")
    num_graphs = int(num_graphs)
    rng = np.random.default_rng(int(seed))
    labels = np.arange(num_graphs) % 2
    rng.shuffle(labels)
    sizes = rng.integers(MIN_NODES, MAX_NODES + 1, size=num_graphs)
    src, dst, node_labels = [], [], []
    offset = 0
    for y, n in zip(labels.tolist(), sizes.tolist()):
        edges = _tree(n, rng) if y == 0 else _small_world(n, rng)
        e = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
        src.append(e[:, 0] + offset)
        dst.append(e[:, 1] + offset)
        deg = np.bincount(e.reshape(-1), minlength=n)
        node_labels.append(np.minimum(deg, 4))
        offset += n
    graphs = assemble_graphs(
        sizes, np.concatenate(src), np.concatenate(dst),
        {"node_label": torch.from_numpy(np.concatenate(node_labels).astype(np.int64))},
    )
    return GraphDataset(
        name="synthetic", graphs=graphs, labels=torch.from_numpy(labels.astype(np.int64)),
        num_classes=2, label_names={0: 0, 1: 1},
    )
