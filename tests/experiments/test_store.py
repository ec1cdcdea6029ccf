"""The results store: one row per key, atomic writes, decoded rows."""
import math
import sqlite3

import pytest

from dglcleaner.experiments.store import Store, flatten_metrics

REC = {"clean": {"acc": 90.0}, "backdoored": {"acc": 88.0, "asr": 95.0},
       "defended": {"acc": 87.0, "asr": 5.0, "asr_all": float("nan")}}


def put(st, key="k1", status="ok", **kw):
    st.put(key=key, grid="g", seed=0, axes={"dataset": "d", "defense": "x", "seed": 0},
           config={"a": 1}, status=status, record=kw.pop("record", REC), **kw)


def test_put_replace_no_duplicates(tmp_path):
    db = tmp_path / "r.sqlite"
    with Store(db) as st:
        put(st, status="failed", error="boom")
        put(st, status="ok")
        put(st, key="k2")
        assert st.count() == {"ok": 2}
        rows = st.rows()
        assert [r.key for r in rows] == ["k1", "k2"]
        assert rows[0].attempts == 2 and rows[0].error is None
        assert rows[0].metric("defended.asr") == 5.0
        assert rows[0].metric("defended.asr_all") is None   # NaN reads back as missing
        assert st.done_keys() == {"k1", "k2"}
        n = st.conn.execute("SELECT COUNT(*) FROM metrics WHERE key='k1'").fetchone()[0]
        assert n == len(flatten_metrics(REC))


def test_failed_rows_are_not_done_unless_asked(tmp_path):
    with Store(tmp_path / "r.sqlite") as st:
        put(st, status="failed", error="x")
        assert st.done_keys() == set()
        assert st.done_keys(include_failed=True) == {"k1"}


def test_write_is_atomic(tmp_path, monkeypatch):
    """An error in the middle of a row write leaves neither the row nor its metrics."""
    db = tmp_path / "r.sqlite"
    with Store(db) as st:
        put(st, key="good")

        class Boom(Exception):
            pass

        real = st.conn

        class Conn:
            def __getattr__(self, name):
                return getattr(real, name)

            def executemany(self, *a, **k):
                raise Boom()

        st.conn = Conn()
        with pytest.raises(Boom):
            put(st, key="bad")
        st.conn = real
    con = sqlite3.connect(db)
    assert [r[0] for r in con.execute("SELECT key FROM runs")] == ["good"]
    assert con.execute("SELECT COUNT(*) FROM metrics WHERE key='bad'").fetchone()[0] == 0


def test_bad_status_and_schema(tmp_path):
    db = tmp_path / "r.sqlite"
    with Store(db) as st:
        with pytest.raises(ValueError):
            put(st, status="running")
        st.conn.execute("UPDATE meta SET v='99' WHERE k='schema'")
    from dglcleaner.errors import DataError
    with pytest.raises(DataError, match="schema 99"):
        Store(db)


def test_flatten_skips_non_numbers():
    flat = flatten_metrics({"defended": {"acc": 1.0, "name": "x"}, "other": {"a": 1}})
    assert flat == {"defended.acc": 1.0}
    assert not any(math.isnan(v) for v in flatten_metrics(REC).values() if v == v)
