"""Readers for the graph-classification file formats: TU raw folder, TU zip, GIN text.

TU raw (Morris et al. 2020): ``NAME_A.txt`` (``row, col``, 1-based, both directions),
``NAME_graph_indicator.txt``, ``NAME_graph_labels.txt``, optional ``NAME_node_labels.txt`` (->
``ndata['node_label']``) and ``NAME_node_attributes.txt`` (-> ``ndata['attr']``). Edge labels and
edge attributes are not read (nothing in dglcleaner uses them). Graphs whose id never occurs in
the graph indicator are kept as empty graphs (Fingerprint has 651 of them).

GIN text (Xu et al. 2019): line 1 = number of graphs; per graph a line ``n label`` and ``n``
lines ``tag deg nbr_1 .. nbr_deg [attr ...]``. ``tag`` -> ``ndata['node_label']``; trailing
attributes, if any, -> ``ndata['attr']``. Self-loops are dropped.

All parsing is vectorised (pandas / ``np.fromstring``); the slow line-by-line scan runs only to
name the first bad line of a malformed file.
"""
from __future__ import annotations

import io
import os
import warnings
import zipfile
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np
import pandas as pd
import torch

from ..errors import DataError
from .graph_dataset import GraphDataset, assemble_graphs, remap_labels

_TU_PARTS = ("A", "graph_indicator", "graph_labels", "node_labels", "node_attributes")


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------
def _first_bad_line(text: str, ncols: Optional[int], integer: bool) -> tuple:
    """(line number, reason) of the first line that does not parse, or (None, '')."""
    width = None
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            return i, f"not a number in {line.strip()[:60]!r}"
        if integer and any(not v.is_integer() for v in vals):
            return i, f"expected integers, got {line.strip()[:60]!r}"
        want = ncols if ncols is not None else width
        if want is not None and len(vals) != want:
            return i, f"expected {want} comma-separated values, got {len(vals)}"
        width = len(vals)
    return None, ""


def _read_table(data: bytes, fname: str, ncols: Optional[int], integer: bool) -> np.ndarray:
    """Parse a comma-separated numeric TU file into a 2-D array (vectorised via pandas)."""
    if not data.strip():
        return np.zeros((0, ncols or 0), dtype=np.int64 if integer else np.float32)
    arr = None
    try:
        frame = pd.read_csv(
            io.BytesIO(data), header=None, sep=",", skipinitialspace=True,
            skip_blank_lines=True, dtype=np.int64 if integer else np.float64,
        )
        arr = frame.to_numpy()
        if (ncols is not None and arr.shape[1] != ncols) or (
            not integer and np.isnan(arr).any()
        ):
            arr = None
    except (ValueError, pd.errors.ParserError, TypeError, OverflowError):
        arr = None
    if arr is None:
        text = data.decode("utf-8", errors="replace")
        line, reason = _first_bad_line(text, ncols, integer)
        where = f"line {line}: {reason}" if line else "cannot parse it as a numeric table"
        raise DataError(f"malformed file {fname}: {where}")
    return arr if integer else arr.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# TU format
# ---------------------------------------------------------------------------------------------
def _build_tu(name: str, files: Dict[str, Callable[[], bytes]], where: str) -> GraphDataset:
    """Assemble a TU dataset from ``files[part]() -> bytes`` (part in ``_TU_PARTS``)."""
    for part in ("A", "graph_indicator", "graph_labels"):
        if part not in files:
            raise DataError(
                f"{where} has no {name}_{part}.txt; a TU dataset needs {name}_A.txt, "
                f"{name}_graph_indicator.txt and {name}_graph_labels.txt"
            )
    fn = {p: f"{name}_{p}.txt" for p in _TU_PARTS}
    graph_labels = _read_table(files["graph_labels"](), fn["graph_labels"], 1, True)[:, 0]
    num_graphs = graph_labels.size
    indicator = _read_table(files["graph_indicator"](), fn["graph_indicator"], 1, True)[:, 0]
    total = indicator.size
    if total and (indicator.min() < 1 or indicator.max() > num_graphs):
        bad = int(np.flatnonzero((indicator < 1) | (indicator > num_graphs))[0])
        raise DataError(
            f"malformed file {fn['graph_indicator']}: line {bad + 1}: graph id "
            f"{int(indicator[bad])} outside 1..{num_graphs} (the number of graph labels)"
        )
    gid = indicator - 1
    # Nodes of one graph are contiguous in every TU file we know; sort stably if not.
    perm = None
    if total and np.any(np.diff(gid) < 0):
        perm = np.argsort(gid, kind="stable")
        gid = gid[perm]
    inv = np.empty(total, dtype=np.int64)
    inv[perm if perm is not None else np.arange(total)] = np.arange(total)

    edges = _read_table(files["A"](), fn["A"], 2, True)
    src, dst = edges[:, 0] - 1, edges[:, 1] - 1
    bad = np.flatnonzero((src < 0) | (src >= total) | (dst < 0) | (dst >= total))
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"malformed file {fn['A']}: line {i + 1}: node id outside 1..{total} "
            f"(the length of {fn['graph_indicator']})"
        )
    src, dst = inv[src], inv[dst]
    cross = np.flatnonzero(gid[src] != gid[dst])
    if cross.size:
        raise DataError(
            f"malformed file {fn['A']}: line {int(cross[0]) + 1}: edge joins two different graphs"
        )

    node_data: Dict[str, torch.Tensor] = {}
    if "node_labels" in files:
        nl = _read_table(files["node_labels"](), fn["node_labels"], None, True)
        if nl.shape[0] != total:
            raise DataError(
                f"malformed file {fn['node_labels']}: {nl.shape[0]} lines, expected {total} "
                f"(one per node of {fn['graph_indicator']})"
            )
        nl = nl[:, 0]  # TU allows several columns; the first is the node label
        node_data["node_label"] = torch.from_numpy(np.array(nl[perm] if perm is not None else nl))
    if "node_attributes" in files:
        at = _read_table(files["node_attributes"](), fn["node_attributes"], None, False)
        if at.shape[0] != total:
            raise DataError(
                f"malformed file {fn['node_attributes']}: {at.shape[0]} lines, expected {total} "
                f"(one per node of {fn['graph_indicator']})"
            )
        node_data["attr"] = torch.from_numpy(np.ascontiguousarray(at[perm] if perm is not None else at))

    nodes_per_graph = np.bincount(gid, minlength=num_graphs)
    graphs = assemble_graphs(nodes_per_graph, src, dst, node_data)
    labels, names = remap_labels(graph_labels)
    return GraphDataset(name=name, graphs=graphs, labels=labels, num_classes=len(names),
                        label_names=names)


def _match_parts(names, name: str) -> Dict[str, str]:
    """Map TU part -> member/file name, matching ``NAME_part.txt`` case-insensitively."""
    out: Dict[str, str] = {}
    want = {f"{name}_{p}.txt".lower(): p for p in _TU_PARTS}
    for full in names:
        base = full.replace("\\", "/").rsplit("/", 1)[-1].lower()
        part = want.get(base)
        if part and "__macosx" not in full.lower() and part not in out:
            out[part] = full
    return out


def read_tu_raw(folder, name: str) -> GraphDataset:
    """Read a TU raw-format dataset from ``folder`` (files ``NAME_A.txt`` etc., case-insensitive)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"TU dataset folder {folder} does not exist")
    parts = _match_parts(os.listdir(folder), name)
    files = {p: (lambda f=folder / m: f.read_bytes()) for p, m in parts.items()}
    return _build_tu(name, files, f"folder {folder}")


def read_tu_zip(path, name: str) -> GraphDataset:
    """Read a TU dataset zip (as distributed by TU Dortmund: ``NAME/NAME_A.txt`` ...)."""
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot open TU zip {path}: {exc}") from None
    with zf:
        parts = _match_parts(zf.namelist(), name)
        try:
            files = {p: (lambda m=m: zf.read(m)) for p, m in parts.items()}
            return _build_tu(name, files, f"zip {path}")
        except (zipfile.BadZipFile, OSError) as exc:
            raise DataError(f"corrupt TU zip {path}: {exc}") from None


# ---------------------------------------------------------------------------------------------
# GIN text format
# ---------------------------------------------------------------------------------------------
def _gin_fast(data: bytes):
    """Vectorised parse of an integer-only GIN file with single-space separators; ``None`` if
    anything looks off (the slow parser then handles it, e.g. node attributes or odd
    whitespace, or names the bad line)."""
    if b"\r" in data:
        data = data.replace(b"\r", b"")
    if b"\t" in data or b"  " in data or b" \n" in data or b"\n " in data or data[:1] == b" ":
        return None  # token counts below assume exactly one space between tokens
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10)
    if not data.endswith(b"\n"):
        ends = np.append(ends, len(data))
    starts = np.concatenate([[0], ends[:-1] + 1])
    spaces = np.flatnonzero(buf == 32)
    ntok = np.searchsorted(spaces, ends) - np.searchsorted(spaces, starts) + 1
    ntok = ntok[ends > starts]  # blank lines carry no tokens
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # np.fromstring(sep=...) warns where it stops
        try:
            tok = np.fromstring(data, dtype=np.int64, sep=" ")
        except ValueError:  # newer numpy raises on unparseable data
            return None
    if ntok.size == 0 or tok.size != int(ntok.sum()) or ntok[0] != 1:
        return None  # a non-integer token (attributes) or junk
    line_start = np.cumsum(ntok) - ntok
    num_graphs = int(tok[0])
    if num_graphs < 0:
        return None
    ntok_l = ntok.tolist()
    start_l = line_start.tolist()
    num_lines = len(ntok_l)
    headers = np.empty(num_graphs, dtype=np.int64)
    h = 1
    for i in range(num_graphs):  # sequential over graphs only (a graph's size says where the next starts)
        if h >= num_lines or ntok_l[h] != 2:
            return None
        headers[i] = h
        n = int(tok[start_l[h]])
        if n < 0:
            return None
        h += 1 + n
    if h != num_lines:
        return None
    sizes = tok[line_start[headers]]
    glabels = tok[line_start[headers] + 1]
    is_node = np.ones(num_lines, dtype=bool)
    is_node[0] = False
    is_node[headers] = False
    node_start = line_start[is_node]
    tags = tok[node_start]
    degs = tok[node_start + 1]
    if degs.size and (degs.min() < 0 or np.any(ntok[is_node] != degs + 2)):
        return None  # attributes after the neighbours, or a wrong degree
    is_nbr = np.ones(tok.size, dtype=bool)
    is_nbr[line_start] = False
    is_nbr[line_start[ntok >= 2] + 1] = False
    nbr = tok[is_nbr]
    offsets = np.zeros(num_graphs + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    node_off = np.repeat(offsets[:-1], sizes)
    node_n = np.repeat(sizes, sizes)
    src = np.repeat(np.arange(int(offsets[-1]), dtype=np.int64), degs)
    if nbr.size and (nbr.min() < 0 or np.any(nbr >= node_n[src])):
        return None
    dst = nbr + node_off[src]
    return sizes, glabels, tags, None, src, dst


def _gin_slow(text: str, fname: str):
    """Line-by-line parse with validation; raises DataError naming the first bad line."""
    lines = [(i, ln.split()) for i, ln in enumerate(text.splitlines(), start=1) if ln.strip()]

    def bad(i: int, why: str) -> DataError:
        return DataError(f"malformed file {fname}: line {i}: {why}")

    if not lines:
        raise DataError(f"malformed file {fname}: empty file (expected the number of graphs)")
    k = 0
    i, row = lines[k]
    if len(row) != 1 or not row[0].lstrip("-").isdigit() or int(row[0]) < 0:
        raise bad(i, "first line must be the number of graphs")
    num_graphs = int(row[0])
    k += 1
    sizes, glabels, tags, attrs, src, dst = [], [], [], [], [], []
    offset = 0
    for gi in range(num_graphs):
        if k >= len(lines):
            raise DataError(
                f"malformed file {fname}: ends after {gi} graphs, header says {num_graphs}"
            )
        i, row = lines[k]
        k += 1
        try:
            if len(row) != 2:
                raise ValueError
            n, lab = int(row[0]), int(row[1])
            if n < 0:
                raise ValueError
        except ValueError:
            raise bad(i, f"expected 'num_nodes label' for graph {gi}, got {' '.join(row)[:60]!r}") from None
        sizes.append(n)
        glabels.append(lab)
        for j in range(n):
            if k >= len(lines):
                raise DataError(f"malformed file {fname}: ends inside graph {gi}")
            i, row = lines[k]
            k += 1
            try:
                tag, d = int(row[0]), int(row[1])
                if d < 0 or len(row) < 2 + d:
                    raise ValueError
                nbrs = [int(x) for x in row[2:2 + d]]
                extra = [float(x) for x in row[2 + d:]]
            except (ValueError, IndexError):
                raise bad(i, "expected 'tag degree neighbours... [attributes...]'") from None
            for x in nbrs:
                if not 0 <= x < n:
                    raise bad(i, f"neighbour {x} outside 0..{n - 1} (graph {gi} has {n} nodes)")
            tags.append(tag)
            attrs.append(extra)
            src.extend([offset + j] * d)
            dst.extend(offset + x for x in nbrs)
        offset += n
    if k != len(lines):
        raise bad(lines[k][0], f"unexpected content after the {num_graphs} graphs")
    widths = {len(a) for a in attrs}
    if len(widths) > 1:
        raise DataError(f"malformed file {fname}: node attribute counts differ between lines")
    attr = np.asarray(attrs, dtype=np.float32) if widths and widths != {0} else None
    return (np.asarray(sizes, dtype=np.int64), np.asarray(glabels, dtype=np.int64),
            np.asarray(tags, dtype=np.int64), attr,
            np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64))


def read_gin_text(path, name: str) -> GraphDataset:
    """Read a GIN text-format file (COLLAB.txt, bitcoin.txt); tags -> ``ndata['node_label']``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    parsed = _gin_fast(data)
    if parsed is None:
        parsed = _gin_slow(data.decode("utf-8", errors="replace"), path.name)
    sizes, glabels, tags, attr, src, dst = parsed
    node_data = {"node_label": torch.from_numpy(np.ascontiguousarray(tags))}
    if attr is not None:
        node_data["attr"] = torch.from_numpy(attr)
    graphs = assemble_graphs(sizes, src, dst, node_data)
    labels, names = remap_labels(glabels)
    return GraphDataset(name=name, graphs=graphs, labels=labels, num_classes=len(names),
                        label_names=names)
