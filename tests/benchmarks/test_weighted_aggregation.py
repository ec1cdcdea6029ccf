"""benchmarks/weighted_aggregation.py runs end to end on the synthetic data (no files)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_writes_a_table_with_every_timing(tmp_path):
    out = tmp_path / "wa.md"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "weighted_aggregation.py"),
                    "--dataset", "synthetic", "--graphs", "20", "--min-nodes", "1",
                    "--repeats", "1", "--out", str(out)], check=True, cwd=ROOT,
                   capture_output=True, timeout=300)
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| operation | DGL ms")
    assert len(rows) == 1 + 6
    for row in rows[1:]:
        dgl_ms, ours_ms = (float(c) for c in row.strip("|").split("|")[1:3])
        assert dgl_ms > 0 and ours_ms > 0
