"""Fig. 9 (adaptive-attack alpha as a grid axis) and Table 4 (the evaluator's recovered-trigger
metrics) on the synthetic dataset with tiny settings."""
import pytest
from click.testing import CliRunner

from dglcleaner.errors import UserError
from dglcleaner.experiments.config import group_runs, load_grid
from dglcleaner.experiments.grid import run_grid
from dglcleaner.experiments.report import build_table, paper_lookup, render
from dglcleaner.experiments.store import RunRow, Store

GC = {"name": "gcleaner", "label": "GCleaner",
      "params": {"explainer": "random", "recovery_epochs": 2, "teacher_epochs": 1, "epochs": 2,
                 "n_search": 0}}
GTA = {"name": "gta", "label": "GTA", "params": {"iterations": 1, "gen_epochs": 1,
                                                 "model_epochs": 1}}


def doc(**over):
    d = {"name": "adaptive", "datasets": ["synthetic"],
         "attacks": [{"name": "sub-ba", "label": "Sub-BA"}],
         "defenses": [{"name": "none", "label": "Before"}, GC], "seeds": 1,
         "settings": {"train": {"epochs": 3}, "holding_ratio": 0.1},
         "sweep": {"adaptive_alpha": [0.0, 2.0]}}
    d.update(over)
    return d


def rows_of(db):
    with Store(db) as st:
        return st.rows()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One tiny Fig. 9 grid: Sub-BA and GTA x alpha {0, 2} x {none, gcleaner}, one seed."""
    db = str(tmp_path_factory.mktemp("adaptive") / "r.sqlite")
    grid = load_grid(doc=doc(attacks=[{"name": "sub-ba", "label": "Sub-BA"}, GTA]))
    summary = run_grid(grid, db, device="cpu")
    return grid, db, summary


def test_alpha_is_a_group_axis_sharing_the_clean_model():
    grid = load_grid(doc=doc(seeds=2, sweep={"adaptive_alpha": [0.0, 0.5, 2.0]}))
    assert len(grid.runs) == 2 * 3 * 2
    assert {r.axes["adaptive_alpha"] for r in grid.runs} == {0.0, 0.5, 2.0}
    units = group_runs(grid.runs)
    # alpha changes only the backdoored model: one unit (clean model) per seed, one group
    # (backdoored model) per alpha, and one attack result per seed shared by all alphas
    assert len(units) == 2 and all(len(u) == 3 for u in units)
    assert len({r.attack_key for r in grid.runs}) == 2
    assert len({r.group_key for r in grid.runs}) == 6
    # alpha 0 is the ordinary run: same key as a grid that never mentions alpha
    plain = load_grid(doc=doc(seeds=2, sweep=None))
    assert {r.key for r in plain.runs} <= {r.key for r in grid.runs}
    with pytest.raises(UserError, match="adaptive alpha must be >= 0"):
        load_grid(doc=doc(sweep={"adaptive_alpha": [-1.0]}))


def test_adaptive_runs_recovery_metrics_and_gta_applies_alpha(store):
    grid, db, summary = store
    assert (summary.ok, summary.failed) == (8, 0)
    by = {(r.axes["attack"], r.axes["adaptive_alpha"], r.axes["defense"]): r for r in rows_of(db)}
    # GTA trains its own backdoored model: alpha goes into its bi-level loop, so each alpha
    # runs its own attack (not shared) and gives another model
    g0, g2 = by[("GTA", 0.0, "Before")], by[("GTA", 2.0, "Before")]
    assert "attack" in g0.timings and "attack" in g2.timings
    assert g0.record["backdoored"] != g2.record["backdoored"]
    a0, a2 = by[("Sub-BA", 0.0, "Before")], by[("Sub-BA", 2.0, "Before")]
    # the alpha=2 group reused the attack result (no attack stage) but trained its own model
    assert "attack" in a0.timings and "attack" not in a2.timings
    assert "train backdoored model" in a2.timings
    assert a0.record["backdoored"] != a2.record["backdoored"]
    assert a0.record["clean"]["acc"] == a2.record["clean"]["acc"]  # same clean model
    assert a0.record["attack"]["poisoned"] == a2.record["attack"]["poisoned"]
    # Table 4 numbers: only for the defense that recovers a trigger, evaluator side
    assert "recovery" not in a0.record
    for key in [("Sub-BA", 0.0, "GCleaner"), ("Sub-BA", 2.0, "GCleaner"), ("GTA", 0.0, "GCleaner")]:
        rec = by[key].record["recovery"]
        assert set(rec) == {"asr", "defender_asr", "dominant_is_target", "similarity"}
        assert 0.0 <= rec["asr"] <= 100.0 and -1.0 <= rec["similarity"] <= 1.0
        assert by[key].record["defense_info"]["recovery_asr"] * 100 == pytest.approx(
            rec["defender_asr"])
        if rec["dominant_is_target"] == 100.0:  # same class: defender and evaluator agree
            assert rec["asr"] == pytest.approx(rec["defender_asr"], abs=1e-4)
    with Store(db) as st:
        names = {n for (n,) in st.conn.execute("SELECT name FROM metrics")}
    assert {"recovery.asr", "recovery.similarity"} <= names


def _untimed(record):
    """A record without wall-clock entries (GCleaner's ``defense_info`` holds ``*_s``)."""
    info = {k: v for k, v in (record.get("defense_info") or {}).items() if not k.endswith("_s")}
    return dict(record, defense_info=info)


def test_shared_attack_is_invisible(store, tmp_path):
    """alpha=2 alone (its own attack, no neighbour) gives the numbers it gave in the grid."""
    grid, db, _ = store
    alone = load_grid(doc=doc(sweep={"adaptive_alpha": [2.0]}))
    run_grid(alone, str(tmp_path / "a.sqlite"), device="cpu")
    full = {r.key: r for r in rows_of(db)}
    mine = rows_of(tmp_path / "a.sqlite")
    assert len(mine) == 2 and any("attack" in r.timings for r in mine)  # computed, not shared
    for r in mine:
        assert r.status == "ok"
        assert _untimed(r.record) == _untimed(full[r.key].record)


def test_report_and_plot_cli(store, tmp_path):
    pytest.importorskip("matplotlib")
    from dglcleaner.cli.run_cmd import plot_cmd, report_cmd

    grid, db, _ = store
    import yaml

    cfg = dict(grid.doc, attacks=[{"name": "sub-ba", "label": "Sub-BA"}, GTA],
               report={"rows": ["attack", "adaptive_alpha"], "columns": "defense",
                       "metrics": ["asr", "acc", "recovery.similarity", "recovery.asr"]},
               plot={"kind": "curve", "x": "adaptive_alpha", "xlabel": "alpha (Eq. 16)",
                     "hue": "defense", "panel": "attack"})
    path = tmp_path / "fig9.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(report_cmd, ["--db", db, "--config", str(path), "--format",
                                          "markdown"])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("| Sub-BA | 0.0 |"))
    gc_cell = line.split(" | ")[3]
    assert gc_cell.count(" / ") == 3 and "." in gc_cell.split(" / ")[2]
    assert "similarity: cosine in [-1, 1], not %" in res.output
    assert "| GTA | 2.0 |" in res.output
    out = tmp_path / "fig9.png"
    res = CliRunner().invoke(plot_cmd, ["curve", "--db", db, "--config", str(path), "--out",
                                        str(out)])
    assert res.exit_code == 0, res.output
    assert out.stat().st_size > 1000


def _row(explainer, attack, asr, sim, rasr, seed=0):
    return RunRow(key=f"{explainer}{attack}{seed}", grid="t4", seed=seed,
                  axes={"dataset": "AIDS", "attack": attack, "defense": "GCleaner",
                        "defense.explainer": explainer, "seed": seed},
                  config={}, status="ok", error=None,
                  record={"defended": {"asr": asr, "acc": 95.0},
                          "recovery": {"similarity": sim, "asr": rasr}},
                  timings={}, elapsed_s=1.0, versions={}, git_commit="abc", device="cpu",
                  attempts=1, finished_at="now")


PAPER4 = {"source": "Table 4", "values": [
    {"attack": "Sub-BA", "defense.explainer": "random", "asr": 15.25,
     "recovery.similarity": 0.685, "recovery.asr": 95.76},
    {"attack": "Sub-BA", "defense.explainer": "gnnexplainer", "asr": 6.64,
     "recovery.similarity": 0.625, "recovery.asr": 98.35}]}


def test_paper_lookup_on_sweep_axes_and_recovery_columns():
    # a dotted sweep axis is matched, not ignored (it used to match the first entry)
    axes = {"attack": "Sub-BA", "defense.explainer": "gnnexplainer"}
    assert paper_lookup(PAPER4, axes, "defended.asr") == 6.64
    assert paper_lookup(PAPER4, axes, "recovery.similarity") == 0.625
    assert paper_lookup(PAPER4, axes, "recovery.asr") == 98.35
    # a bare name means the default group only: no recovery.acc falls back to acc
    assert paper_lookup({"values": [{"attack": "Sub-BA", "acc": 90.0}]}, axes,
                        "recovery.acc") is None
    rows = [_row("random", "Sub-BA", 10.0, 0.70, 90.0), _row("random", "Sub-BA", 20.0, 0.60,
                                                             100.0, seed=1),
            _row("gnnexplainer", "Sub-BA", 5.0, 0.5, 80.0)]
    t = build_table(rows, {"rows": ["defense.explainer"], "columns": "attack",
                           "metrics": ["asr", "recovery.similarity", "recovery.asr"]}, PAPER4)
    assert t.body[0] == ["random", "15.00 ± 5.00 / 0.650 ± 0.050 / 95.00 ± 5.00",
                         "15.25 / 0.685 / 95.76", "2 ok"]
    assert t.body[1][2] == "6.64 / 0.625 / 98.35"
    assert "recovery similarity" in t.notes[0]
    assert "recovery.similarity_mean" in render(t, "csv")
    # short names, in the layout and in paper entries
    short = {"values": [{"attack": "Sub-BA", "defense.explainer": "random", "similarity": 0.5,
                         "recovery_asr": 90.0}]}
    t2 = build_table(rows, {"rows": ["defense.explainer"], "columns": "attack",
                            "metrics": ["similarity", "recovery_asr"]}, short)
    assert t2.body[0][1:3] == ["0.650 ± 0.050 / 95.00 ± 5.00", "0.500 / 90.00"]


def test_recovery_metrics_problem_does_not_fail_the_run(tmp_path, monkeypatch):
    from dglcleaner.experiments import grid as grid_mod

    def broken(run, plugin, dres):
        raise RuntimeError("no true trigger for these graphs")

    monkeypatch.setattr(grid_mod, "recovery_metrics", broken)
    g = load_grid(doc=doc(defenses=[{"name": "none", "label": "Before"}], sweep=None,
                          settings={"train": {"epochs": 1}}))
    assert run_grid(g, str(tmp_path / "r.sqlite"), device="cpu").ok == 1
    (row,) = rows_of(tmp_path / "r.sqlite")
    assert row.status == "ok" and "recovery" not in row.record
    assert row.record["recovery_error"] == ("RuntimeError: no true trigger for these graphs "
                                            "(during recovery metrics)")
    # record: {recovery: false} skips the evaluator's recovery step altogether
    g2 = load_grid(doc=doc(defenses=[{"name": "none", "label": "Before"}], sweep=None,
                           settings={"train": {"epochs": 1}}, record={"recovery": False}))
    run_grid(g2, str(tmp_path / "r2.sqlite"), device="cpu")
    (row2,) = rows_of(tmp_path / "r2.sqlite")
    assert row2.status == "ok" and "recovery_error" not in row2.record


def test_plot_rows_carry_the_plotted_grids_axes(store):
    """Runs stored by one grid are plotted under another grid's labels and axes."""
    from dglcleaner.cli.run_cmd import plot_rows

    grid, db, _ = store
    other = load_grid(doc=doc(name="relabelled", attacks=[{"name": "sub-ba", "label": "SubBA"}],
                              defenses=[{"name": "none", "label": "No defense"}, GC]))
    rows = plot_rows(db, other)
    assert len(rows) == len(other.runs) == 4
    assert {r.axes["defense"] for r in rows} == {"No defense", "GCleaner"}
    assert {r.axes["attack"] for r in rows} == {"SubBA"}
    assert {r.axes["adaptive_alpha"] for r in rows} == {0.0, 2.0}
    assert len(plot_rows(db)) == len(rows_of(db))


def test_runner_refuses_an_alpha_an_attacks_own_model_ignored():
    """An attack returning its own model without applying alpha (AttackResult.adaptive_alpha)
    would store unadapted numbers under an adaptive label: one clear error instead."""
    import torch

    from dglcleaner.api import AttackResult
    from dglcleaner.errors import ParameterError
    from dglcleaner.runner import DefendConfig, SeedRun

    run = SeedRun(DefendConfig(dataset="synthetic", attack="sub-ba", adaptive_alpha=2.0), 0)
    own = torch.nn.Linear(1, 1)
    run._cache["attack_result"] = AttackResult([], torch.zeros(0), torch.zeros(0), lambda g, s: g,
                                               model=own)
    with pytest.raises(ParameterError, match="adaptive_alpha=2.0 has no effect on attack"):
        run.backdoored_model
    run._cache["attack_result"].adaptive_alpha = 2.0  # applied: the attack's model is used
    assert run.backdoored_model is own
