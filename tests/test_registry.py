"""Plugin discovery, loading and failure isolation (spec A4.4 levels 2 and 3).

Level 2: a ``*.dist-info`` folder and a module written to ``tmp_path``, put on ``sys.path``
with ``monkeypatch.syspath_prepend``: ``importlib.metadata`` finds it exactly as it finds an
installed package. Level 3: a real ``pip install --target`` of the fixture packages in
``tests/fixtures`` and ``examples``, then the CLI.
"""
from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Dict, Optional

import pytest
from click.testing import CliRunner

from dglcleaner import registry
from dglcleaner.api import API_VERSION
from dglcleaner.cli.main import main
from dglcleaner.errors import PluginLoadError, UnknownNameError

ROOT = Path(__file__).resolve().parents[1]

DEFENSE_SOURCE = '''
from dglcleaner.api import DefenseResult, PluginBase, ThreatModel

class Plugin(PluginBase):
    """A third-party test defense."""
    name = {name!r}
    kind = "defense"
    task = "graph"
    summary = "Third-party test defense."
    paper = "-"
    threat_model = ThreatModel.POST_TRAINING
    api_version = {api}

    def run(self, ctx):
        return DefenseResult(model=ctx.model)
'''


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A fresh folder on ``sys.path`` in which :func:`add` writes fake distributions."""
    monkeypatch.setattr(registry, "_CACHE", {})
    monkeypatch.syspath_prepend(str(tmp_path))
    added = []
    yield _Site(tmp_path, added)
    for mod in added:
        sys.modules.pop(mod, None)


class _Site:
    def __init__(self, root: Path, added: list) -> None:
        self.root, self.added = root, added

    def add(self, dist: str, entries: Dict[str, str], sources: Dict[str, str],
            group: str = "dglcleaner.defenses", version: str = "0.3") -> None:
        """Write a distribution ``dist`` with ``entries`` (name -> module:attr) and modules."""
        for module, source in sources.items():
            (self.root / f"{module}.py").write_text(source)
            self.added.append(module)
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\n"
                                       f"Version: {version}\n")
        lines = "\n".join(f"{k} = {v}" for k, v in entries.items())
        (info / "entry_points.txt").write_text(f"[{group}]\n{lines}\n")


def _mod(tag: str) -> str:
    return f"dgc_test_{tag}_{uuid.uuid4().hex[:8]}"


def _defense(name: str, api: int = API_VERSION) -> str:
    return DEFENSE_SOURCE.format(name=name, api=api)


def _one_line_error(result, *needles: str) -> str:
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert "Traceback" not in result.output and len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        return CliRunner()


# --- level 2 ---------------------------------------------------------------------------------
def test_discovery_does_not_import_and_loading_imports_only_one(site) -> None:
    a, b = _mod("a"), _mod("b")
    site.add("dglcleaner-fake", {"fake-a": f"{a}:Plugin", "fake-b": f"{b}:Plugin"},
             {a: _defense("fake-a"), b: _defense("fake-b")})
    specs = {s.name: s for s in registry.discover("defense")}
    assert specs["fake-a"].dist == "dglcleaner-fake" and specs["fake-a"].version == "0.3"
    assert specs["fake-a"].group == "dglcleaner.defenses"
    assert specs["none"].dist == "dglcleaner"  # built-ins come through the same path
    out = _runner().invoke(main, ["list-plugins", "--json", "--kind", "defense"])
    assert out.exit_code == 0
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["fake-b"]["distribution"] == "dglcleaner-fake"
    assert rows["fake-b"]["status"] == "not loaded"
    assert a not in sys.modules and b not in sys.modules
    cls = registry.load_plugin("defense", "fake-a")
    assert cls.name == "fake-a" and a in sys.modules and b not in sys.modules


def test_names_resolve_case_insensitively_with_did_you_mean(site) -> None:
    a = _mod("ci")
    site.add("dglcleaner-ci", {"fancy-def": f"{a}:Plugin"}, {a: _defense("fancy-def")})
    assert registry.find("defense", "FANCY-DEF").name == "fancy-def"
    assert registry.find("defense", "Fancy_Def").name == "fancy-def"
    with pytest.raises(UnknownNameError) as exc:
        registry.find("defense", "fancy-dfe")
    msg = str(exc.value)
    assert "Did you mean 'fancy-def'?" in msg and "finetune" in msg and "\n" not in msg
    err = _one_line_error(_runner().invoke(main, ["defend", "--defense", "fancy-dfe",
                                                  "--quiet"]), "fancy-def")
    assert err.startswith("error: unknown defense")


def test_duplicate_names_across_distributions_are_refused(site) -> None:
    a, b = _mod("dup1"), _mod("dup2")
    site.add("dglcleaner-first", {"dup-def": f"{a}:Plugin"}, {a: _defense("dup-def")})
    site.add("dglcleaner-second", {"dup-def": f"{b}:Plugin"}, {b: _defense("dup-def")})
    listed = [s.dist for s in registry.discover("defense") if s.name == "dup-def"]
    assert listed == ["dglcleaner-first", "dglcleaner-second"]
    with pytest.raises(PluginLoadError, match="dglcleaner-first and dglcleaner-second"):
        registry.find("defense", "DUP-DEF")
    _one_line_error(_runner().invoke(main, ["defend", "--defense", "dup-def", "--quiet"]),
                    "dglcleaner-first", "dglcleaner-second")


def test_broken_plugin_is_reported_with_its_distribution_and_skipped(site) -> None:
    a = _mod("broken")
    site.add("dglcleaner-kaputt", {"kaputt": f"{a}:Plugin"},
             {a: "raise ValueError('boom at import')\n"})
    with pytest.raises(PluginLoadError) as exc:
        registry.load_plugin("defense", "kaputt")
    msg = str(exc.value)
    assert "dglcleaner-kaputt[kaputt]" in msg and "ValueError: boom at import" in msg
    assert "DGLCLEANER_DISABLE_PLUGINS=dglcleaner-kaputt" in msg
    status = {s.name: err for s, err in registry.check_all("defense")}
    assert status["kaputt"] is not None and status["none"] is None
    assert status["finetune"] is None
    out = _runner().invoke(main, ["list-plugins", "--check", "--json", "--kind", "defense"])
    assert out.exit_code == 0
    rows = {r["name"]: r["status"] for r in json.loads(out.stdout)}
    assert "boom at import" in rows["kaputt"] and rows["none"] == "ok"
    _one_line_error(_runner().invoke(main, ["defend", "--defense", "kaputt", "--quiet"]),
                    "dglcleaner-kaputt")


def test_plugin_that_misses_the_protocol_is_reported(site) -> None:
    a = _mod("noproto")
    site.add("dglcleaner-noproto", {"no-run": f"{a}:Plugin"},
             {a: "class Plugin:\n    name = 'no-run'\n    kind = 'defense'\n"})
    with pytest.raises(PluginLoadError, match=r"dglcleaner-noproto\[no-run\].*missing"):
        registry.load_plugin("defense", "no-run")


@pytest.mark.parametrize("api", [API_VERSION + 1, 0])
def test_api_version_mismatch_is_reported(site, api) -> None:
    a = _mod("api")
    site.add("dglcleaner-future", {"future-def": f"{a}:Plugin"},
             {a: _defense("future-def", api=api)})
    with pytest.raises(PluginLoadError) as exc:
        registry.load_plugin("defense", "future-def")
    msg = str(exc.value)
    assert f"targets plugin API version {api}" in msg
    assert f"provides version {API_VERSION}" in msg and "dglcleaner-future[future-def]" in msg
    out = _runner().invoke(main, ["list-plugins", "--check", "--json", "--kind", "defense"])
    rows = {r["name"]: r["status"] for r in json.loads(out.stdout)}
    assert "plugin API version" in rows["future-def"]


def test_entry_point_name_must_match_class_name(site) -> None:
    a = _mod("mismatch")
    site.add("dglcleaner-mismatch", {"ep-name": f"{a}:Plugin"}, {a: _defense("class-name")})
    with pytest.raises(PluginLoadError, match="differs from its entry-point name"):
        registry.load_plugin("defense", "ep-name")


def test_disable_plugins_hides_a_distribution(site, monkeypatch) -> None:
    a = _mod("hidden")
    site.add("dglcleaner-hidden", {"hidden-def": f"{a}:Plugin"}, {a: _defense("hidden-def")})
    assert "hidden-def" in {s.name for s in registry.discover("defense")}
    monkeypatch.setenv("DGLCLEANER_DISABLE_PLUGINS", "dglcleaner-hidden")
    assert "hidden-def" not in {s.name for s in registry.discover("defense")}


def test_details_of_a_third_party_plugin(site) -> None:
    a = _mod("details")
    site.add("dglcleaner-details", {"detail-def": f"{a}:Plugin"}, {a: _defense("detail-def")})
    out = _runner().invoke(main, ["list-plugins", "--details", "DETAIL-DEF", "--json"])
    assert out.exit_code == 0, out.output
    info = json.loads(out.stdout)
    assert info["distribution"] == "dglcleaner-details" and info["version"] == "0.3"
    assert info["threat_model"] == "post-training" and info["api_version"] == API_VERSION


# --- level 3: real installs of the fixture packages ------------------------------------------
def _pip_install(target: Path, project: Path) -> Optional[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "--disable-pip-version-check", "--target", str(target), str(project)],
        capture_output=True, text=True, timeout=300)
    return None if proc.returncode == 0 else proc.stderr[-2000:]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The example plugin and the broken fixture, pip-installed into one temporary folder."""
    target = tmp_path_factory.mktemp("site")
    for project in (ROOT / "examples" / "dglcleaner-example-defense",
                    ROOT / "tests" / "fixtures" / "dglcleaner-broken-plugin"):
        err = _pip_install(target, project)
        if err is not None:
            pytest.skip(f"pip cannot build {project.name} here: {err}")
    return target


def test_installed_packages_listed_runnable_and_broken_one_reported(installed, monkeypatch):
    monkeypatch.setattr(registry, "_CACHE", {})
    monkeypatch.syspath_prepend(str(installed))
    specs = {s.name: s for s in registry.discover("defense")}
    assert specs["fine-pruning"].dist == "dglcleaner-example-defense"
    assert specs["broken-defense"].dist == "dglcleaner-broken-plugin"
    out = _runner().invoke(main, ["list-plugins", "--check", "--json", "--kind", "defense"])
    assert out.exit_code == 0
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["fine-pruning"]["status"] == "ok"
    assert "not-installed-anywhere" in rows["broken-defense"]["status"]
    assert "dglcleaner-broken-plugin" in rows["broken-defense"]["status"]
    assert rows["finetune"]["status"] == "ok"
    out = _runner().invoke(main, ["defend", "--defense", "fine-pruning", "--defense-param",
                                  "epochs=1", "--epochs", "2", "--quiet", "--device", "cpu"])
    assert out.exit_code == 0, out.output
    assert "defense fine-pruning" in out.stdout and "backdoored" in out.stdout
    _one_line_error(_runner().invoke(main, ["defend", "--defense", "broken-defense",
                                            "--quiet"]), "dglcleaner-broken-plugin")
