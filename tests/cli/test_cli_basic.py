"""The command line through click's CliRunner: listing, doctor, defend, and bad input.

Bad input must end with exit code 2 and one line on stderr (``error: ...``), never a
traceback.
"""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from dglcleaner.cli.main import main


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2 mixes streams by default
    except TypeError:
        return CliRunner()


def invoke(*args: str):
    return _runner().invoke(main, list(args), catch_exceptions=False)


def one_line_error(result, *needles: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for needle in needles:
        assert needle in err, err
    return err


# --- list-plugins ----------------------------------------------------------------------------
def test_list_plugins_table() -> None:
    out = invoke("list-plugins")
    assert out.exit_code == 0
    for word in ("dglcleaner plugins", "sub-ba", "finetune", "none", "distribution"):
        assert word in out.stdout


def test_list_plugins_json() -> None:
    out = invoke("list-plugins", "--json")
    assert out.exit_code == 0
    rows = json.loads(out.stdout)
    keys = {"kind", "name", "group", "value", "distribution", "version", "status"}
    assert all(keys <= set(r) for r in rows)
    by = {(r["kind"], r["name"]): r for r in rows}
    assert by[("attack", "sub-ba")]["group"] == "dglcleaner.attacks"
    assert by[("defense", "finetune")]["distribution"] == "dglcleaner"
    assert all(r["status"] == "not loaded" for r in rows)  # listing imports nothing
    kinds = {r["kind"] for r in json.loads(invoke("list-plugins", "--json", "--kind",
                                                  "defense").stdout)}
    assert kinds == {"defense"}


def test_list_plugins_details() -> None:
    out = invoke("list-plugins", "--details", "sub-ba", "--json")
    assert out.exit_code == 0
    info = json.loads(out.stdout)
    assert info["name"] == "sub-ba" and info["kind"] == "attack" and info["task"] == "graph"
    assert "SACMAT 2021" in info["paper"] and info["threat_model"]
    density = {p["name"]: p for p in info["params"]}["density"]
    assert density == {"name": "density", "type": "float", "default": 0.8,
                       "range": "(0.0, 1.0]", "help": density["help"]}
    assert "official" in info["presets"]
    text = invoke("list-plugins", "--details", "SUB-BA")
    assert text.exit_code == 0
    for word in ("sub-ba", "Paper:", "Threat model:", "density", "(0.0, 1.0]"):
        assert word in text.stdout


def test_list_plugins_details_unknown_name() -> None:
    one_line_error(invoke("list-plugins", "--details", "sub-bz"), "Did you mean 'sub-ba'?")


def test_list_plugins_check() -> None:
    out = invoke("list-plugins", "--check", "--json", "--kind", "defense")
    assert out.exit_code == 0
    status = {r["name"]: r["status"] for r in json.loads(out.stdout)}
    assert status["none"] == "ok" and status["finetune"] == "ok"


# --- doctor ----------------------------------------------------------------------------------
def test_doctor() -> None:
    out = invoke("doctor", "--json")
    assert out.exit_code == 0
    info = json.loads(out.stdout)
    for key in ("python", "torch", "dgl", "dgl native libraries", "dgl loader",
                "data directory", "plugins"):
        assert key in info
    assert any(p["name"] == "sub-ba" for p in info["plugins"])
    text = invoke("doctor")
    assert text.exit_code == 0 and "dglcleaner doctor" in text.stdout


# --- defend ----------------------------------------------------------------------------------
def test_defend_synthetic_json(tmp_path) -> None:
    path = tmp_path / "out.json"
    out = invoke("defend", "--attack", "sub-ba", "--defense", "finetune", "--epochs", "3",
                 "--device", "cpu", "--quiet", "--json", str(path))
    assert out.exit_code == 0, out.output
    assert "results written to" in out.stdout
    doc = json.loads(path.read_text())
    assert doc["schema"] == "dglcleaner.defend/1"
    assert set(doc) >= {"schema", "summary", "runs", "config", "versions", "device",
                        "elapsed_s"}
    for group, metric in [("clean", "acc"), ("backdoored", "asr"), ("backdoored", "acc"),
                          ("defended", "asr"), ("defended", "acc"), ("defended", "bacc")]:
        ms = doc["summary"][group][metric]
        assert set(ms) >= {"mean", "std"} and 0 <= ms["mean"] <= 100
    assert len(doc["runs"]) == 1 and doc["runs"][0]["seed"] == 0
    assert doc["config"]["defense"] == "finetune" and doc["config"]["train"]["epochs"] == 3
    assert doc["versions"]["dglcleaner"] and doc["device"] == "cpu"


# --- bad input -------------------------------------------------------------------------------
BAD_INPUT = [
    (["--attack", "sub-bb"], ["unknown attack 'sub-bb'", "Did you mean 'sub-ba'?"]),
    (["--defense", "fintune"], ["unknown defense", "Did you mean 'finetune'?"]),
    (["--dataset", "NOPE"], ["unknown dataset 'NOPE'", "AIDS"]),
    (["--injection-ratio", "1.5"], ["injection ratio", "(0, 1)"]),
    (["--attack-param", "density=2"], ["density", "(0.0, 1.0]"]),
    (["--attack-param", "density=abc"], ["density"]),
    (["--attack-param", "nosuch=1"], ["nosuch", "density"]),
    (["--defense-param", "epochs=0"], ["epochs"]),
    (["--model", "gcnn"], ["Did you mean 'gcn'?"]),
    (["--dataset", "AIDS", "--data-dir", "/nonexistent/dglcleaner-data"], ["data-dir"]),
]


@pytest.mark.parametrize("args, needles", BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_defend_bad_input_is_one_line_exit_2(args, needles) -> None:
    one_line_error(invoke("defend", "--quiet", "--device", "cpu", *args), *needles)


# Settings only the data can refute: the plugins' check hooks refuse them before any training.
LATE_BAD_INPUT = [
    (["--trigger-size", "10000"], ["trigger size must be in [1, "]),
    (["--holding-ratio", "0.002"], ["at least two classes", "--holding-ratio"]),
    (["--defense-param", "n=200"], ["parameter 'n' must be in [1, "]),
    (["--attack", "motif-ba", "--attack-param", "candidates=2"], ["candidates"]),
]


@pytest.mark.parametrize("args, needles", LATE_BAD_INPUT,
                         ids=[" ".join(a) for a, _ in LATE_BAD_INPUT])
def test_defend_data_dependent_bad_input_fails_before_training(args, needles,
                                                                monkeypatch) -> None:
    from dglcleaner.runner import SeedRun

    def no_training(self, *a, **k):
        raise AssertionError("a model was trained before the settings were checked")

    monkeypatch.setattr(SeedRun, "train", no_training)
    one_line_error(invoke("defend", "--quiet", "--device", "cpu", *args), *needles)


def test_defend_malformed_data_folder(tmp_path) -> None:
    folder = tmp_path / "AIDS"
    folder.mkdir()
    (folder / "AIDS_A.txt").write_text("1, 2\nfoo, bar\n")
    (folder / "AIDS_graph_indicator.txt").write_text("1\n1\n")
    (folder / "AIDS_graph_labels.txt").write_text("0\n")
    one_line_error(invoke("defend", "--quiet", "--dataset", "AIDS", "--data-dir",
                          str(tmp_path)), "AIDS_A.txt", "line 2")


def test_python_dash_m_runs_the_same_command_line():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "dglcleaner", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.startswith("dglcleaner, version")
