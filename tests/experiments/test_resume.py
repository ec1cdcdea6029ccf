"""A grid killed with SIGKILL mid-run and started again: nothing lost, nothing duplicated."""
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml

from dglcleaner.experiments.config import load_grid
from dglcleaner.experiments.store import Store

from .conftest import tiny_doc


@pytest.mark.slow
def test_kill_and_resume(tmp_path, plugin_path):
    doc = tiny_doc(defenses=[{"name": "none", "label": "Before"},
                             {"name": "sleep-test", "params": {"seconds": 2.0}},
                             {"name": "sleep-test", "label": "sleep2", "params": {"seconds": 1.5}}])
    cfg = tmp_path / "g.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    db = tmp_path / "r.sqlite"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(plugin_path)] + sys.path),
               OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "dglcleaner.cli.main", "run", str(cfg), "--db", str(db),
           "--device", "cpu", "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    n = 0
    try:
        while time.time() < deadline and proc.poll() is None:
            if db.exists():
                try:
                    n = sqlite3.connect(db).execute("SELECT COUNT(*) FROM runs").fetchone()[0]
                except sqlite3.OperationalError:
                    n = 0
                if n >= 1:
                    break
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        time.sleep(0.5)  # most likely inside a sleeping defense now
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    with Store(db) as st:
        first = {r.key: r for r in st.rows()}
    grid = load_grid(cfg)
    assert 1 <= len(first) < len(grid.runs)
    assert all(r.status == "ok" for r in first.values())

    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{len(first)} already stored" in out.stderr
    con = sqlite3.connect(db)
    keys = [r[0] for r in con.execute("SELECT key FROM runs")]
    assert len(keys) == len(set(keys)) == len(grid.runs)
    assert set(keys) == {r.key for r in grid.runs}
    with Store(db) as st:
        rows = {r.key: r for r in st.rows()}
    assert all(r.status == "ok" and r.attempts == 1 for r in rows.values())
    for k, r in first.items():  # finished rows were kept as they were, not redone
        assert rows[k].finished_at == r.finished_at and rows[k].record == r.record
    n_metrics = con.execute("SELECT COUNT(DISTINCT key) FROM metrics").fetchone()[0]
    assert n_metrics == len(grid.runs)
