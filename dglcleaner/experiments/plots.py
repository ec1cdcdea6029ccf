"""Figures with matplotlib (optional extra ``plots``), saved as PNG or SVG.

* :func:`plot_curves` - ASR/ACC (mean ± std over seeds) against a swept axis: injection ratio
  (the GCleaner paper's Fig. 6), holding ratio (Fig. 7), adaptive-attack alpha (Fig. 9),
  lambda (Fig. 11), trigger size (Fig. 12); one line per value of ``hue`` (e.g. the
  defense), one panel per metric and ``panel`` value (e.g. the attack).
* :func:`plot_bars` - per-model bars (Fig. 8).
* :func:`plot_confusion` - per-class confusion matrices averaged over seeds (Fig. 5); needs
  runs stored with ``record: {confusion: true}``.
* :func:`plot_tsne` - t-SNE of graph embeddings of clean and triggered graphs under the
  backdoored and the defended model (Fig. 10); computed live from one run.

All functions read :class:`~dglcleaner.experiments.store.RunRow` objects (failed runs are
skipped) and return the output path.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import UserError
from .report import _label, _metric_name
from .store import RunRow

KINDS = ("curve", "bars", "confusion", "tsne")


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only; never needs a display
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the install
        raise UserError("plots need matplotlib: pip install 'dglcleaner[plots]'") from None
    return plt


def _save(fig, out: str | Path) -> str:
    out = Path(out)
    if out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise UserError(f"plot file {out.name!r} must end in .png, .svg or .pdf")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150, bbox_inches="tight")
    _plt().close(fig)
    return str(out)


def _aggregate(rows: Sequence[RunRow], keys: Sequence[str], metric: str
               ) -> "OrderedDict[Tuple[Any, ...], Tuple[float, float, int]]":
    groups: "OrderedDict[Tuple[Any, ...], List[float]]" = OrderedDict()
    for r in rows:
        if r.status != "ok":
            continue
        v = r.metric(metric)
        if v is None:
            continue
        groups.setdefault(tuple(r.axes.get(k) for k in keys), []).append(v)
    out: "OrderedDict[Tuple[Any, ...], Tuple[float, float, int]]" = OrderedDict()
    for k, vals in groups.items():
        mean = sum(vals) / len(vals)
        out[k] = (mean, math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals)), len(vals))
    return out


def _check_axes(rows: Sequence[RunRow], *axes: Optional[str]) -> None:
    known = {k for r in rows for k in r.axes}
    for a in axes:
        if a and a not in known:
            raise UserError(f"axis {a!r} is not an axis of these runs; valid: "
                            f"{', '.join(sorted(known))}")
    if not any(r.status == "ok" for r in rows):
        raise UserError("no successful runs to plot; run the grid first (dglcleaner run CONFIG)")


def _panel_grid(rows: Sequence[RunRow], x: str, hue: str, panel: Optional[str],
                metrics: Sequence[str], group: str, panel_width: float):
    """Figure with one row per metric and one column per ``panel`` value (curves and bars)."""
    plt = _plt()
    _check_axes(rows, x, hue, panel)
    panels = [None] if not panel else list(OrderedDict.fromkeys(r.axes.get(panel) for r in rows))
    metrics = [_metric_name(m, group) for m in metrics]
    fig, axs = plt.subplots(len(metrics), len(panels), squeeze=False,
                            figsize=(panel_width * len(panels), 2.8 * len(metrics)))
    return fig, axs, panels, metrics


def _hue_colors(rows: Sequence[RunRow], hue: str) -> Dict[Any, str]:
    """One colour per ``hue`` value, the same in every panel (a panel may lack some values,
    and matplotlib's colour cycle would then give the same value another colour there)."""
    values = OrderedDict.fromkeys(r.axes.get(hue) for r in rows)
    return {hv: f"C{i % 10}" for i, hv in enumerate(values)}


def _finish(fig, axs, out: str | Path, title: str) -> str:
    """One legend (every label of every panel, once) on the top-right panel, optional title,
    save."""
    handles: Dict[str, Any] = {}
    for ax in (a for row in axs for a in row):
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if handles:
        axs[0][-1].legend(list(handles.values()), list(handles), fontsize="small", loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, out)


def plot_grid(kind: str, rows: Sequence[RunRow], spec: Dict[str, Any], out: str | Path,
              title: str = "", xlabel_given: bool = False) -> str:
    """Draw a grid's stored ``rows`` as ``kind`` (curve, bars or confusion) following its
    ``plot:`` section ``spec`` (x, hue, panel, metrics, group, xlabel); the CLI's ``plot`` and
    ``benchmarks/results_pages.py`` both draw through here."""
    common = {k: spec[k] for k in ("hue", "panel", "metrics", "group") if k in spec}
    if common.get("panel") == "":
        common["panel"] = None
    if kind == "curve":
        if not spec.get("x"):
            raise UserError("plot curve needs --x AXIS (or `plot: {x: ...}` in the config)")
        return plot_curves(rows, spec["x"], out, title=title,
                           xlabel=None if xlabel_given else spec.get("xlabel"), **common)
    if kind == "bars":
        return plot_bars(rows, out, x=spec.get("x", "model"), title=title, **common)
    if kind == "confusion":
        return plot_confusion(rows, out, panel=spec.get("panel") or "defense", title=title)
    raise UserError(f"unknown plot kind {kind!r}; valid: curve, bars, confusion, tsne")


def plot_curves(rows: Sequence[RunRow], x: str, out: str | Path, *, hue: str = "defense",
                panel: Optional[str] = "attack", metrics: Sequence[str] = ("asr", "acc"),
                group: str = "defended", title: str = "", xlabel: Optional[str] = None) -> str:
    """Metric (mean ± std band) against the numeric axis ``x``; a line per ``hue`` value
    (``xlabel`` names the x axis, default ``x``)."""
    fig, axs, panels, metrics = _panel_grid(rows, x, hue, panel, metrics, group, 3.6)
    colors = _hue_colors(rows, hue)
    for j, pv in enumerate(panels):
        sub = [r for r in rows if not panel or r.axes.get(panel) == pv]
        for i, m in enumerate(metrics):
            ax = axs[i][j]
            agg = _aggregate(sub, [hue, x], m)
            present = {k[0] for k in agg}
            for hv in (h for h in colors if h in present):
                pts = sorted((float(k[1]), v) for k, v in agg.items() if k[0] == hv)
                xs = [p[0] for p in pts]
                mean = [p[1][0] for p in pts]
                std = [p[1][1] for p in pts]
                ax.plot(xs, mean, marker="o", label=str(hv), color=colors[hv])
                ax.fill_between(xs, [a - b for a, b in zip(mean, std)],
                                [a + b for a, b in zip(mean, std)], alpha=0.15,
                                color=colors[hv])
            ax.set_xlabel(xlabel or x)
            ax.set_ylabel(f"{_label(m, group)} (%)")
            ax.set_ylim(-2, 102)
            if i == 0 and pv is not None:
                ax.set_title(str(pv))
            ax.grid(alpha=0.3)
    return _finish(fig, axs, out, title)


def plot_bars(rows: Sequence[RunRow], out: str | Path, *, x: str = "model", hue: str = "attack",
              panel: Optional[str] = "dataset", metrics: Sequence[str] = ("asr", "acc"),
              group: str = "defended", title: str = "") -> str:
    """Grouped bars (mean, std as error bar): one group per ``x`` value, a bar per ``hue``."""
    fig, axs, panels, metrics = _panel_grid(rows, x, hue, panel, metrics, group, 3.8)
    colors = _hue_colors(rows, hue)
    for j, pv in enumerate(panels):
        sub = [r for r in rows if not panel or r.axes.get(panel) == pv]
        xs = list(OrderedDict.fromkeys(r.axes.get(x) for r in sub))
        present = {r.axes.get(hue) for r in sub}
        hues = [h for h in colors if h in present]
        width = 0.8 / max(1, len(hues))
        for i, m in enumerate(metrics):
            ax = axs[i][j]
            agg = _aggregate(sub, [x, hue], m)
            for h, hv in enumerate(hues):
                vals = [agg.get((xv, hv), (float("nan"), 0.0, 0)) for xv in xs]
                ax.bar([k + h * width - 0.4 + width / 2 for k in range(len(xs))],
                       [v[0] for v in vals], width, yerr=[v[1] for v in vals], label=str(hv),
                       capsize=2, color=colors[hv])
            ax.set_xticks(range(len(xs)))
            ax.set_xticklabels([str(v) for v in xs])
            ax.set_ylabel(f"{_label(m, group)} (%)")
            ax.set_ylim(0, 102)
            if i == 0 and pv is not None:
                ax.set_title(str(pv))
    return _finish(fig, axs, out, title)


def plot_confusion(rows: Sequence[RunRow], out: str | Path, *, panel: str = "defense",
                   models: Sequence[str] = ("clean", "backdoored", "defended"),
                   title: str = "") -> str:
    """Row-normalised confusion matrices (clean eval set), averaged over seeds: one column
    per model, taken from the first value of ``panel`` for clean/backdoored and from every
    ``panel`` value for the defended model."""
    plt = _plt()
    import numpy as np

    _check_axes(rows, panel)
    ok = [r for r in rows if r.status == "ok" and r.record.get("confusion")]
    if not ok:
        raise UserError("no stored confusion matrices; run the grid with `record: {confusion: "
                        "true}` (e.g. benchmarks/configs/fig5_confusion.yaml)")
    panels: List[Tuple[str, np.ndarray]] = []

    def mean_conf(sel: Sequence[RunRow], which: str) -> np.ndarray:
        mats = [np.asarray(r.record["confusion"][which], dtype=float) for r in sel
                if which in r.record["confusion"]]
        m = np.mean(mats, axis=0)
        return m / np.maximum(m.sum(axis=1, keepdims=True), 1e-12)

    pvals = list(OrderedDict.fromkeys(r.axes.get(panel) for r in ok))
    for which in models:
        if which == "defended":
            for pv in pvals:
                panels.append((f"{pv}", mean_conf([r for r in ok if r.axes.get(panel) == pv],
                                                  "defended")))
        elif any(which in r.record["confusion"] for r in ok):
            first = [r for r in ok if r.axes.get(panel) == pvals[0]]
            panels.append((which, mean_conf(first, which)))
    fig, axs = plt.subplots(1, len(panels), squeeze=False, figsize=(2.8 * len(panels), 2.8))
    for ax, (name, mat) in zip(axs[0], panels):
        ax.imshow(mat, vmin=0, vmax=1, cmap="Blues")
        for (a, b), v in np.ndenumerate(mat):
            ax.text(b, a, f"{100 * v:.0f}", ha="center", va="center",
                    color="white" if v > 0.6 else "black", fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_xticks(range(mat.shape[1]))
        ax.set_yticks(range(mat.shape[0]))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, out)


# ---------------------------------------------------------------------------------------------
# t-SNE (Fig. 10)
# ---------------------------------------------------------------------------------------------
def tsne(x, dim: int = 2, perplexity: float = 30.0, iters: int = 500, seed: int = 0):
    """Exact t-SNE (van der Maaten & Hinton 2008) in numpy; O(n^2), fine for a few thousand
    points. Uses scikit-learn's implementation instead when it is installed."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    perplexity = min(perplexity, max(2.0, (n - 1) / 3))
    try:
        from sklearn.manifold import TSNE

        return TSNE(dim, perplexity=perplexity, random_state=seed, init="pca").fit_transform(x)
    except ImportError:
        pass
    rng = np.random.default_rng(seed)
    d = np.square(x[:, None, :] - x[None, :, :]).sum(-1)
    p = np.zeros((n, n))
    target = np.log(perplexity)
    for i in range(n):  # binary search of each point's bandwidth (n is small)
        lo, hi, beta = 0.0, np.inf, 1.0
        di = np.delete(d[i], i)
        for _ in range(50):
            w = np.exp(-(di - di.min()) * beta)
            s = w.sum()
            h = np.log(s) + beta * np.sum((di - di.min()) * w) / s
            if abs(h - target) < 1e-5:
                break
            if h > target:
                lo = beta
                beta = beta * 2 if hi == np.inf else (beta + hi) / 2
            else:
                hi = beta
                beta = (beta + lo) / 2
        p[i, np.arange(n) != i] = w / s
    p = (p + p.T) / (2 * n)
    p = np.maximum(p, 1e-12)
    y = rng.normal(0, 1e-4, (n, dim))
    gains, vel = np.ones_like(y), np.zeros_like(y)
    lr = max(n / 48.0, 50.0)  # scikit-learn's "auto" learning rate
    for it in range(iters):
        exag = 12.0 if it < 100 else 1.0
        num = 1.0 / (1.0 + np.square(y[:, None, :] - y[None, :, :]).sum(-1))
        np.fill_diagonal(num, 0.0)
        q = np.maximum(num / num.sum(), 1e-12)
        pq = (exag * p - q) * num
        grad = 4 * ((np.diag(pq.sum(1)) - pq) @ y)
        mom = 0.5 if it < 250 else 0.8
        gains = np.where(np.sign(grad) != np.sign(vel), gains + 0.2, gains * 0.8).clip(0.01)
        vel = mom * vel - lr * gains * grad
        y = y + vel
        y = y - y.mean(0)
    return y


def tsne_embeddings(run, defended_model, max_graphs: int = 600) -> Dict[str, Any]:
    """Graph embeddings (``forward_full(...).graph_emb``) of clean eval graphs and triggered
    copies of the non-target ones, under the backdoored and the defended model."""
    import torch

    from ..training import batches

    graphs, labels = run.data["eval"]
    trig = run.triggered_eval
    target = run.cfg.target_label
    idx = list(range(min(len(graphs), max_graphs)))
    nt = [i for i in idx if int(labels[i]) != target]

    @torch.no_grad()
    def emb(model, gs):
        model.eval()
        out = [model.forward_full(bg, bg.ndata["feat"]).graph_emb.cpu()
               for bg, _, _ in batches(gs, None, 256, device=run.device)]
        return torch.cat(out).numpy()

    sel_clean = [graphs[i] for i in idx]
    sel_trig = [trig[i] for i in nt]
    groups = [f"class {int(labels[i])}" for i in idx] + ["triggered"] * len(nt)
    return {"groups": groups,
            "backdoored": (emb(run.backdoored_model, sel_clean + sel_trig)),
            "defended": (emb(defended_model, sel_clean + sel_trig))}


def plot_tsne(panels: Sequence[Tuple[str, Dict[str, Any]]], out: str | Path, seed: int = 0,
              title: str = "") -> str:
    """Scatter of t-SNE coordinates: ``panels`` = [(title, tsne_embeddings(...)), ...]; two
    plots per panel (backdoored, defended)."""
    plt = _plt()
    import numpy as np

    fig, axs = plt.subplots(len(panels), 2, squeeze=False, figsize=(7, 3.3 * len(panels)))
    for i, (name, data) in enumerate(panels):
        groups = np.asarray(data["groups"])
        for j, which in enumerate(("backdoored", "defended")):
            ax = axs[i][j]
            y = tsne(data[which], seed=seed)
            for gname in OrderedDict.fromkeys(groups.tolist()):
                m = groups == gname
                ax.scatter(y[m, 0], y[m, 1], s=4, label=gname,
                           c="red" if gname == "triggered" else None)
            ax.set_title(f"{name}: {which}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    axs[0][1].legend(fontsize="small", markerscale=3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, out)
