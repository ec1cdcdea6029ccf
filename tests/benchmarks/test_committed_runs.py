"""The committed run archives (benchmarks/runs/<name>.jsonl.gz) are readable, and the results
pages made from each (docs/results/<name>/) are exactly what results_pages.py writes from it
today: a page cannot drift from the runs it reports, nor the runs from the grid files."""
from pathlib import Path

import pytest

from dglcleaner.experiments.archive import read_archive

ROOT = Path(__file__).resolve().parents[2]
ARCHIVES = sorted((ROOT / "benchmarks" / "runs").glob("*.jsonl.gz"))


def _name(archive: Path) -> str:
    return archive.name[: -len(".jsonl.gz")]


@pytest.mark.parametrize("archive", ARCHIVES, ids=_name)
def test_archive_is_readable_and_its_pages_are_current(archive, tmp_path, load_script):
    rows = read_archive(archive)
    assert rows and len({r["key"] for r in rows}) == len(rows)
    pages = ROOT / "docs" / "results" / _name(archive)
    assert pages.is_dir(), f"no pages for {archive.name}: run results_pages.py --runs on it"
    out = tmp_path / "docs" / "results" / _name(archive)
    rel = archive.relative_to(ROOT)
    # Figures go to a scratch folder at the same relative place, so the pages' links match;
    # the PNG bytes depend on matplotlib's version and are not compared.
    pages_script = load_script("benchmarks/results_pages.py")
    rc = pages_script.main(["--runs", str(archive), "--out", str(out), "--db-label", str(rel),
                            "--figures", str(tmp_path / "docs" / "figures" / _name(archive))])
    assert rc == 0
    made = {p.name: p.read_text() for p in out.glob("*.md")}
    committed = {p.name: p.read_text() for p in pages.glob("*.md")}
    assert sorted(made) == sorted(committed)
    for name, text in made.items():
        assert committed[name] == text, f"docs/results/{_name(archive)}/{name} is stale"
    figures = {p.name for p in (tmp_path / "docs" / "figures" / _name(archive)).glob("*.png")}
    assert figures <= {p.name for p in (ROOT / "docs" / "figures" / _name(archive)).glob("*")}
