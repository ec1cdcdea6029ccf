"""Safe model files (no pickle) and the repair path for a model file."""
import io
import os
import pickle
import zipfile

import pytest
import torch

from dglcleaner.errors import ModelFileError, UserError
from dglcleaner.model_io import load_model, save_model
from dglcleaner.models import build_model


class _Evil:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def _model():
    torch.manual_seed(0)
    return build_model("gin", in_dim=6, num_classes=3).eval()


def test_round_trip_keeps_weights_featurizer_and_metadata(tmp_path):
    from dglcleaner.data.features import DegreeOneHot

    m = _model()
    m.norms[0].running_mean.fill_(0.25)  # buffers travel too
    path = tmp_path / "m.dglc"
    save_model(path, m, DegreeOneHot(5), {"dataset": "demo"})
    loaded = load_model(path)
    assert loaded.model.config() == m.config()
    for k, v in m.state_dict().items():
        assert torch.equal(v, loaded.model.state_dict()[k]), k
    assert loaded.featurizer.dim == 6 and loaded.metadata == {"dataset": "demo"}
    assert not loaded.model.training


@pytest.mark.parametrize("kind", ["pickle", "torch"])
def test_malicious_pickle_is_refused_without_running_code(tmp_path, kind):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    if kind == "pickle":
        path.write_bytes(pickle.dumps(_Evil(marker)))
    else:
        torch.save({"state": _Evil(marker)}, path)
    with pytest.raises(ModelFileError) as exc:
        load_model(path)
    msg = str(exc.value)
    assert "\n" not in msg and ("pickle" in msg)
    assert not marker.exists()


def test_other_bad_files_are_one_line(tmp_path):
    txt = tmp_path / "x.bin"
    txt.write_bytes(b"hello world")
    with pytest.raises(ModelFileError, match="not a dglcleaner model file"):
        load_model(txt)
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "missing.dglc")
    # a zip whose weights do not fit the described model
    m = _model()
    path = tmp_path / "m.dglc"
    save_model(path, m)
    with zipfile.ZipFile(path) as zf:
        desc = zf.read("dglcleaner-model.json").decode().replace('"num_classes": 3',
                                                                 '"num_classes": 4')
        weights = zf.read("weights.npz")
    bad = tmp_path / "bad.dglc"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("dglcleaner-model.json", desc)
        zf.writestr("weights.npz", weights)
    with pytest.raises(ModelFileError, match="shape"):
        load_model(bad)
    # object arrays inside the npz would need pickle: refused
    buf = io.BytesIO()
    import numpy as np

    np.savez(buf, evil=np.array([_Evil(tmp_path / "p2")], dtype=object))
    obj = tmp_path / "obj.dglc"
    with zipfile.ZipFile(obj, "w") as zf:
        zf.writestr("dglcleaner-model.json", desc.replace('"num_classes": 4', '"num_classes": 3'))
        zf.writestr("weights.npz", buf.getvalue())
    with pytest.raises(ModelFileError):
        load_model(obj)
    assert not (tmp_path / "p2").exists()


def _saved_synthetic(tmp_path, synthetic_run):
    run = synthetic_run
    path = tmp_path / "suspect.dglc"
    save_model(path, run.backdoored_model, run.data["featurizer"], {"dataset": "synthetic"})
    return path


def test_repair_runs_gcleaner_on_a_model_file(tmp_path, synthetic_run):
    from dglcleaner.repair import repair

    src = _saved_synthetic(tmp_path, synthetic_run)
    out = tmp_path / "repaired.dglc"
    rep = repair(str(src), "synthetic:40", "gcleaner",
                 {"explainer": "random", "epochs": 3, "recovery_epochs": 3,
                  "teacher_epochs": 2}, str(out), device="cpu", seed=0)
    assert out.is_file() and rep["clean_graphs"] == 40
    assert "recovery_asr" in rep["info"]
    fixed = load_model(out)
    assert fixed.metadata["repaired_by"] == "gcleaner"
    assert fixed.metadata["dataset"] == "synthetic"
    assert any(not torch.equal(a, b) for a, b in zip(
        fixed.model.state_dict().values(), synthetic_run.backdoored_model.state_dict().values()))


def test_repair_bad_input_is_one_line(tmp_path, synthetic_run):
    from dglcleaner.repair import repair

    src = _saved_synthetic(tmp_path, synthetic_run)
    with pytest.raises(UserError, match="post-training"):
        repair(str(src), "synthetic:20", "abl", {}, None)
    with pytest.raises(UserError, match="oracle"):
        repair(str(src), "synthetic:20", "gcleaner", {"trigger_source": "oracle"}, None)
    # a model for a different class count
    other = tmp_path / "other.dglc"
    feat = synthetic_run.data["featurizer"]
    save_model(other, build_model("gin", in_dim=feat.dim + 3, num_classes=2))
    with pytest.raises(UserError, match="features"):
        repair(str(other), "synthetic:20", "finetune", {}, None, features="degree_onehot")
    one_class = tmp_path / "one.dglc"
    save_model(one_class, build_model("gin", in_dim=feat.dim, num_classes=1), feat)
    with pytest.raises(ModelFileError, match="classes"):
        repair(str(one_class), "synthetic:20", "finetune", {}, None)
