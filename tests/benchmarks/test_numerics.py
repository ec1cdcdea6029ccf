"""benchmarks/numerics.py: the same defend twice gives identical summaries in each MKL mode."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "numerics.py"), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=600)


def test_repeats_are_identical_in_both_modes(tmp_path):
    out, js = tmp_path / "n.md", tmp_path / "n.json"
    proc = _run("--repeats", "2", "--out", str(out), "--json", str(js), "--",
                "--attack", "sub-ba", "--defense", "none", "--seeds", "1", "--epochs", "2")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(js.read_text())
    assert set(res["modes"]) == {"default", "compatible"}
    for mode in res["modes"].values():
        assert mode["repeats_identical"] is True  # one seed fixes everything on one machine
        assert mode["wall_s_mean"] > 0 and mode["defended_asr"] is not None
    assert res["machine"]["mkl_cbwr"] and res["machine"]["cpu"]
    page = out.read_text()
    assert "MKL_CBWR=COMPATIBLE" in page and "| MKL default |" in page


def test_bad_input_is_one_line():
    proc = _run("--repeats", "0")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    proc = _run("--repeats", "1", "--", "--attack", "no-such-attack")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "defend failed" in proc.stderr
