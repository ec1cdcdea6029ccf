"""Stopping a parallel grid: SIGTERM to ``dglcleaner run --jobs 2`` ends it like Ctrl-C (one
line, exit 130) and takes its workers with it, so none goes on writing rows that race a
resumed run; a worker whose parent dies without cleanup (SIGKILL) leaves by itself."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

GRID = """name: interrupt
datasets: [synthetic]
attacks: [{name: sub-ba, label: Sub-BA}]
defenses: [{name: none, label: Before}]
seeds: 4
settings:
  train:
    epochs: 100000
"""


def _children(pid: int) -> list:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # the field after the ")" that closes the command name: state, then the parent pid
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID)
    proc = subprocess.Popen([sys.executable, "-m", "dglcleaner", "run", str(grid), "--jobs", "2",
                             "--db", str(tmp_path / "r.sqlite"), "--quiet", "--device", "cpu"],
                            # files, not pipes: a leftover child holding a pipe would hang the test
                            stdout=(tmp_path / "out").open("w"), stderr=(tmp_path / "err").open("w"),
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    # the queue manager, the resource tracker and two workers
    deadline = time.time() + 120
    while len(_children(proc.pid)) < 4 and time.time() < deadline:
        time.sleep(0.2)
    kids = _children(proc.pid)
    assert len(kids) >= 4, "the grid's workers did not start"
    time.sleep(1.0)  # let the workers reach their units
    return proc, kids


def _gone(pids, timeout: float = 20.0) -> list:
    deadline = time.time() + timeout
    while any(_alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.2)
    return [p for p in pids if _alive(p)]


def test_sigterm_stops_the_run_and_its_workers(tmp_path):
    proc, kids = _start(tmp_path)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    err = (tmp_path / "err").read_text()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "error: interrupted; finished results were kept"
    assert "Traceback" not in err
    assert _gone(kids) == []


def test_workers_leave_when_the_parent_is_killed(tmp_path):
    proc, kids = _start(tmp_path)
    proc.kill()
    proc.wait(timeout=60)
    assert _gone(kids) == [], "the grid's children outlived a SIGKILLed parent"
