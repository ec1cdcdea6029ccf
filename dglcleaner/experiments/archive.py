"""Run archives: a results store's rows as JSON Lines, to commit, share and merge.

A results database is a local file; an archive is its portable form. ``export_runs`` writes
every stored run (or those of some grids) with all its columns: key, grid, seed, axes, config,
status and error, record, timings, versions, git commit, device, host, attempts and finish time.
``import_runs`` puts an archive's runs into a database, so ``dglcleaner report``, ``plot`` and
``benchmarks/results_pages.py`` work on them as on runs made there, and a grid started on that
database skips them.

Format: UTF-8 JSON Lines, gzip-compressed when the file name ends in ``.gz``. The first line is
the header ``{"format": "dglcleaner-runs", "schema": 1, "runs": N}``; each further line is one
run, in the database's insertion order. Export is deterministic (sorted keys, gzip time stamp
0): the same database gives the same bytes, so a committed archive only changes where runs do.

An archive is data only: reading one parses JSON and never unpickles or imports anything.
"""
from __future__ import annotations

import gzip
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

from ..errors import DataError
from .store import SCHEMA_VERSION, Store, write_row

FORMAT = "dglcleaner-runs"

#: Columns of the ``runs`` table that hold JSON (decoded in the archive, so it reads as JSON).
_JSON_COLUMNS = ("axes", "config", "record", "timings", "versions")
_REQUIRED = {"key": str, "grid": str, "seed": int, "axes": dict, "config": dict,
             "status": str, "finished_at": str}
_KIND = {str: "a string", int: "an integer", dict: "a JSON object"}


@dataclass
class ImportSummary:
    """What :func:`import_runs` did: rows added, failed rows replaced by ok ones, rows kept."""

    added: int = 0
    replaced: int = 0
    kept: int = 0

    def __str__(self) -> str:
        return (f"{self.added} runs added, {self.replaced} failed runs replaced, "
                f"{self.kept} already stored and kept")


def _encode(obj: Any) -> str:
    # allow_nan: a metric can be NaN (e.g. ASR with no eligible graph); json reads it back.
    return json.dumps(obj, sort_keys=True, default=str, allow_nan=True, ensure_ascii=False)


def _raw_rows(store: Store, grids: Optional[Sequence[str]]) -> List[Dict[str, Any]]:
    cur = store.conn.execute("SELECT * FROM runs ORDER BY rowid")
    cols = [d[0] for d in cur.description]
    out = []
    for raw in cur:
        row = dict(zip(cols, raw))
        if grids and row["grid"] not in grids:
            continue
        for col in _JSON_COLUMNS:
            row[col] = json.loads(row[col]) if row[col] else {}
        out.append(row)
    return out


def export_runs(db: str | os.PathLike, out: str | os.PathLike,
                grids: Optional[Sequence[str]] = None) -> int:
    """Write the runs of ``db`` (all, or those of ``grids``) to the archive ``out``.

    The file is replaced atomically. Returns the number of runs written.
    """
    from ..io_utils import atomic_write_bytes

    if not Path(db).is_file():
        raise DataError(f"results database {str(db)!r} does not exist")
    with Store(db) as store:
        if grids:
            unknown = sorted(set(grids) - set(store.grids()))
            if unknown:
                raise DataError(f"no runs of grid {unknown[0]!r} in {db}; stored grids: "
                                f"{', '.join(store.grids()) or 'none'}")
        rows = _raw_rows(store, grids)
    lines = [_encode({"format": FORMAT, "schema": SCHEMA_VERSION, "runs": len(rows)})]
    lines += [_encode(r) for r in rows]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if str(out).endswith(".gz"):
        buf = io.BytesIO()
        # mtime=0 and no file name in the header: identical runs give identical bytes.
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
            gz.write(data)
        data = buf.getvalue()
    atomic_write_bytes(out, data)
    return len(rows)


def _read_lines(path: Path) -> List[str]:
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
            raw = gzip.decompress(raw)
        return raw.decode("utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"run archive {str(path)!r} does not exist") from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable run archive ({exc}); expected JSON Lines "
                        f"written by `dglcleaner export`") from None


def _check_row(row: Any, where: str) -> Dict[str, Any]:
    if not isinstance(row, dict):
        raise DataError(f"{where}: a run must be a JSON object")
    for name, typ in _REQUIRED.items():
        val = row.get(name)
        if not isinstance(val, typ) or isinstance(val, bool):
            raise DataError(f"{where}: field {name!r} must be {_KIND[typ]}, not "
                            f"{json.dumps(val)[:40]}")
    if row["status"] not in ("ok", "failed"):
        raise DataError(f"{where}: status must be ok or failed, not {row['status']!r}")
    for name in ("record", "timings", "versions"):
        if not isinstance(row.get(name) or {}, dict):
            raise DataError(f"{where}: field {name!r} must be a JSON object")
    return row


def read_archive(path: str | os.PathLike) -> List[Dict[str, Any]]:
    """The runs of an archive, checked (header, required fields); raises :class:`DataError`."""
    path = Path(path)
    lines = [ln for ln in _read_lines(path) if ln.strip()]
    if not lines:
        raise DataError(f"{path}: empty file; expected a run archive from `dglcleaner export`")
    rows: List[Any] = []
    for i, line in enumerate(lines, 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{i}: not JSON ({exc.msg})") from None
    head = rows.pop(0)
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise DataError(f"{path}:1: not a run archive (its first line must be the header "
                        f'{{"format": "{FORMAT}", ...}} written by `dglcleaner export`)')
    if head.get("schema") != SCHEMA_VERSION:
        raise DataError(f"{path}: archive schema {head.get('schema')!r}; this dglcleaner "
                        f"reads schema {SCHEMA_VERSION}")
    if head.get("runs") not in (None, len(rows)):
        raise DataError(f"{path}: the header announces {head['runs']} runs but the file holds "
                        f"{len(rows)} (truncated?)")
    return [_check_row(r, f"{path}:{i}") for i, r in enumerate(rows, 2)]


def import_runs(paths: Iterable[str | os.PathLike], db: str | os.PathLike) -> ImportSummary:
    """Put the runs of the archives ``paths`` into the database ``db`` (created if missing).

    A run whose key is not stored is added as it was (its attempts, host and finish time too).
    A stored run is kept, except that a stored failure gives way to an imported ``ok`` run: the
    same rule as a grid that retries failed runs. All archives are read and checked first and
    written in one transaction, so a bad file changes nothing.
    """
    incoming: List[Dict[str, Any]] = []
    for p in paths:
        incoming.extend(read_archive(p))
    summary = ImportSummary()
    with Store(db) as store, store.transaction() as c:
        for row in incoming:
            prev = c.execute("SELECT status FROM runs WHERE key=?", (row["key"],)).fetchone()
            if prev is not None and not (prev[0] == "failed" and row["status"] == "ok"):
                summary.kept += 1
                continue
            write_row(c, row)
            if prev is None:
                summary.added += 1
            else:
                summary.replaced += 1
    return summary


def load_rows(db: Optional[str | os.PathLike], archives: Sequence[str | os.PathLike] = ()
              ) -> List[Any]:
    """Decoded runs (:class:`~.store.RunRow`) of the database ``db`` and of ``archives``, read
    through a scratch database; a key in both is taken from ``db``. ``db`` may be ``None``
    when archives are given."""
    import tempfile

    from .store import iter_rows

    if db is None and not archives:
        raise DataError("no runs to read: give a results database or run archives")
    rows = list(iter_rows(db)) if db is not None else []
    if archives:
        with tempfile.TemporaryDirectory() as tmp:
            merged = Path(tmp) / "runs.sqlite"
            import_runs(archives, merged)
            have = {r.key for r in rows}
            rows += [r for r in iter_rows(merged) if r.key not in have]
    return rows
