"""Kill a grid (SIGKILL) in a forked child mid-run, resume in-process: nothing lost or
duplicated. (The CLI version with a fresh interpreter is tests/experiments/test_resume.py.)"""
import multiprocessing as mp
import os
import signal
import sqlite3
import sys
import time

import pytest

from dglcleaner.experiments.config import load_grid
from dglcleaner.experiments.grid import run_grid
from dglcleaner.experiments.store import Store

from .conftest import tiny_doc


def _child(doc, db):
    run_grid(load_grid(doc=doc), db, device="cpu")


@pytest.mark.skipif(sys.platform != "linux", reason="uses fork")
def test_sigkill_in_forked_child_then_resume(tmp_path, plugin_path):
    doc = tiny_doc(defenses=[{"name": "none", "label": "Before"},
                             {"name": "sleep-test", "params": {"seconds": 3.0}},
                             {"name": "finetune", "params": {"epochs": 1}}])
    grid = load_grid(doc=doc)  # imports the plugins before forking
    db = str(tmp_path / "r.sqlite")
    proc = mp.get_context("fork").Process(target=_child, args=(doc, db))
    proc.start()
    deadline = time.time() + 60
    n = 0
    while time.time() < deadline and proc.is_alive():
        if os.path.exists(db):
            try:
                n = sqlite3.connect(db).execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            except sqlite3.OperationalError:
                n = 0
            if n:
                break
        time.sleep(0.05)
    assert proc.is_alive() and n == 1
    time.sleep(0.3)  # inside the 3 s sleeping defense
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    with Store(db) as st:
        first = {r.key: r for r in st.rows()}
    assert len(first) == 1

    s = run_grid(grid, db, device="cpu")
    assert (s.skipped, s.ok, s.failed) == (1, 2, 0)
    con = sqlite3.connect(db)
    keys = [r[0] for r in con.execute("SELECT key FROM runs")]
    assert sorted(keys) == sorted(r.key for r in grid.runs)
    with Store(db) as st:
        rows = {r.key: r for r in st.rows()}
    (k,) = first
    assert rows[k].finished_at == first[k].finished_at and rows[k].attempts == 1
