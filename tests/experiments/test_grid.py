"""Grid execution: failures are recorded and the grid goes on; numbers are reproducible and
independent of which neighbours ran."""
import pytest

from dglcleaner.experiments.config import load_grid
from dglcleaner.experiments.grid import run_grid
from dglcleaner.experiments.store import Store

from .conftest import tiny_doc


def records(db):
    with Store(db) as st:
        return {r.key: r for r in st.rows()}


def test_failures_recorded_and_grid_continues(tmp_path, plugin_path):
    doc = tiny_doc(defenses=["broken-test", "nan-test", "mutate-test",
                             {"name": "none", "label": "Before"}])
    grid = load_grid(doc=doc)
    events = []
    s = run_grid(grid, str(tmp_path / "r.sqlite"), device="cpu",
                 on_event=lambda k, key, p: events.append((k, p.get("status"))))
    assert (s.ok, s.failed) == (1, 3)
    rows = {r.axes["defense"]: r for r in records(tmp_path / "r.sqlite").values()}
    assert rows["broken-test"].status == "failed"
    assert "RuntimeError: boom from a broken plugin (during defense)" == rows["broken-test"].error
    assert "non-finite" in rows["nan-test"].error
    assert "changed the shared backdoored model in place" in rows["mutate-test"].error
    # the mutating plugin's damage was undone: the next defense saw the real model
    before = rows["Before"]
    assert before.status == "ok" and before.record["defended"] == before.record["backdoored"]
    # and exactly the model a grid without the mutating plugin trains
    alone = load_grid(doc=tiny_doc(defenses=[{"name": "none", "label": "Before"}]))
    run_grid(alone, str(tmp_path / "alone.sqlite"), device="cpu")
    (ref,) = records(tmp_path / "alone.sqlite").values()
    assert before.record == ref.record
    assert before.timings and before.versions["torch"] and before.device == "cpu"
    assert [k for k, _ in events].count("done") == 4
    # a rerun retries only the failed ones; --skip-failed skips them
    s2 = run_grid(grid, str(tmp_path / "r.sqlite"), device="cpu", retry_failed=False)
    assert (s2.skipped, s2.ok, s2.failed) == (4, 0, 0)


def test_same_config_twice_identical_and_sharing_is_invisible(tmp_path):
    grid = load_grid(doc=tiny_doc())
    run_grid(grid, str(tmp_path / "a.sqlite"), device="cpu")
    run_grid(grid, str(tmp_path / "b.sqlite"), device="cpu")
    a, b = records(tmp_path / "a.sqlite"), records(tmp_path / "b.sqlite")
    assert set(a) == set(b) == {r.key for r in grid.runs}
    for k in a:
        assert a[k].status == "ok"
        assert a[k].record == b[k].record
    # the finetune run alone (no 'none' run before it, fresh process caches aside) gives
    # the same numbers as inside the full grid
    alone = load_grid(doc=tiny_doc(defenses=[{"name": "finetune", "params": {"epochs": 1}}]))
    run_grid(alone, str(tmp_path / "c.sqlite"), device="cpu")
    c = records(tmp_path / "c.sqlite")
    (key,) = c
    assert c[key].record == a[key].record


def test_confusion_recorded(tmp_path):
    grid = load_grid(doc=tiny_doc(defenses=["none"], record={"confusion": True}))
    run_grid(grid, str(tmp_path / "r.sqlite"), device="cpu")
    (row,) = records(tmp_path / "r.sqlite").values()
    conf = row.record["confusion"]
    assert set(conf) == {"clean", "backdoored", "defended"}
    n_eval = row.record["sizes"]["eval"]
    assert sum(map(sum, conf["defended"])) == n_eval
    correct = sum(conf["defended"][i][i] for i in range(len(conf["defended"])))
    assert abs(100.0 * correct / n_eval - row.record["defended"]["acc"]) < 1e-9
    # the same configuration stored without confusion matrices (by another grid, e.g. Table 3
    # for Fig. 5) is not taken for this grid's run: the record option is part of the key
    plain = load_grid(doc=tiny_doc(defenses=["none"]))
    assert [r.key for r in plain.runs] != [r.key for r in grid.runs]
    assert [r.group_key for r in plain.runs] == [r.group_key for r in grid.runs]
    off = load_grid(doc=tiny_doc(defenses=["none"], record={"confusion": False}))
    assert [r.key for r in off.runs] == [r.key for r in plain.runs]


@pytest.mark.parametrize("args, env, expected", [
    ([], None, 1),                      # the `defend` rule: one thread unless asked
    ([], "2", 2),                       # $OMP_NUM_THREADS
    (["--threads", "3"], "2", 3),       # --threads wins
])
def test_run_sets_torch_threads_like_defend(tmp_path, monkeypatch, args, env, expected):
    import torch
    import yaml
    from click.testing import CliRunner

    from dglcleaner.cli.run_cmd import run_cmd

    if env is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", env)
    cfg = tmp_path / "g.yaml"
    cfg.write_text(yaml.safe_dump(tiny_doc(defenses=[{"name": "none"}],
                                           settings={"train": {"epochs": 1}})))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(4 if expected != 4 else 5)
        res = CliRunner().invoke(run_cmd, [str(cfg), "--db", str(tmp_path / "r.sqlite"),
                                           "--quiet", "--device", "cpu", *args])
        assert res.exit_code == 0, res.output
        assert torch.get_num_threads() == expected
    finally:
        torch.set_num_threads(before)


def test_run_rejects_zero_threads(tmp_path):
    import yaml

    cfg = tmp_path / "g.yaml"
    cfg.write_text(yaml.safe_dump(tiny_doc()))
    from click.testing import CliRunner

    from dglcleaner.cli.main import main

    res = CliRunner().invoke(main, ["run", str(cfg), "--db", str(tmp_path / "r.sqlite"),
                                    "--threads", "0"])
    assert res.exit_code == 2 and "--threads must be >= 1" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "r.sqlite").exists()


def test_holding_ratio_shares_the_models_and_fails_alone(tmp_path):
    """The holding set is drawn after the train split: a holding-ratio sweep trains the clean
    and backdoored models once, a ratio the split cannot give fails alone, and a ratio run
    alone gives the numbers it gave in the sweep."""
    doc = tiny_doc(sweep={"holding_ratio": [0.9, 0.05, 0.1]})
    grid = load_grid(doc=doc)
    assert len({r.unit_key for r in grid.runs}) == 1
    assert len({r.model_key for r in grid.runs}) == 1
    assert len({r.group_key for r in grid.runs}) == 3
    s = run_grid(grid, str(tmp_path / "a.sqlite"), device="cpu")
    assert (s.ok, s.failed) == (4, 2)
    rows = records(tmp_path / "a.sqlite")
    by = {(r.axes["holding_ratio"], r.axes["defense"]): r for r in rows.values()}
    for d in ("Before", "finetune"):
        assert "holding_ratio 0.9 asks for" in by[(0.9, d)].error
    first, second = by[(0.05, "Before")], by[(0.1, "Before")]
    assert "train clean model" in first.timings and "train backdoored model" in first.timings
    for stage in ("train clean model", "attack", "train backdoored model"):
        assert stage not in second.timings  # shared, not recomputed
    assert "prepare data" in second.timings  # its own holding and evaluation sets
    assert "featurise data" in first.timings and "featurise data" not in second.timings
    assert first.record["sizes"]["train"] == second.record["sizes"]["train"]
    assert first.record["sizes"]["holding"] < second.record["sizes"]["holding"]
    alone = load_grid(doc=tiny_doc(sweep={"holding_ratio": [0.1]}))
    run_grid(alone, str(tmp_path / "b.sqlite"), device="cpu")
    b = records(tmp_path / "b.sqlite")
    assert len(b) == 2
    for key, row in b.items():
        assert "train backdoored model" in row.timings or row.axes["defense"] != "Before"
        assert row.status == "ok" and row.record == rows[key].record


def test_trigger_size_sweep_shares_the_clean_model(tmp_path):
    doc = tiny_doc(defenses=["none"], sweep={"trigger_fraction": [0.1, 0.3]})
    grid = load_grid(doc=doc)
    assert len({r.unit_key for r in grid.runs}) == 1
    assert len({r.model_key for r in grid.runs}) == 2  # the attack depends on the size
    run_grid(grid, str(tmp_path / "a.sqlite"), device="cpu")
    rows = sorted(records(tmp_path / "a.sqlite").values(),
                  key=lambda r: r.axes["trigger_fraction"])
    small, large = (r.record["attack"]["trigger_size"] for r in rows)
    assert small < large
    assert "train clean model" in rows[0].timings
    assert "train clean model" not in rows[1].timings
    assert "train backdoored model" in rows[1].timings
    clean = [{k: r.record["clean"][k] for k in ("acc", "bacc")} for r in rows]
    assert clean[0] == clean[1]  # same clean model on the same evaluation set


def test_attack_check_fails_its_runs_before_training_and_spares_the_others(tmp_path):
    doc = tiny_doc(defenses=["none"], attacks=[
        {"name": "motif-ba", "label": "bad", "params": {"candidates": 2}}, "sub-ba"])
    grid = load_grid(doc=doc)
    assert len({r.unit_key for r in grid.runs}) == 1
    s = run_grid(grid, str(tmp_path / "a.sqlite"), device="cpu")
    assert (s.ok, s.failed) == (1, 1)
    rows = {r.axes["attack"]: r for r in records(tmp_path / "a.sqlite").values()}
    bad, good = rows["bad"], rows["sub-ba"]
    assert bad.status == "failed" and "candidates" in bad.error
    assert "train clean model" not in bad.timings  # refused before any training
    assert good.status == "ok" and "train clean model" in good.timings


def test_defense_check_fails_its_run_before_the_defense_and_spares_the_others(tmp_path):
    doc = tiny_doc(defenses=[{"name": "none", "label": "Before"},
                             {"name": "gcleaner", "label": "big", "params": {"n": 10000}},
                             {"name": "finetune", "label": "typo", "params": {"epohcs": 1}}])
    s = run_grid(load_grid(doc=doc), str(tmp_path / "a.sqlite"), device="cpu")
    assert (s.ok, s.failed) == (1, 2)
    rows = {r.axes["defense"]: r for r in records(tmp_path / "a.sqlite").values()}
    assert rows["Before"].status == "ok"
    assert "parameter 'n' must be in [1," in rows["big"].error
    assert "(during defense check)" in rows["big"].error
    assert "epohcs" in rows["typo"].error
    assert "defense" not in rows["big"].timings   # never ran


def test_group_whose_defenses_are_all_refused_trains_nothing(tmp_path):
    doc = tiny_doc(defenses=[{"name": "gcleaner", "label": "big", "params": {"n": 10000}}])
    s = run_grid(load_grid(doc=doc), str(tmp_path / "a.sqlite"), device="cpu")
    assert (s.ok, s.failed) == (0, 1)
    (row,) = records(tmp_path / "a.sqlite").values()
    assert "parameter 'n' must be in" in row.error
    assert not any("train" in k for k in row.timings), row.timings


def test_parallel_jobs_store_the_same_numbers_as_one_job(tmp_path):
    import torch

    grid = load_grid(doc=tiny_doc(seeds=2))
    before = torch.get_num_threads()
    try:
        run_grid(grid, str(tmp_path / "one.sqlite"), device="cpu", threads=1)
    finally:
        torch.set_num_threads(before)
    summary = run_grid(grid, str(tmp_path / "two.sqlite"), device="cpu", jobs=2, threads=1)
    assert (summary.ok, summary.failed) == (len(grid.runs), 0)
    one, two = records(tmp_path / "one.sqlite"), records(tmp_path / "two.sqlite")
    assert set(one) == set(two) == {r.key for r in grid.runs}
    for key in one:
        assert two[key].status == "ok" and two[key].record == one[key].record, key
