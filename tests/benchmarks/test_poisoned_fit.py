"""benchmarks/poisoned_fit.py runs end to end on the synthetic data (no files)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_prints_the_fit_of_the_poisoned_graphs():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "poisoned_fit.py"),
                           "--epochs", "3"], check=True, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["poisoned"] > 0
    for key in ("poisoned_to_target_backdoored", "poisoned_to_target_clean",
                "train_acc_unpoisoned_backdoored"):
        assert 0.0 <= out[key] <= 100.0
    assert 0.0 <= out["eval_backdoored"]["asr"] <= 100.0 and out["machine"]["cores"]
    assert out["injection_ratio"] == 0.05


def test_injection_ratio_is_passed_on():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "poisoned_fit.py"),
                           "--epochs", "1", "--injection-ratio", "0.2"], check=True, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["injection_ratio"] == 0.2


def test_bad_injection_ratio_is_one_line():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "poisoned_fit.py"),
                           "--injection-ratio", "1.5"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "injection ratio" in proc.stderr


def test_bad_attack_name_is_one_line():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "poisoned_fit.py"),
                           "--attack", "no-such-attack"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "no-such-attack" in proc.stderr
