"""Figures from stored rows (matplotlib), and the numpy t-SNE."""
import numpy as np
import pytest

from dglcleaner.errors import UserError
from dglcleaner.experiments.store import RunRow

pytest.importorskip("matplotlib")
from dglcleaner.experiments import plots  # noqa: E402


def row(seed, defense, ratio, model="gin", asr=10.0):
    rec = {"defended": {"asr": asr + seed, "acc": 90.0 - ratio},
           "confusion": {"clean": [[5, 1], [0, 6]], "backdoored": [[3, 3], [0, 6]],
                         "defended": [[4, 2], [1, 5]]}}
    return RunRow(key=f"{seed}{defense}{ratio}{model}", grid="t", seed=seed,
                  axes={"dataset": "AIDS", "model": model, "attack": "Sub-BA",
                        "defense": defense, "injection_ratio": ratio, "seed": seed},
                  config={}, status="ok", error=None, record=rec, timings={}, elapsed_s=1.0,
                  versions={}, git_commit=None, device="cpu", attempts=1, finished_at="now")


ROWS = [row(s, d, r, m) for s in (0, 1) for d in ("Before", "GCleaner") for r in (0.01, 0.05)
        for m in ("gin", "gcn")]


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_curve_bars_confusion_files(tmp_path, suffix):
    out = plots.plot_curves(ROWS, "injection_ratio", tmp_path / f"c{suffix}", hue="defense")
    assert (tmp_path / f"c{suffix}").stat().st_size > 1000 and out.endswith(suffix)
    plots.plot_bars(ROWS, tmp_path / f"b{suffix}")
    plots.plot_confusion(ROWS, tmp_path / f"m{suffix}")
    assert (tmp_path / f"b{suffix}").stat().st_size > 1000
    assert (tmp_path / f"m{suffix}").stat().st_size > 1000


def test_plot_errors(tmp_path):
    with pytest.raises(UserError, match="not an axis"):
        plots.plot_curves(ROWS, "lambda", tmp_path / "x.png")
    with pytest.raises(UserError, match=".png"):
        plots.plot_bars(ROWS, tmp_path / "x.txt")
    no_conf = [row(0, "Before", 0.01)]
    no_conf[0].record.pop("confusion")
    with pytest.raises(UserError, match="confusion"):
        plots.plot_confusion(no_conf, tmp_path / "x.png")


def test_tsne_separates_clusters():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.1, (30, 8)), rng.normal(5, 0.1, (30, 8))])
    y = plots.tsne(x, iters=300, seed=0)
    assert y.shape == (60, 2)
    d = np.linalg.norm(y[:, None] - y[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    labels = np.repeat([0, 1], 30)
    # every point's nearest neighbour in the map lies in its own cluster
    assert (labels[d.argmin(1)] == labels).all()
    # and the clusters do not overlap: nearest cross pair farther than any same-cluster pair
    within = max(np.nanmax(np.where(np.isinf(d[:30, :30]), np.nan, d[:30, :30])),
                 np.nanmax(np.where(np.isinf(d[30:, 30:]), np.nan, d[30:, 30:])))
    assert d[:30, 30:].min() > within


def test_a_hue_keeps_its_colour_in_every_panel(tmp_path, monkeypatch):
    """A panel without the first hue value must not shift the others' colours, and the legend
    lists every value once (it is drawn on one panel only)."""
    figs = []
    monkeypatch.setattr(plots, "_save", lambda fig, out: figs.append(fig) or str(out))
    rows = [row(0, d, r) for d in ("Before", "GCleaner") for r in (0.01, 0.05)]
    for r in rows:
        r.axes["attack"] = "Sub-BA"
    gta = [row(0, "GCleaner", r, model="gcn") for r in (0.01, 0.05)]
    for r in gta:
        r.axes["attack"] = "GTA"  # this panel has no 'Before' line
    plots.plot_curves(rows + gta, "injection_ratio", tmp_path / "c.png", hue="defense",
                      panel="attack")
    (fig,) = figs
    colour = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            colour.setdefault(line.get_label(), set()).add(line.get_color())
    assert set(colour) == {"Before", "GCleaner"}
    assert all(len(c) == 1 for c in colour.values()) and colour["Before"] != colour["GCleaner"]
    legend = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().texts]
    assert sorted(legend) == ["Before", "GCleaner"]
    plots.plot_bars(rows + gta, tmp_path / "b.png", x="injection_ratio", hue="defense",
                    panel="attack")
    bars = {}
    for ax in figs[1].axes:
        for cont in ax.containers:
            if hasattr(cont, "patches"):
                bars.setdefault(cont.get_label(), set()).update(
                    tuple(p.get_facecolor()) for p in cont.patches)
    assert all(len(c) == 1 for c in bars.values()) and len(bars) == 2
