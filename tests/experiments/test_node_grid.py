"""Label-poisoning grids (``task: node``) through ``dglcleaner run`` and ``report``."""
from __future__ import annotations

import json
import sqlite3

import pytest
import yaml
from click.testing import CliRunner

from dglcleaner.cli.main import main
from dglcleaner.experiments.config import load_grid

from node.conftest import make_csbm  # tests/ is on sys.path (rootdir-relative packages)

GRID = {
    "name": "lp_small",
    "task": "node",
    "datasets": ["cora_ml"],
    "models": ["gcn"],
    "attacks": ["rnd", {"name": "sgc-bin", "label": "SGC-BIN"}],
    "protocols": ["flawed-no-tuning"],
    "budgets": [0.1, 0.3],
    "splits": 2,
    "settings": {"epochs": 40, "patience": 8, "n_folds": 2},
}


@pytest.fixture
def csbm_data(monkeypatch):
    import dglcleaner.data.npz as npz

    ds = make_csbm()
    monkeypatch.setattr(npz, "load_npz_dataset", lambda name, data_dir=None, **kw: ds)
    return ds


def _write(tmp_path, doc, name="grid.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(doc))
    return str(p)


def _rows(db):
    con = sqlite3.connect(db)
    try:
        return {k: (status, json.loads(rec), json.loads(axes)) for k, status, rec, axes in
                con.execute("SELECT key, status, record, axes FROM runs")}
    finally:
        con.close()


def test_expansion_units_and_axes():
    grid = load_grid(doc=GRID)
    assert len(grid.runs) == 2 * (1 + 2 * 2)  # splits x (clean + attacks x budgets)
    assert len({r.unit_key for r in grid.runs}) == 2
    clean = [r for r in grid.runs if r.axes["attack"] == "clean"]
    assert [r.seed for r in clean] == [0, 1] and all(r.axes["budget"] == 0.0 for r in clean)
    assert {r.axes["attack"] for r in grid.runs} == {"clean", "rnd", "SGC-BIN"}
    assert grid.report["group"] == "poisoned" and grid.report["columns"] == "budget"


def test_run_store_report_and_resume(tmp_path, csbm_data):
    cfg, db = _write(tmp_path, GRID), str(tmp_path / "r.sqlite")
    res = CliRunner().invoke(main, ["run", cfg, "--db", db, "--device", "cpu", "--quiet"])
    assert res.exit_code == 0, res.output
    rows = _rows(db)
    assert len(rows) == 10 and all(s == "ok" for s, _, _ in rows.values())
    attacked = [r for _, r, ax in rows.values() if ax["attack"] != "clean"]
    assert len(attacked) == 8
    assert all(r["poisoned"]["flips"] == r["poisoned"]["budget_nodes"] > 0 for r in attacked)
    clean = [r["poisoned"]["acc"] for _, r, ax in rows.values() if ax["attack"] == "clean"]
    sgc30 = [r["poisoned"]["acc"] for _, r, ax in rows.values()
             if ax["attack"] == "SGC-BIN" and ax["budget"] == 0.3]
    assert len(clean) == len(sgc30) == 2 and max(sgc30) < min(clean)
    # resume: nothing pending
    res = CliRunner().invoke(main, ["run", cfg, "--db", db, "--device", "cpu", "--quiet"])
    assert res.exit_code == 0 and "0 pending" in res.output
    res = CliRunner().invoke(main, ["report", "--db", db, "--config", cfg, "--format",
                                    "markdown"])
    assert res.exit_code == 0, res.output
    assert "SGC-BIN" in res.output and "clean" in res.output and "0.3" in res.output


def test_a_split_alone_gives_the_same_row(tmp_path, csbm_data):
    full, alone = str(tmp_path / "a.sqlite"), str(tmp_path / "b.sqlite")
    cfg = _write(tmp_path, GRID)
    assert CliRunner().invoke(main, ["run", cfg, "--db", full, "--quiet"]).exit_code == 0
    res = CliRunner().invoke(main, ["run", cfg, "--db", alone, "--quiet", "--set",
                                    "splits=[1]", "--set", "attacks=[sgc-bin]"])
    assert res.exit_code == 0, res.output
    a, b = _rows(full), _rows(alone)
    assert len(b) == 3  # the same keys: labels are not part of a run's identity

    def numbers(row):
        return row[0], row[1]["poisoned"], row[1]["params"]

    assert all(numbers(a[k]) == numbers(v) for k, v in b.items())


@pytest.mark.parametrize("change,needle", [
    ({"defenses": ["none"]}, "defenses"),
    ({"budgets": [1.5]}, "budgets"),
    ({"splits": 0}, "splits"),
    ({"attacks": ["sub-ba"]}, "graph backdoor"),
    ({"datasets": ["AIDS"]}, "cora_ml"),
    ({"models": ["gin"]}, "gcn"),
    ({"protocols": ["honest"]}, "faithful"),
    ({"settings": {"n_trails": 3}}, "n_trials"),
    ({"task": "edges"}, "node"),
    ({"attacks": [{"name": "rnd", "sweep": {"x": [1]}}]}, "sweep"),
])
def test_bad_node_grids_give_one_line(tmp_path, change, needle):
    cfg = _write(tmp_path, {**GRID, **change})
    res = CliRunner().invoke(main, ["run", cfg, "--db", str(tmp_path / "x.sqlite"),
                                    "--dry-run"])
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
