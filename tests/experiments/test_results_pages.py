"""benchmarks/results_pages.py: docs pages from a results store (no training: rows are put
into the store directly), and a strict mkdocs build of them."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dglcleaner.experiments.config import load_grid
from dglcleaner.experiments.store import Store

ROOT = Path(__file__).resolve().parents[2]
PAGES = "benchmarks/results_pages.py"

GRID = {"name": "mini", "description": "Mini table (synthetic)", "datasets": ["synthetic"],
        "attacks": [{"name": "sub-ba", "label": "Sub-BA"}],
        "defenses": [{"name": "none", "label": "Before"}, {"name": "finetune", "label": "FT"}],
        "seeds": 3,
        "report": {"rows": ["attack"], "columns": "defense", "metrics": ["asr", "acc"]},
        "plot": {"kind": "curve", "x": "injection_ratio"},
        "paper": {"source": "a paper", "values": [
            {"attack": "Sub-BA", "defense": "Before", "asr": 95.84, "acc": 97.14}]}}


@pytest.fixture
def setup(tmp_path):
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "table2_mini.yaml").write_text(yaml.safe_dump(GRID))
    (configs / "fig3_later.yaml").write_text(yaml.safe_dump(dict(GRID, name="later",
                                                                 description="Later figure",
                                                                 seeds=[7])))
    (configs / "broken.yaml").write_text(yaml.safe_dump(dict(GRID, defenses=["no-such"])))
    db = tmp_path / "s.sqlite"
    grid = load_grid(configs / "table2_mini.yaml")
    with Store(db) as st:
        for spec in grid.runs[:-1]:  # the last run (FT, seed 2) is missing; one has failed
            failed = spec.axes["defense"] == "FT" and spec.seed == 1
            asr = {"Before": 90.0, "FT": 10.0}[spec.axes["defense"]] + 2 * spec.seed
            st.put(key=spec.key, grid=spec.grid, seed=spec.seed, axes=spec.axes,
                   config=spec.config, status="failed" if failed else "ok",
                   error="RuntimeError: boom (during defense)" if failed else None,
                   record={} if failed else {"defended": {"asr": asr, "acc": 95.0}},
                   timings={}, elapsed_s=2.0,
                   versions={"platform": "TestOS", "torch": "9.9", "dgl": "1.0",
                             "dglcleaner": "0.1", "cpu_threads": "2"},
                   git_commit="cafe123", device="cpu")
        st.put(key="other", grid="x", seed=0, axes={"dataset": "d"}, config={}, status="ok",
               record={"defended": {"asr": 1.0}})
    out = tmp_path / "docs" / "results"
    out.mkdir(parents=True)
    (out / "gcleaner.md").write_text("# Old benchmark page\n")
    return configs, db, out


def test_pages_and_index(setup, load_script):
    configs, db, out = setup
    mod = load_script(PAGES)
    rc = mod.main(["--db", str(db), "--out", str(out), "--configs", str(configs)])
    assert rc == 1  # broken.yaml is a config error, the others are still written
    page = (out / "table2_mini.md").read_text()
    assert page.startswith("# Mini table (synthetic)\n")
    assert "| attack | Before | Before (paper) | FT | runs |" in page
    assert ("| Sub-BA | 92.00 ± 1.63 / 95.00 ± 0.00 | 95.84 / 97.14 | "
            "10.00 ± 0.00 / 95.00 ± 0.00 | 4 ok, 1 failed |") in page
    assert "runs: 5 of 6 stored (4 ok, 1 failed, 1 not run yet)" in page
    assert "seeds per cell: 1-3" in page
    assert "machine: TestOS, cpu, 2 threads, dglcleaner 0.1, torch 9.9, dgl 1.0" in page
    assert "git commit: cafe123" in page and "paper: a paper" in page
    assert "boom" in page and "plot curve --config" in page
    assert not (out / "fig3_later.md").exists()
    index = (out / "index.md").read_text()
    lines = index.splitlines()
    mini = next(x for x in lines if x.startswith("| `table2_mini`"))
    assert "5 of 6 (1 failed)" in mini and "[table2_mini](table2_mini.md)" in mini
    later = next(x for x in lines if x.startswith("| `fig3_later`"))
    assert "not run yet (0 of 2)" in later and ".md" not in later
    broken = next(x for x in lines if x.startswith("| `broken`"))
    assert "config error" in broken and "no-such" in broken
    # tables before figures before the rest; other pages listed
    assert lines.index(mini) < lines.index(later) < lines.index(broken)
    assert "- [gcleaner](gcleaner.md)" in index


def test_pages_from_run_archives_equal_pages_from_the_store(setup, tmp_path, load_script):
    from dglcleaner.experiments.archive import export_runs

    configs, db, out = setup
    mod = load_script(PAGES)
    mod.main(["--db", str(db), "--out", str(out), "--configs", str(configs), "--no-figures",
              "--db-label", "L"])
    half = tmp_path / "half.sqlite"   # a store with a few runs, the rest in an archive
    with Store(db) as a, Store(half) as b:
        for r in a.rows()[:2]:
            b.put(key=r.key, grid=r.grid, seed=r.seed, axes=r.axes, config=r.config,
                  status=r.status, error=r.error, record=r.record, timings=r.timings,
                  elapsed_s=r.elapsed_s, versions=r.versions, git_commit=r.git_commit,
                  device=r.device)
    arch = tmp_path / "runs.jsonl.gz"
    export_runs(db, arch)
    for args in (["--runs", str(arch)], ["--db", str(half), "--runs", str(arch)]):
        other = tmp_path / ("o" + str(len(args)))
        mod.main(args + ["--out", str(other), "--configs", str(configs), "--no-figures",
                         "--db-label", "L"])
        mine, theirs = ((d / "table2_mini.md").read_text().splitlines() for d in (out, other))
        # the finish times of the copied runs differ; everything else is the same
        assert [ln for ln in mine if "runs finished between" not in ln] == \
            [ln for ln in theirs if "runs finished between" not in ln]
        index = (other / "index.md").read_text()
        assert "5 of 6 (1 failed)" in index
    with pytest.raises(SystemExit):
        mod.main(["--out", str(out)])   # neither --db nor --runs


def test_pages_build_with_mkdocs_strict(setup, tmp_path, load_script):
    pytest.importorskip("mkdocs")
    configs, db, out = setup
    (configs / "broken.yaml").unlink()
    assert load_script(PAGES).write_pages(str(db), out, configs)["written"] == ["table2_mini"]
    proj = out.parent.parent
    (proj / "mkdocs.yml").write_text((ROOT / "mkdocs.yml").read_text())
    (proj / "docs" / "index.md").write_text("# Home\n\n[results](results/index.md)\n")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=proj, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "results" / "table2_mini" / "index.html").exists()
    shutil.rmtree(tmp_path / "site")


def test_runs_stored_by_another_grid_take_this_grids_axes(tmp_path):
    """A run stored by grid A (same key) appears in grid B's table under B's axes, even when B
    reports an axis (here ``injection_ratio``) that A never varied."""
    from dglcleaner.experiments.report import grid_rows, grid_table

    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "a.yaml").write_text(yaml.safe_dump(dict(GRID, name="a", seeds=1)))
    sweep = dict(GRID, name="b", seeds=1, sweep={"injection_ratio": [0.05, 0.1]},
                 report={"rows": ["injection_ratio"], "columns": "defense",
                         "metrics": ["asr"]})
    (configs / "b.yaml").write_text(yaml.safe_dump(sweep))
    a, b = load_grid(configs / "a.yaml"), load_grid(configs / "b.yaml")
    db = tmp_path / "s.sqlite"
    with Store(db) as st:
        for spec in a.runs:
            st.put(key=spec.key, grid=spec.grid, seed=spec.seed, axes=spec.axes,
                   config=spec.config, status="ok", record={"defended": {"asr": 50.0}})
    from dglcleaner.experiments.store import iter_rows

    rows = list(iter_rows(db))
    chosen, missing = grid_rows(b, rows)
    assert len(chosen) == len(a.runs) and missing == len(b.runs) - len(a.runs)
    assert all("injection_ratio" in r.axes for r in chosen)
    table = grid_table(b, rows)  # raised "not an axis of these runs" before
    assert table is not None


def test_figures_drawn_for_swept_curves_only(tmp_path, load_script):
    pytest.importorskip("matplotlib")
    configs = tmp_path / "configs"
    configs.mkdir()
    swept = dict(GRID, name="swept", seeds=1, sweep={"injection_ratio": [0.05, 0.1]})
    (configs / "fig6_swept.yaml").write_text(yaml.safe_dump(swept))
    (configs / "fig7_flat.yaml").write_text(yaml.safe_dump(dict(GRID, name="flat", seeds=1)))
    (configs / "fig8_conf.yaml").write_text(yaml.safe_dump(dict(GRID, name="conf", seeds=1,
                                                                plot={"kind": "confusion"})))
    for name in ("fig9_tsne", "fig10_tsne"):  # drawn live by `plot tsne`; only one was
        (configs / f"{name}.yaml").write_text(yaml.safe_dump(dict(GRID, name=name, seeds=1,
                                                                  plot={"kind": "tsne"})))
    figs = tmp_path / "docs" / "figures"
    figs.mkdir(parents=True)
    (figs / "fig10_tsne.png").write_bytes(b"drawn by plot tsne")
    db = tmp_path / "s.sqlite"
    with Store(db) as st:
        for name in ("fig6_swept", "fig7_flat", "fig8_conf", "fig9_tsne", "fig10_tsne"):
            for spec in load_grid(configs / f"{name}.yaml").runs:
                st.put(key=spec.key, grid=spec.grid, seed=spec.seed, axes=spec.axes,
                       config=spec.config, status="ok",
                       record={"defended": {"asr": 50.0, "acc": 90.0}})
    out = tmp_path / "docs" / "results"
    summary = load_script(PAGES).write_pages(str(db), out, configs)
    assert [Path(f).name for f in summary["figures"]] == ["fig6_swept.png", "fig10_tsne.png"]
    assert "](../figures/fig10_tsne.png)" in (out / "fig10_tsne.md").read_text()
    assert "![" not in (out / "fig9_tsne.md").read_text()
    assert (figs / "fig6_swept.png").stat().st_size > 1000
    assert not (figs / "fig7_flat.png").exists()  # one x value: no curve to draw
    assert "![Mini table (synthetic)](../figures/fig6_swept.png)" in (
        out / "fig6_swept.md").read_text()
    assert "![" not in (out / "fig7_flat.md").read_text()
    # runs without confusion matrices: the page is written, the figure is skipped with a reason
    assert "confusion" in summary["figure_errors"]["fig8_conf"]
    assert "![" not in (out / "fig8_conf.md").read_text()
    assert load_script(PAGES).write_pages(str(db), out, configs, figures=None)["figures"] == []
