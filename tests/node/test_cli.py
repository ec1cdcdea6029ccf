"""``dglcleaner attack`` through click's CliRunner (CSBM monkeypatched in as the dataset)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from dglcleaner.cli.main import main

from .conftest import make_csbm


@pytest.fixture
def csbm_data(monkeypatch):
    import dglcleaner.data.npz as npz

    ds = make_csbm()
    monkeypatch.setattr(npz, "load_npz_dataset", lambda name, data_dir=None, **kw: ds)
    return ds


def test_attack_cli_json(tmp_path, csbm_data):
    out = tmp_path / "r.json"
    res = CliRunner().invoke(main, [
        "attack", "--task", "node", "--attack", "sgc-bin", "--dataset", "cora_ml", "--budget", "0.2",
        "--model", "gcn", "--splits", "2", "--protocol", "flawed-no-tuning", "--device", "cpu", "--epochs", "40",
        "--param", "lam=0.5", "--json", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["schema"] == "dglcleaner.node-attack/1"
    clean, pois = doc["summary"]["clean"]["acc"], doc["summary"]["poisoned"]["acc"]
    assert set(clean) >= {"mean", "std"} and set(pois) >= {"mean", "std"}
    assert pois["mean"] < clean["mean"]
    assert doc["config"]["attack_params"]["lam"] == 0.5
    assert len(doc["runs"]) == 4 and "torch" in doc["versions"]
    assert "poisoned" in res.output and "clean" in res.output


@pytest.mark.parametrize("args,needle", [
    (["--budget", "1.5"], "budget"),
    (["--budget", "0"], "budget"),
    (["--attack", "sgc-binn"], "sgc-bin"),
    (["--attack", "sub-ba"], "graph"),
    (["--task", "graph"], "task"),
    (["--model", "resnet"], "gcn"),
    (["--protocol", "honest"], "faithful"),
    (["--param", "lam=-1"], "lam"),
])
def test_attack_cli_bad_input(csbm_data, args, needle):
    base = {"--attack": "sgc-bin", "--budget": "0.1", "--task": "node", "--model": "gcn",
            "--protocol": "faithful"}
    base.update(dict(zip(args[::2], args[1::2])))
    argv = ["attack", "--splits", "1", "--quiet"] + [x for kv in base.items() for x in kv]
    res = CliRunner().invoke(main, argv)
    assert res.exit_code == 2, res.output
    assert needle in res.output
    assert "Traceback" not in res.output
