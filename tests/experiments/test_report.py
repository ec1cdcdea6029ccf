"""Reports: mean ± std over seeds, paper numbers, failed runs, three formats."""
import csv
import io

import pytest

from dglcleaner.errors import UserError
from dglcleaner.experiments.report import build_table, paper_lookup, render
from dglcleaner.experiments.store import RunRow


def row(seed, defense, asr, acc, status="ok", attack="Sub-BA", error=None):
    rec = {"defended": {"asr": asr, "acc": acc}, "backdoored": {"asr": 90.0, "acc": 95.0}}
    return RunRow(key=f"{attack}{defense}{seed}", grid="t", seed=seed,
                  axes={"dataset": "AIDS", "model": "gin", "attack": attack, "defense": defense,
                        "seed": seed},
                  config={}, status=status, error=error, record=rec if status == "ok" else {},
                  timings={}, elapsed_s=1.0, versions={"torch": "x"}, git_commit="abc",
                  device="cpu", attempts=1, finished_at="now")


ROWS = [row(0, "Before", 90.0, 96.0), row(1, "Before", 100.0, 98.0),
        row(0, "GCleaner", 4.0, 95.0), row(1, "GCleaner", 0, 0, status="failed",
                                            error="RuntimeError: boom (during defense)")]
PAPER = {"source": "Table 3", "values": [
    {"dataset": "AIDS", "attack": "sub-ba", "defense": "Before", "asr": 95.84, "acc": 97.14},
    {"dataset": "AIDS", "attack": "Sub-BA", "defense": "GCleaner", "asr": 6.64, "acc": 95.37}]}


def test_mean_std_paper_and_failures_columns_layout():
    t = build_table(ROWS, {"rows": ["dataset", "attack"], "columns": "defense"}, PAPER, "T3")
    assert t.header == ["dataset", "attack", "Before", "Before (paper)", "GCleaner",
                        "GCleaner (paper)", "runs"]
    assert t.body == [["AIDS", "Sub-BA", "95.00 ± 5.00 / 97.00 ± 1.00", "95.84 / 97.14",
                       "4.00 ± 0.00 / 95.00 ± 0.00", "6.64 / 95.37", "3 ok, 1 failed"]]
    assert t.failures and "boom" in t.failures[0][1]
    assert any("Table 3" in n for n in t.notes)


def test_flat_layout_and_formats():
    t = build_table(ROWS, {"metrics": ["asr", "backdoored.acc"]}, PAPER, "flat")
    assert t.header[:3] == ["dataset", "attack", "defense"]
    assert "backdoored ACC" in t.header and "paper ASR" in t.header
    md = render(t, "markdown")
    assert md.startswith("### flat") and "| AIDS | Sub-BA | Before |" in md
    assert "Failed runs (1)" in md and "boom" in md
    recs = list(csv.DictReader(io.StringIO(render(t, "csv"))))
    before = next(r for r in recs if r["defense"] == "Before")
    assert float(before["defended.asr_mean"]) == 95.0
    assert float(before["paper_defended.asr"]) == 95.84
    gc = next(r for r in recs if r["defense"] == "GCleaner")
    assert gc["runs_failed"] == "1"
    text = render(t, "rich")
    assert "95.00 ± 5.00" in text and "failed" in text


def test_paper_lookup_matching():
    assert paper_lookup(PAPER, {"dataset": "aids", "attack": "SUB-BA", "defense": "Before"},
                        "defended.asr") == 95.84
    assert paper_lookup(PAPER, {"dataset": "AIDS", "attack": "GTA", "defense": "Before"},
                        "defended.asr") is None


def test_bad_layout():
    with pytest.raises(UserError, match="not an axis"):
        build_table(ROWS, {"rows": ["colour"]})
    with pytest.raises(UserError, match="report group"):
        build_table(ROWS, {"group": "nope"})
    with pytest.raises(UserError, match="format"):
        render(build_table(ROWS), "html")
