"""Grid files: expansion, keys, work sharing, overrides and one-line errors."""
import pytest

from dglcleaner.errors import UserError
from dglcleaner.experiments.config import (ConfigError, apply_overrides, group_runs, load_grid,
                                           read_document)

from .conftest import tiny_doc


def test_expansion_counts_axes_and_order():
    doc = tiny_doc(models=["gin", "gcn"], attacks=["sub-ba", {"name": "none"}], seeds=3,
                   sweep={"injection_ratio": [0.03, 0.05]})
    grid = load_grid(doc=doc)
    # 2 models x 2 attacks x 2 ratios x 3 seeds x 2 defenses
    assert len(grid.runs) == 48
    assert len({r.key for r in grid.runs}) == 48
    r = grid.runs[0]
    assert r.axes == {"dataset": "synthetic", "model": "gin", "attack": "sub-ba",
                      "defense": "Before", "injection_ratio": 0.03, "seed": 0}
    assert r.config["train"]["epochs"] == 2 and r.config["injection_ratio"] == 0.03
    none_attack = [x for x in grid.runs if x.axes["attack"] == "none"]
    assert none_attack and all(x.config["attack"] is None for x in none_attack)
    # defenses are innermost: runs of one backdoored model are adjacent
    assert grid.runs[0].group_key == grid.runs[1].group_key


def test_sharing_levels():
    doc = tiny_doc(attacks=["sub-ba", {"name": "sub-ba", "label": "big", "params": {}},
                            {"name": "sub-ba", "label": "r3"}],
                   sweep={"injection_ratio": [0.03, 0.05]}, seeds=2)
    grid = load_grid(doc=doc)
    # labels do not change keys: the three sub-ba entries are one and the same run each
    assert len(grid.runs) == 2 * 2 * 2
    units = group_runs(grid.runs)
    # injection ratio is attack-only: data + clean model shared across it, per seed
    assert len(units) == 2
    assert all(len(u) == 2 for u in units)          # 2 ratios -> 2 backdoored models
    assert all(len(g) == 2 for u in units for g in u)  # 2 defenses each


def test_keys_ignore_device_and_labels_but_not_settings():
    a = load_grid(doc=tiny_doc()).runs
    b = load_grid(doc=tiny_doc(defenses=[{"name": "none", "label": "Other"},
                                         {"name": "finetune", "params": {"epochs": 1}}])).runs
    assert [r.key for r in a] == [r.key for r in b]
    c = load_grid(doc=tiny_doc(settings={"train": {"epochs": 3}})).runs
    assert not {r.key for r in a} & {r.key for r in c}


def test_defense_sweep_and_overrides(tmp_path):
    doc = tiny_doc(defenses=[{"name": "finetune", "sweep": {"epochs": [1, 2, 3]}}])
    grid = load_grid(doc=doc, overrides=["seeds=[4, 5]", "settings.holding_ratio=0.05"])
    assert len(grid.runs) == 6
    assert {r.axes["defense.epochs"] for r in grid.runs} == {1, 2, 3}
    assert {r.seed for r in grid.runs} == {4, 5}
    assert all(r.config["holding_ratio"] == 0.05 for r in grid.runs)
    assert all(r.config["defense_params"]["epochs"] == r.axes["defense.epochs"]
               for r in grid.runs)
    assert apply_overrides({"a": 1}, []) == {"a": 1}


def test_toml_and_yaml_give_the_same_runs(tmp_path):
    y = tmp_path / "g.yaml"
    y.write_text("name: g\ndefenses: [none, finetune]\nseeds: 2\nsettings:\n  train: {epochs: 2}\n")
    t = tmp_path / "g.toml"
    t.write_text('name = "g"\ndefenses = ["none", "finetune"]\nseeds = 2\n'
                 '[settings.train]\nepochs = 2\n')
    assert [r.key for r in load_grid(y).runs] == [r.key for r in load_grid(t).runs]


@pytest.mark.parametrize("doc, fragment", [
    (tiny_doc(colour="red"), "unknown grid key"),
    (tiny_doc(defenses=["gclener-typo"]), "unknown defense"),
    (tiny_doc(datasets=["AIDZ"]), "unknown dataset"),
    (tiny_doc(models=["gni"]), "unknown model"),
    (tiny_doc(seeds=0), "seeds must be >= 1"),
    (tiny_doc(settings={"injection_ration": 0.1}), "unknown setting"),
    (tiny_doc(settings={"train": {"epoch": 1}}), "unknown training setting"),
    (tiny_doc(settings={"injection_ratio": 2.0}), "injection ratio"),
    (tiny_doc(defenses=[{"name": "none", "colour": 1}]), "unknown field"),
])
def test_bad_grids_fail_with_one_line(doc, fragment):
    with pytest.raises(UserError) as exc:
        load_grid(doc=doc)
    assert fragment in str(exc.value)
    assert "\n" not in str(exc.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_document(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        read_document(bad)
    with pytest.raises(ConfigError, match="--set"):
        load_grid(doc=tiny_doc(), overrides=["seeds"])
