"""benchmarks/poisoned_fit.py runs end to end on the synthetic data (no files)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "poisoned_fit.py"), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def _output(*args: str) -> dict:
    proc = _run(*args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_prints_the_fit_of_the_poisoned_graphs():
    out = _output("--epochs", "3")
    assert out["poisoned"] > 0
    for key in ("poisoned_to_target_backdoored", "poisoned_to_target_clean",
                "train_acc_unpoisoned_backdoored"):
        assert 0.0 <= out[key] <= 100.0
    assert 0.0 <= out["eval_backdoored"]["asr"] <= 100.0 and out["machine"]["cores"]
    assert out["injection_ratio"] == 0.05


def test_injection_ratio_is_passed_on():
    assert _output("--epochs", "1", "--injection-ratio", "0.2")["injection_ratio"] == 0.2


def test_bad_injection_ratio_is_one_line():
    proc = _run("--injection-ratio", "1.5")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "injection ratio" in proc.stderr


def test_bad_attack_name_is_one_line():
    proc = _run("--attack", "no-such-attack")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "no-such-attack" in proc.stderr
