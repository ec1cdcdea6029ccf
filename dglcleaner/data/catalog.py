"""Dataset names, where their files are looked for, and download into a cache.

Resolution order for a file-backed dataset (first hit wins):

1. the ``data_dir`` argument (CLI ``--data-dir``),
2. env ``DGLCLEANER_DATA_DIR``,
3. the cache dir (env ``DGLCLEANER_CACHE``, default ``~/.cache/dglcleaner``),
4. a download from ``SOURCES`` into the cache (only if ``download=True``); env
   ``DGLCLEANER_DOWNLOAD_BASE`` replaces the URL prefix (mirrors, tests).

Inside a data dir a dataset is the folder ``<dir>/<Name>/`` (case-insensitive) holding TU raw files
(``NAME_A.txt`` ...) or a GIN text file (``COLLAB.txt``, ``bitcoin.txt``), or a TU zip
``<dir>/<NAME>.zip``.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional

import torch

from ..errors import DataError, ParameterError, unknown_name
from .graph_dataset import GraphDataset, select_graphs
from .readers import read_gin_text, read_tu_raw, read_tu_zip
from .synthetic import make_synthetic

_TU_BASE = "https://www.chrsmrrs.com/graphkerneldatasets/"

#: Canonical download source per file-backed dataset. ``sha256`` None = not known in advance
#: (TU Dortmund zips are not published with checksums). Bitcoin: the Sub-BA authors' file at a
#: pinned commit of zaixizhang/graphbackdoor (later commits moved it into ``dataset.zip``, which
#: holds the same data; the pinned raw file can be checksummed, the zip could not be obtained).
SOURCES: Dict[str, dict] = {
    "AIDS": {"url": _TU_BASE + "AIDS.zip", "format": "tu_zip", "sha256": None, "filename": "AIDS.zip"},
    "COLLAB": {"url": _TU_BASE + "COLLAB.zip", "format": "tu_zip", "sha256": None,
               "filename": "COLLAB.zip"},
    "Fingerprint": {"url": _TU_BASE + "Fingerprint.zip", "format": "tu_zip", "sha256": None,
                    "filename": "Fingerprint.zip"},
    "NCI1": {"url": _TU_BASE + "NCI1.zip", "format": "tu_zip", "sha256": None, "filename": "NCI1.zip"},
    "Bitcoin": {
        "url": "https://raw.githubusercontent.com/zaixizhang/graphbackdoor/"
               "bab2dc0d5b63a42f2ec896e8607454a80734d09f/dataset/bitcoin/bitcoin.txt",
        "format": "gin_text",
        "sha256": "6940ccac7135213e037984f2c45b8e2b4909581cddf2eaab8cfc78d477256516",
        "filename": "bitcoin.txt",
    },
}

_NAMES = ("synthetic", "AIDS", "COLLAB", "Fingerprint", "Bitcoin", "NCI1")
#: GIN text file inside the dataset folder, for datasets distributed that way.
_GIN_FILES = {"COLLAB": "COLLAB.txt", "Bitcoin": "bitcoin.txt"}
_OPTIONS = {"synthetic": ("num_graphs", "seed"), "Fingerprint": ("fingerprint_subset",)}
#: The paper's Fingerprint subset: TU classes L, A, W, R (MANIFEST.md).
FINGERPRINT_CLASSES = (0, 2, 4, 5)


def dataset_names() -> List[str]:
    """Graph-classification dataset names in display case."""
    return list(_NAMES)


def canonical_name(name: str) -> str:
    """Display-case name for ``name`` (case-insensitive) or :class:`UnknownNameError`."""
    for n in _NAMES:
        if n.lower() == str(name).lower():
            return n
    raise unknown_name("dataset", str(name), _NAMES)


def cache_dir() -> Path:
    """Download cache: env ``DGLCLEANER_CACHE`` or ``~/.cache/dglcleaner``."""
    env = os.environ.get("DGLCLEANER_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dglcleaner"


def _child(folder: Path, name: str, want_dir: bool) -> Optional[Path]:
    """``folder/name`` matched case-insensitively (exact case preferred)."""
    exact = folder / name
    if (exact.is_dir() if want_dir else exact.is_file()):
        return exact
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return None
    for p in entries:
        if p.name.lower() == name.lower() and (p.is_dir() if want_dir else p.is_file()):
            return p
    return None


def find_in_dir(root, name: str) -> Optional[GraphDataset]:
    """Load ``name`` from data dir ``root`` if it is there, else ``None``."""
    root = Path(root).expanduser()
    if not root.is_dir():
        return None
    folder = _child(root, name, want_dir=True)
    if folder is not None:
        if _child(folder, f"{name}_A.txt", want_dir=False) is not None:
            return read_tu_raw(folder, name)
        gin = _GIN_FILES.get(name)
        if gin and _child(folder, gin, want_dir=False) is not None:
            return read_gin_text(_child(folder, gin, want_dir=False), name)
        inner_zip = _child(folder, f"{name}.zip", want_dir=False)
        if inner_zip is not None:
            return read_tu_zip(inner_zip, name)
    zpath = _child(root, f"{name}.zip", want_dir=False)
    if zpath is not None:
        return read_tu_zip(zpath, name)
    return None


def source_url(name: str) -> str:
    """Download URL for ``name``, honouring ``DGLCLEANER_DOWNLOAD_BASE``."""
    src = SOURCES[name]
    base = os.environ.get("DGLCLEANER_DOWNLOAD_BASE")
    return base.rstrip("/") + "/" + src["filename"] if base else src["url"]


def _cache_target(name: str) -> Path:
    src = SOURCES[name]
    if src["format"] == "tu_zip":
        return cache_dir() / src["filename"]
    return cache_dir() / name / src["filename"]


def download(name: str) -> Path:
    """Fetch ``name`` into the cache (temp file, sha256 check when known, atomic rename)."""
    src = SOURCES[name]
    url = source_url(name)
    target = _cache_target(name)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create cache dir {target.parent}: {exc.strerror or exc}; "
                        "set DGLCLEANER_CACHE to a writable folder") from None
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        os.unlink(tmp)
        reason = getattr(exc, "reason", None) or exc
        raise DataError(f"download of {name} from {url} failed: {reason}; pass --data-dir or set "
                        "DGLCLEANER_DATA_DIR to a folder that has it") from None
    got = digest.hexdigest()
    if src["sha256"] and got != src["sha256"]:
        os.unlink(tmp)
        raise DataError(f"download of {name} from {url} has sha256 {got}, expected "
                        f"{src['sha256']}; the file was discarded")
    os.replace(tmp, target)
    return target


def _check_options(name: str, options: dict) -> None:
    valid = _OPTIONS.get(name, ())
    for key in options:
        if key not in valid:
            listed = ", ".join(valid) if valid else "none"
            raise ParameterError(f"dataset {name} has no option {key!r}; valid options: {listed}")


def fingerprint_subset(ds: GraphDataset) -> GraphDataset:
    """The paper's 1661-graph, 4-class Fingerprint: TU classes 0, 2, 4, 5 (L, A, W, R), graphs
    with at least one node (MANIFEST.md)."""
    keep = [i for i, g in enumerate(ds.graphs)
            if g.num_nodes() > 0 and ds.label_names[int(ds.labels[i])] in FINGERPRINT_CLASSES]
    return select_graphs(ds, keep)


def load_dataset(name: str, data_dir=None, *, download: bool = True, **options) -> GraphDataset:
    """Load a graph-classification dataset by name (case-insensitive; see :func:`dataset_names`).

    Options: ``synthetic``: ``num_graphs`` (default 600), ``seed`` (default 0).
    ``Fingerprint``: ``fingerprint_subset=True`` (default) gives the paper's 1661-graph 4-class
    subset (TU classes 0, 2, 4, 5 = L, A, W, R, empty graphs dropped); ``False`` gives the TU
    file minus its 651 empty graphs (2149 graphs, 15 classes remapped to 0..C-1).
    See the module docstring for where files are looked for.
    """
    canon = canonical_name(name)
    _check_options(canon, options)
    if canon == "synthetic":
        return make_synthetic(options.get("num_graphs", 600), options.get("seed", 0))
    looked: List[str] = []
    ds = None
    candidates = []
    if data_dir is not None:
        candidates.append(("--data-dir", Path(data_dir)))
    env = os.environ.get("DGLCLEANER_DATA_DIR")
    if env:
        candidates.append(("DGLCLEANER_DATA_DIR", Path(env)))
    candidates.append(("cache", cache_dir()))
    for _, root in candidates:
        looked.append(str(root))
        ds = find_in_dir(root, canon)
        if ds is not None:
            break
    if ds is None:
        if not download:
            raise DataError(
                f"dataset {canon} not found (looked in {', '.join(looked)} for a folder {canon}/ "
                f"or {canon}.zip); pass --data-dir, set DGLCLEANER_DATA_DIR, or allow the online "
                f"download from {source_url(canon)}"
            )
        path = download_dataset(canon)
        ds = find_in_dir(cache_dir(), canon)
        if ds is None:  # pragma: no cover - the download lands where find_in_dir looks
            raise DataError(f"downloaded {path} but could not read {canon} from it")
    if canon == "Fingerprint":
        if options.get("fingerprint_subset", True):
            ds = fingerprint_subset(ds)
        else:
            ds = select_graphs(ds, [i for i, g in enumerate(ds.graphs) if g.num_nodes() > 0])
    return ds


def download_dataset(name: str) -> Path:
    """Download ``name`` (display or any case) into the cache; returns the cached file."""
    canon = canonical_name(name)
    if canon not in SOURCES:
        raise DataError(f"dataset {canon} is generated, not downloaded")
    return download(canon)


def dataset_labels_summary(ds: GraphDataset) -> Dict[str, int]:
    """``{original label: count}`` (for reports)."""
    counts = torch.bincount(ds.labels, minlength=ds.num_classes).tolist()
    return {str(ds.label_names.get(i, i)): c for i, c in enumerate(counts)}
