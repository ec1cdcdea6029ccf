"""Nettack / gnn-meta-attack ``.npz`` citation graphs for node classification.

Reads ``cora_ml``, ``citeseer``, ``cora`` (and ``pubmed`` when a user has the file) into a
:class:`NodeDataset`: adjacency symmetrised (``A + A.T``, binarised, self-loops removed) and
restricted to its largest connected component, as Nettack/Metattack and the label-poisoning
paper (Lingam et al., ICLR 2024) do. Features are kept raw (the paper's victims see raw
features). Pickled object arrays in the files are never loaded (``allow_pickle=False``).

Resolution of a dataset name (first hit wins):

1. ``data_dir`` argument: ``<dir>/<name>/<name>.npz`` or ``<dir>/<name>.npz``;
2. env ``DGLCLEANER_DATA_DIR`` (same layouts);
3. the cache ``$DGLCLEANER_CACHE`` or ``~/.cache/dglcleaner`` (``<cache>/npz/<name>.npz``);
4. download from the gnn-meta-attack repository (override the base URL with
   ``DGLCLEANER_DOWNLOAD_BASE``) into the cache.
"""
from __future__ import annotations

import os
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from ..errors import DataError, unknown_name

NPZ_DATASETS = ("cora_ml", "citeseer", "cora", "pubmed")
#: Canonical source (the files DeepRobust downloads for the Nettack/Metattack settings).
DEFAULT_BASE = "https://raw.githubusercontent.com/danielzuegner/gnn-meta-attack/master/data"


@dataclass
class NodeDataset:
    """One graph for transductive node classification.

    ``adj`` is the symmetric 0/1 scipy CSR adjacency without self-loops; ``features`` a dense
    float32 torch tensor (N x d); ``labels`` a long tensor (N,). ``node_ids`` maps each node
    back to its row in the original file (before the LCC restriction).
    """

    name: str
    adj: sp.csr_matrix
    features: Any
    labels: Any
    num_classes: int
    node_ids: np.ndarray
    info: Dict[str, Any] = field(default_factory=dict)

    @property
    def num_nodes(self) -> int:
        return int(self.adj.shape[0])

    def graph(self, self_loops: bool = True):
        """A new DGL graph of ``adj`` (both directions; one self-loop per node if asked)."""
        from .._dgl import dgl

        g = dgl.from_scipy(self.adj)
        if self_loops:
            g = dgl.add_self_loop(dgl.remove_self_loop(g))
        return g


def _candidates(root: Path, name: str) -> list:
    return [root / name / f"{name}.npz", root / f"{name}.npz"]


def cache_dir() -> Path:
    """The dataset cache folder (``DGLCLEANER_CACHE`` or ``~/.cache/dglcleaner``)."""
    return Path(os.environ.get("DGLCLEANER_CACHE") or Path.home() / ".cache" / "dglcleaner")


def resolve_npz(name: str, data_dir: Optional[str] = None, download: bool = True) -> Path:
    """Find (or download) ``<name>.npz``; raise :class:`DataError` with the places tried."""
    if name not in NPZ_DATASETS:
        raise unknown_name("node dataset", name, NPZ_DATASETS)
    tried = []
    roots = []
    if data_dir:
        roots.append(Path(data_dir))
    env = os.environ.get("DGLCLEANER_DATA_DIR")
    if env:
        roots.append(Path(env))
    for root in roots:
        for cand in _candidates(root, name):
            tried.append(str(cand))
            if cand.is_file():
                return cand
    cached = cache_dir() / "npz" / f"{name}.npz"
    tried.append(str(cached))
    if cached.is_file():
        return cached
    if not download:
        raise DataError(f"dataset {name!r} not found; looked in: {', '.join(tried)}")
    base = os.environ.get("DGLCLEANER_DOWNLOAD_BASE", DEFAULT_BASE).rstrip("/")
    url = f"{base}/{name}.npz"
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=cached.parent, suffix=".part")
        os.close(fd)
        urllib.request.urlretrieve(url, tmp)  # noqa: S310 - fixed https/file base
        os.replace(tmp, cached)
    except Exception as exc:  # noqa: BLE001 - any network failure is one user-facing line
        if os.path.exists(tmp):
            os.remove(tmp)
        raise DataError(
            f"dataset {name!r} not found locally ({', '.join(tried)}) and download from {url} "
            f"failed ({type(exc).__name__}); set DGLCLEANER_DATA_DIR or pass --data-dir"
        ) from None
    return cached


def _csr(d: Any, prefix: str) -> sp.csr_matrix:
    """CSR matrix from Nettack (``adj_data``) or gnn-benchmark (``adj_matrix.data``) keys."""
    for p in (prefix + "_", {"adj": "adj_matrix.", "attr": "attr_matrix."}[prefix]):
        if p + "data" in d.files:
            return sp.csr_matrix(
                (d[p + "data"], d[p + "indices"], d[p + "indptr"]), shape=tuple(d[p + "shape"])
            )
    raise DataError(f"npz file has no {prefix} matrix (keys: {', '.join(d.files)})")


def largest_component(adj: sp.spmatrix) -> np.ndarray:
    """Sorted node ids of the largest connected component (ties: the lowest component id)."""
    _, comp = connected_components(adj, directed=False)
    sizes = np.bincount(comp)
    return np.flatnonzero(comp == int(np.argmax(sizes)))


def load_npz_dataset(
    name: str, data_dir: Optional[str] = None, lcc: bool = True, download: bool = True
) -> NodeDataset:
    """Load ``name`` (cora_ml, citeseer, cora, pubmed) as a :class:`NodeDataset`.

    Parameters: ``data_dir`` (see module docstring), ``lcc`` (default True: keep only the
    largest connected component, as in the paper), ``download`` (allow the last-resort download).
    """
    import torch

    path = resolve_npz(name, data_dir, download=download)
    try:
        with np.load(path, allow_pickle=False) as d:
            adj = _csr(d, "adj")
            attr = _csr(d, "attr") if ("attr_data" in d.files or "attr_matrix.data" in d.files) else None
            if "labels" not in d.files:
                raise DataError(f"{path} has no 'labels' array")
            labels = np.asarray(d["labels"]).astype(np.int64)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    if attr is None:
        raise DataError(f"{path} has no feature matrix (attr_*); node datasets need features")
    n = adj.shape[0]
    if adj.shape != (n, n) or attr.shape[0] != n or labels.shape[0] != n:
        raise DataError(f"{path}: inconsistent shapes adj {adj.shape}, attr {attr.shape}, labels {labels.shape}")
    # Nettack preprocessing: symmetrise, binarise, drop self-loops (citeseer has 124).
    adj = (adj + adj.T).tocsr()
    adj.data[:] = 1.0
    adj.setdiag(0)
    adj.eliminate_zeros()
    keep = largest_component(adj) if lcc else np.arange(n)
    adj = adj[keep][:, keep].tocsr().astype(np.float32)
    x = attr[keep].astype(np.float32).toarray()
    y = labels[keep]
    # Relabel classes to 0..C-1 (an LCC could in principle lose a class).
    classes, y = np.unique(y, return_inverse=True)
    return NodeDataset(
        name=name,
        adj=adj,
        features=torch.from_numpy(x),
        labels=torch.from_numpy(y.astype(np.int64)),
        num_classes=int(len(classes)),
        node_ids=keep,
        info={"path": str(path), "lcc": lcc, "num_edges": int(adj.nnz // 2)},
    )
