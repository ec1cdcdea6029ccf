"""The DGL loader: steps in only when graphbolt cannot load, and fails with one clear message."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from dglcleaner import _dgl


def test_dgl_imports_and_works():
    g = _dgl.dgl.graph(([0, 1], [1, 2]))
    assert g.num_nodes() == 3 and g.num_edges() == 2


def test_placeholder_raises_clear_error_when_stepped_in():
    if not _dgl.STATE["stepped_in"]:
        pytest.skip("DGL imported normally here; the placeholder is not installed")
    with pytest.raises(RuntimeError, match="dglcleaner does not use it"):
        sys.modules["dgl.graphbolt"].ItemSampler  # noqa: B018


def test_blocker_reports_missing_library(tmp_path):
    (tmp_path / "graphbolt").mkdir()
    (tmp_path / "graphbolt" / "__init__.py").write_text("")
    reason = _dgl.graphbolt_blocker(tmp_path, "9.9.9+cpu")
    assert reason and "9.9.9" in reason


def test_blocker_none_when_library_and_datapipes_present(tmp_path, monkeypatch):
    (tmp_path / "graphbolt").mkdir()
    (tmp_path / "graphbolt" / "__init__.py").write_text("")
    (tmp_path / "graphbolt" / "libgraphbolt_pytorch_9.9.9.so").write_text("")
    monkeypatch.setattr(_dgl, "_torchdata_has_datapipes", lambda: True)
    assert _dgl.graphbolt_blocker(tmp_path, "9.9.9+cu121") is None


def _fake_env(tmp_path: Path, dgl_init: str, with_lib: bool) -> dict:
    pkg = tmp_path / "dgl"
    (pkg / "graphbolt").mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(dgl_init))
    (pkg / "graphbolt" / "__init__.py").write_text("LOADED = True\n")
    if with_lib:
        base = torch.__version__.split("+")[0]
        (pkg / "graphbolt" / f"libgraphbolt_pytorch_{base}.so").write_text("")
        (tmp_path / "torchdata" / "datapipes").mkdir(parents=True)
        (tmp_path / "torchdata" / "__init__.py").write_text("")
        (tmp_path / "torchdata" / "datapipes" / "__init__.py").write_text("")
    env = dict(os.environ)
    root = Path(_dgl.__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(root)])
    return env


def _run(env: dict, code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)


def test_loader_does_nothing_when_graphbolt_loads(tmp_path):
    env = _fake_env(tmp_path, """
        __version__ = "fake"
        from . import graphbolt
        def graph(*a, **k):
            return None
    """, with_lib=True)
    out = _run(env, "from dglcleaner._dgl import STATE, dgl; import sys; "
                    "print(STATE['stepped_in'], sys.modules['dgl.graphbolt'].LOADED)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]


def test_loader_steps_in_without_library(tmp_path):
    env = _fake_env(tmp_path, """
        __version__ = "fake"
        from . import graphbolt
        graphbolt.ItemSampler
        def graph(*a, **k):
            return None
    """, with_lib=False)
    out = _run(env, "from dglcleaner._dgl import STATE; print(STATE['stepped_in'])")
    # the fake DGL touches graphbolt at import: the placeholder raises, the loader reports it
    assert out.returncode != 0
    assert "cannot import DGL" in out.stderr and "dglcleaner does not use it" in out.stderr


def test_other_import_failure_gives_one_message_with_fix(tmp_path):
    env = _fake_env(tmp_path, """
        raise OSError("libdgl.so: cannot open shared object file")
    """, with_lib=True)
    out = _run(env, "import dglcleaner._dgl")
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert "DGLImportError" in last and "libdgl.so" in last and "constraints.txt" in last


def test_native_libraries_lists_each_kind():
    libs = _dgl.native_libraries()
    assert libs["core"], libs  # libdgl.so is always there
    assert set(libs) == {"core", "sparse", "graphbolt"}
    assert all(name.startswith("libdgl_sparse_pytorch_") for name in libs["sparse"])
    assert libs["sparse"], "DGL 2.1 wheels ship dgl_sparse libraries"
