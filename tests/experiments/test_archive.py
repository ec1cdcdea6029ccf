"""Run archives: export and import round-trip, merge rules, bad files refused."""
import gzip
import json

import pytest
from click.testing import CliRunner

from dglcleaner.cli.main import main
from dglcleaner.errors import DataError
from dglcleaner.experiments.archive import export_runs, import_runs, read_archive
from dglcleaner.experiments.store import Store

REC = {"clean": {"acc": 90.0}, "backdoored": {"acc": 88.0, "asr": 95.0},
       "defended": {"acc": 87.0, "asr": 5.0, "asr_all": float("nan")}}


def put(st, key, grid="g", status="ok", record=REC, **kw):
    st.put(key=key, grid=grid, seed=0, axes={"dataset": "d", "defense": "x", "seed": 0},
           config={"a": 1, "name": grid}, status=status, record=record,
           timings={"defense": 1.5}, versions={"torch": "t"}, git_commit="abc", device="cpu",
           **kw)


def metrics(db):
    with Store(db) as st:
        return sorted(st.conn.execute("SELECT key, name, value FROM metrics"))


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "a.sqlite"
    with Store(path) as st:
        put(st, "k1")
        put(st, "k2", grid="h", status="failed", error="boom", record={})
        put(st, "k3", grid="h")
    return path


@pytest.mark.parametrize("name", ["runs.jsonl", "runs.jsonl.gz"])
def test_round_trip_keeps_every_column(db, tmp_path, name):
    out = tmp_path / name
    assert export_runs(db, out) == 3
    copy = tmp_path / "b.sqlite"
    summary = import_runs([out], copy)
    assert (summary.added, summary.replaced, summary.kept) == (3, 0, 0)
    with Store(db) as a, Store(copy) as b:
        cols = "key, grid, seed, dataset, defense, axes, config, status, error, record, " \
               "timings, elapsed_s, versions, git_commit, device, host, attempts, finished_at"
        q = f"SELECT {cols} FROM runs ORDER BY rowid"
        assert a.conn.execute(q).fetchall() == b.conn.execute(q).fetchall()
        assert b.rows()[0].metric("defended.asr_all") is None   # NaN survives as missing
    assert metrics(copy) == metrics(db)
    # Deterministic: the same database gives the same bytes (no time stamp in the gzip header).
    again = tmp_path / ("again" + name)
    export_runs(copy, again)
    assert again.read_bytes() == out.read_bytes()


def test_export_one_grid_and_header(db, tmp_path):
    out = tmp_path / "h.jsonl"
    assert export_runs(db, out, ["h"]) == 2
    lines = out.read_text().splitlines()
    assert json.loads(lines[0]) == {"format": "dglcleaner-runs", "runs": 2, "schema": 1}
    assert [json.loads(ln)["key"] for ln in lines[1:]] == ["k2", "k3"]
    with pytest.raises(DataError, match="no runs of grid 'nope'"):
        export_runs(db, out, ["nope"])


def test_import_keeps_stored_ok_runs_and_replaces_failed_ones(db, tmp_path):
    other = tmp_path / "o.sqlite"
    with Store(other) as st:
        put(st, "k1", record={"defended": {"asr": 50.0}})    # conflicts with a stored ok run
        put(st, "k2", grid="h")                               # fixes a stored failure
        put(st, "k4")                                         # new
    arch = tmp_path / "o.jsonl"
    export_runs(other, arch)
    summary = import_runs([arch], db)
    assert (summary.added, summary.replaced, summary.kept) == (1, 1, 1)
    with Store(db) as st:
        rows = {r.key: r for r in st.rows()}
    assert rows["k1"].metric("defended.asr") == 5.0
    assert rows["k2"].status == "ok" and rows["k2"].error is None
    assert set(rows) == {"k1", "k2", "k3", "k4"}
    assert ("k1", "defended.asr", 50.0) not in metrics(db)
    # Importing again changes nothing.
    again = import_runs([arch], db)
    assert (again.added, again.replaced, again.kept) == (0, 0, 3)


def _write(path, lines):
    path.write_text("\n".join(json.dumps(x) if not isinstance(x, str) else x for x in lines))
    return path


HEAD = {"format": "dglcleaner-runs", "schema": 1}
GOOD = {"key": "k", "grid": "g", "seed": 0, "axes": {}, "config": {}, "status": "ok",
        "finished_at": "t"}


@pytest.mark.parametrize("lines, message", [
    ([], "empty file"),
    (["{not json"], r":1: not JSON"),
    ([{"format": "other"}], "not a run archive"),
    ([dict(HEAD, schema=9)], "archive schema 9"),
    ([dict(HEAD, runs=2), GOOD], "announces 2 runs but the file holds 1"),
    ([HEAD, dict(GOOD, seed="0")], r":2: field 'seed' must be an integer, not \"0\""),
    ([HEAD, dict(GOOD, status="done")], "status must be ok or failed"),
    ([HEAD, GOOD, {k: v for k, v in GOOD.items() if k != "key"}], r":3: field 'key'"),
    ([HEAD, dict(GOOD, record=[1])], "field 'record' must be a JSON object"),
])
def test_bad_archives_are_refused_and_change_nothing(db, tmp_path, lines, message):
    bad = _write(tmp_path / "bad.jsonl", lines)
    good = tmp_path / "good.jsonl"
    _write(good, [HEAD, dict(GOOD, key="new")])
    before = metrics(db)
    with pytest.raises(DataError, match=message):
        import_runs([good, bad], db)
    with Store(db) as st:
        assert "new" not in {r.key for r in st.rows()}
    assert metrics(db) == before


def test_gzip_is_recognised_by_content_and_corrupt_gzip_refused(tmp_path):
    path = tmp_path / "runs.data"
    path.write_bytes(gzip.compress((json.dumps(HEAD) + "\n" + json.dumps(GOOD)).encode()))
    assert [r["key"] for r in read_archive(path)] == ["k"]
    path.write_bytes(gzip.compress(b"x")[:8])
    with pytest.raises(DataError, match="not a readable run archive"):
        read_archive(path)


def test_cli_export_import_and_report(db, tmp_path):
    runner = CliRunner()
    out = tmp_path / "runs.jsonl.gz"
    res = runner.invoke(main, ["export", "--db", str(db), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "3 runs written" in res.output
    copy = tmp_path / "c.sqlite"
    res = runner.invoke(main, ["import", str(out), "--db", str(copy)])
    assert res.exit_code == 0, res.output
    assert "3 runs added, 0 failed runs replaced, 0 already stored and kept" in res.output
    res = runner.invoke(main, ["report", "--db", str(copy), "--grid", "g", "--format",
                               "markdown"])
    assert res.exit_code == 0 and "5.0" in res.output


def test_cli_bad_input_is_one_line(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["import", str(tmp_path / "missing.jsonl"),
                               "--db", str(tmp_path / "x.sqlite")])
    assert res.exit_code == 2
    assert res.output.strip().startswith("error:") and len(res.output.strip().splitlines()) == 1
    assert "does not exist" in res.output
    res = runner.invoke(main, ["export", "--db", str(tmp_path / "none.sqlite"),
                               "--out", str(tmp_path / "o.jsonl")])
    assert res.exit_code == 2 and "does not exist" in res.output


def test_report_and_plot_rows_read_archives(db, tmp_path, monkeypatch):
    from dglcleaner.cli.run_cmd import plot_rows
    from dglcleaner.experiments.archive import load_rows

    arch = tmp_path / "runs.jsonl.gz"
    export_runs(db, arch)
    runner = CliRunner()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)   # no default database here
    res = runner.invoke(main, ["report", "--runs", str(arch), "--grid", "g",
                               "--format", "markdown"])
    assert res.exit_code == 0, res.output
    assert "5.0" in res.output
    assert not (work / "results").exists()   # reading archives creates no database
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"format": "dglcleaner-runs", "schema": 1, "runs": 0}))
    res = runner.invoke(main, ["report", "--runs", str(empty)])
    assert res.exit_code == 0 and f"no runs stored in {empty}" in res.output
    empty = tmp_path / "empty.sqlite"
    Store(empty).close()
    assert len(plot_rows(str(empty), None, (str(arch),))) == 3
    assert len(load_rows(None, [arch])) == 3
    with pytest.raises(DataError, match="no runs to read"):
        load_rows(None, [])
