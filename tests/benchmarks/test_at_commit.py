"""benchmarks/at_commit.sh: an older commit's code, run in this environment."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "at_commit.sh"

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout"
)


def _run(tmp_path, *args):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    # the console script of this interpreter's environment, as a user's shell would find it
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          env=env, cwd=ROOT)


def test_a_name_that_is_no_commit_is_one_line_and_exit_2(tmp_path):
    out = _run(tmp_path, "no-such-commit", "--version")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"at_commit: 'no-such-commit' is not a commit of {ROOT}"]


def test_a_commit_runs_from_its_own_worktree(tmp_path):
    sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.strip()
    base = tmp_path / f"dglcleaner-at-{sha[:12]}"
    try:
        out = _run(tmp_path, "HEAD", "--version")
        assert out.returncode == 0, out.stderr
        assert "dglcleaner, version" in out.stdout
        assert (base / "tree" / "setup.cfg").is_file()
        assert (base / "path" / "dglcleaner_plugins").resolve() == (base / "tree" / "plugins")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base / "tree")],
                       cwd=ROOT, capture_output=True)
