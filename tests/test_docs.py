"""The documentation: generated plugin pages and a strict mkdocs build."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_generated_pages_come_from_metadata_and_docstrings(tmp_path, load_script) -> None:
    load_script("docs/gen_plugin_pages.py").main(["--out", str(tmp_path)])
    page = (tmp_path / "sub-ba.md").read_text()
    assert page.startswith("# sub-ba\n")
    assert "| `density` | float | `0.8` | (0.0, 1.0] |" in page
    assert "**Paper:** Zhang, Jia, Wang, Gong" in page and "**Presets:** `official`" in page
    assert "- `generator` (str, default \"er\"): Trigger generator" in page  # numpydoc list
    assert "```python\n>>> from dglcleaner_plugins.attacks.sub_ba import SubBA" in page
    finetune = (tmp_path / "finetune.md").read_text()
    assert "**Threat model:** post-training" in finetune
    index = (tmp_path / "index.md").read_text()
    assert "[sub-ba](sub-ba.md)" in index and "[finetune](finetune.md)" in index
    assert "fine-pruning" not in index  # third-party plugins only with --all


def test_mkdocs_build_strict(tmp_path, load_script) -> None:
    pytest.importorskip("mkdocs")
    docs = tmp_path / "proj"
    shutil.copytree(ROOT / "docs", docs / "docs")
    shutil.copy(ROOT / "mkdocs.yml", docs / "mkdocs.yml")
    load_script("docs/gen_plugin_pages.py").main(["--out", str(docs / "docs" / "plugins")])
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=docs, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "plugins" / "sub-ba" / "index.html").exists()


def _documented_commands():
    """``dglcleaner <command> ...`` invocations in the README and docs/ (one per line or
    backtick span), as (file, command, options used)."""
    import re

    files = [ROOT / "README.md", ROOT / "benchmarks" / "README.md"]
    files += sorted((ROOT / "docs").glob("*.md"))
    found = []
    for path in files:
        for line in path.read_text().splitlines():
            for span in re.split(r"`", line):
                for m in re.finditer(r"(?<![\w/.-])dglcleaner ([a-z][a-z-]+)((?: +\S+)*)", span):
                    opts = re.findall(r"(?<!\S)(--[a-z][a-z-]*)", m.group(2))
                    found.append((path.name, m.group(1), opts))
    return found


def test_documented_cli_commands_use_real_options() -> None:
    """Every option shown with a ``dglcleaner`` command in the docs exists on that command
    (a doc once showed ``defend --param``, which is ``--defense-param``)."""
    from dglcleaner.cli.main import main

    found = _documented_commands()
    assert len(found) > 20
    bad = []
    for name, cmd, opts in found:
        command = main.commands.get(cmd)
        if command is None:
            continue  # prose such as "dglcleaner lets ..." is not a command
        valid = {o for p in command.params for o in getattr(p, "opts", [])} | {"--help"}
        bad += [f"{name}: dglcleaner {cmd} {o}" for o in opts if o not in valid]
    assert not bad, "\n".join(bad)
