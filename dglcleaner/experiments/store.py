"""The results store: one SQLite file, one row per run.

Each run row holds the full config (JSON), the seed, the axes, every metric (also flattened
into the ``metrics`` table for SQL), the stage timings, the versions of dglcleaner/torch/DGL,
the git commit, the device and the status (``ok`` or ``failed`` with its error).

A row is written in one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``) with SQLite's WAL
journal and ``synchronous=FULL``: a process killed at any moment leaves either the whole row or
nothing, so a restarted grid skips finished runs and never duplicates one (the run key is the
primary key). Several worker processes may write to the same file (``busy_timeout``).
"""
from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence

SCHEMA_VERSION = 1
DEFAULT_DB = "results/dglcleaner.sqlite"

_DDL = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    key         TEXT PRIMARY KEY,
    grid        TEXT NOT NULL,
    seed        INTEGER NOT NULL,
    dataset     TEXT, model TEXT, attack TEXT, defense TEXT,
    axes        TEXT NOT NULL,
    config      TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    error       TEXT,
    record      TEXT,
    timings     TEXT,
    elapsed_s   REAL,
    versions    TEXT,
    git_commit  TEXT,
    device      TEXT,
    host        TEXT,
    attempts    INTEGER NOT NULL DEFAULT 1,
    finished_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_grid ON runs (grid, status);
CREATE TABLE IF NOT EXISTS metrics (
    key   TEXT NOT NULL REFERENCES runs (key) ON DELETE CASCADE,
    name  TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (key, name)
);
"""


@dataclass
class RunRow:
    """A stored run, decoded."""

    key: str
    grid: str
    seed: int
    axes: Dict[str, Any]
    config: Dict[str, Any]
    status: str
    error: Optional[str]
    record: Dict[str, Any]
    timings: Dict[str, float]
    elapsed_s: Optional[float]
    versions: Dict[str, str]
    git_commit: Optional[str]
    device: Optional[str]
    attempts: int
    finished_at: str

    def metric(self, name: str) -> Optional[float]:
        """``group.metric`` (e.g. ``defended.asr``) from the record, or ``None``."""
        group, _, metric = name.partition(".")
        val = (self.record.get(group) or {}).get(metric)
        if val is None:
            return None
        val = float(val)
        return None if math.isnan(val) else val


#: Record groups whose numbers go into the ``metrics`` table (``recovery``: the evaluator's
#: numbers on a defense's recovered trigger, see :func:`.grid.recovery_metrics`; ``poisoned``:
#: a label-poisoning cell, see :mod:`.node_grid`).
METRIC_GROUPS = ("clean", "backdoored", "defended", "detection", "recovery", "poisoned")


def flatten_metrics(record: Dict[str, Any]) -> Dict[str, float]:
    """``{"clean.acc": ..., "defended.asr": ..., "detection.f1": ...}`` from a run record."""
    out: Dict[str, float] = {}
    for group in METRIC_GROUPS:
        for k, v in (record.get(group) or {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[f"{group}.{k}"] = float(v)
    return out


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str, allow_nan=True)


def write_row(c: sqlite3.Connection, row: Dict[str, Any]) -> None:
    """Insert or replace one run (``runs`` columns, JSON ones decoded) and its metrics.

    Call inside a transaction; :meth:`Store.put` and :func:`.archive.import_runs` both do.
    """
    axes, record = row["axes"], row.get("record") or {}
    c.execute("DELETE FROM metrics WHERE key=?", (row["key"],))
    c.execute(
        "INSERT OR REPLACE INTO runs (key, grid, seed, dataset, model, attack, defense, "
        "axes, config, status, error, record, timings, elapsed_s, versions, git_commit, "
        "device, host, attempts, finished_at) VALUES "
        "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (row["key"], row["grid"], int(row["seed"]), str(axes.get("dataset")),
         str(axes.get("model")), str(axes.get("attack")), str(axes.get("defense")),
         json.dumps(axes, default=str), _json(row["config"]), row["status"], row.get("error"),
         _json(record), _json(row.get("timings") or {}), row.get("elapsed_s"),
         _json(row.get("versions") or {}), row.get("git_commit"), row.get("device"),
         row.get("host"), int(row.get("attempts") or 1), row["finished_at"]))
    c.executemany("INSERT INTO metrics (key, name, value) VALUES (?,?,?)",
                  [(row["key"], n, None if math.isnan(v) else v)
                   for n, v in flatten_metrics(record).items()])


class Store:
    """A results database (created on first use)."""

    def __init__(self, path: str | os.PathLike = DEFAULT_DB) -> None:
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (explicit transactions).
        self.conn = sqlite3.connect(str(self.path), timeout=60.0, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.execute("PRAGMA busy_timeout=60000")
        with self.transaction():
            for stmt in _DDL.split(";"):
                if stmt.strip():
                    self.conn.execute(stmt)
            row = self.conn.execute("SELECT v FROM meta WHERE k='schema'").fetchone()
            if row is None:
                self.conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                from ..errors import DataError

                raise DataError(f"results database {self.path} has schema {row[0]}; this "
                                f"dglcleaner reads schema {SCHEMA_VERSION}; use another --db")

    # --- transactions ---------------------------------------------------------------------
    class _Tx:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def __enter__(self) -> sqlite3.Connection:
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn

        def __exit__(self, exc_type, exc, tb) -> None:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")

    def transaction(self) -> "Store._Tx":
        return Store._Tx(self.conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- writing --------------------------------------------------------------------------
    def put(self, *, key: str, grid: str, seed: int, axes: Dict[str, Any],
            config: Dict[str, Any], status: str, error: Optional[str] = None,
            record: Optional[Dict[str, Any]] = None, timings: Optional[Dict[str, float]] = None,
            elapsed_s: Optional[float] = None, versions: Optional[Dict[str, str]] = None,
            git_commit: Optional[str] = None, device: Optional[str] = None) -> None:
        """Insert or replace one run row and its metrics, atomically."""
        if status not in ("ok", "failed"):
            raise ValueError(f"status must be ok or failed, not {status!r}")
        record = record or {}
        with self.transaction() as c:
            prev = c.execute("SELECT attempts FROM runs WHERE key=?", (key,)).fetchone()
            write_row(c, dict(
                key=key, grid=grid, seed=seed, axes=axes, config=config, status=status,
                error=error, record=record, timings=timings, elapsed_s=elapsed_s,
                versions=versions, git_commit=git_commit, device=device,
                host=socket.gethostname(), attempts=(prev[0] + 1) if prev else 1,
                finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z")))

    # --- reading --------------------------------------------------------------------------
    def done_keys(self, keys: Optional[Iterable[str]] = None, include_failed: bool = False
                  ) -> set:
        """Keys stored with status ``ok`` (and ``failed`` too if asked)."""
        statuses = ("ok", "failed") if include_failed else ("ok",)
        q = f"SELECT key FROM runs WHERE status IN ({','.join('?' * len(statuses))})"
        found = {r[0] for r in self.conn.execute(q, statuses)}
        return found if keys is None else found & set(keys)

    def rows(self, keys: Optional[Sequence[str]] = None, grid: Optional[str] = None
             ) -> List[RunRow]:
        """Decoded rows (all, or those with the given keys / grid), in insertion order."""
        q, args = "SELECT * FROM runs", []
        if grid is not None:
            q, args = q + " WHERE grid=?", [grid]
        q += " ORDER BY rowid"
        cur = self.conn.execute(q, args)
        cols = [d[0] for d in cur.description]
        wanted = set(keys) if keys is not None else None
        out = []
        for raw in cur:
            r = dict(zip(cols, raw))
            if wanted is not None and r["key"] not in wanted:
                continue
            out.append(RunRow(
                key=r["key"], grid=r["grid"], seed=r["seed"], axes=json.loads(r["axes"]),
                config=json.loads(r["config"]), status=r["status"], error=r["error"],
                record=json.loads(r["record"] or "{}"), timings=json.loads(r["timings"] or "{}"),
                elapsed_s=r["elapsed_s"], versions=json.loads(r["versions"] or "{}"),
                git_commit=r["git_commit"], device=r["device"], attempts=r["attempts"],
                finished_at=r["finished_at"]))
        return out

    def count(self) -> Dict[str, int]:
        return {s: n for s, n in self.conn.execute(
            "SELECT status, COUNT(*) FROM runs GROUP BY status")}

    def grids(self) -> List[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT grid FROM runs ORDER BY grid")]


def iter_rows(path: str | os.PathLike, **kwargs: Any) -> Iterator[RunRow]:
    """Convenience: rows of a database file that must already exist."""
    if not Path(path).is_file():
        from ..errors import DataError

        raise DataError(f"results database {str(path)!r} does not exist; run `dglcleaner run "
                        f"CONFIG --db {path}` first")
    with Store(path) as st:
        yield from st.rows(**kwargs)
