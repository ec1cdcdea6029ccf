"""defend --save-model, repairing a model file, the adaptive attack option, --threads."""
import json
import pickle

from click.testing import CliRunner

from dglcleaner.cli.main import main


def _invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_save_then_repair_model_file(tmp_path):
    model = tmp_path / "backdoored.dgc"
    res = _invoke("defend", "--epochs", "3", "--quiet", "--save-model", str(model))
    assert res.exit_code == 0, res.output
    out, js = tmp_path / "repaired.dgc", tmp_path / "repair.json"
    res = _invoke("defend", "--model", str(model), "--clean-data", "synthetic:30",
                  "--defense", "finetune", "--out", str(out), "--json", str(js))
    assert res.exit_code == 0, res.output
    doc = json.loads(js.read_text())
    assert doc["schema"] == "dglcleaner.repair/1" and doc["clean_graphs"] == 30
    assert out.exists() and "written to" in res.output


def test_repair_refuses_training_set_defense_and_pickles(tmp_path):
    model = tmp_path / "m.dgc"
    assert _invoke("defend", "--epochs", "2", "--quiet", "--save-model", str(model)).exit_code == 0
    res = CliRunner().invoke(main, ["defend", "--model-file", str(model), "--clean-data",
                                    "synthetic:30", "--defense", "abl"])
    assert res.exit_code == 2 and "threat model training-set" in res.output
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"x": 1}))
    res = CliRunner().invoke(main, ["defend", "--model-file", str(evil), "--clean-data",
                                    "synthetic:30", "--defense", "finetune"])
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_repair_options_need_a_model_file():
    res = CliRunner().invoke(main, ["defend", "--clean-data", "synthetic", "--quiet"])
    assert res.exit_code == 2 and "--model-file" in res.output


def test_adaptive_alpha_and_threads_validation(tmp_path):
    res = CliRunner().invoke(main, ["defend", "--adaptive-alpha", "-1", "--quiet"])
    assert res.exit_code == 2 and "adaptive alpha" in res.output
    res = CliRunner().invoke(main, ["defend", "--threads", "0", "--quiet"])
    assert res.exit_code == 2 and "--threads" in res.output
    js = tmp_path / "a.json"
    res = _invoke("defend", "--epochs", "2", "--quiet", "--adaptive-alpha", "0.5",
                  "--json", str(js))
    assert res.exit_code == 0, res.output
    assert json.loads(js.read_text())["config"]["adaptive_alpha"] == 0.5
