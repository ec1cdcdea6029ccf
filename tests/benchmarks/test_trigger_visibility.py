"""benchmarks/trigger_visibility.py: the trigger it measures is the run's, and its measures
can tell a visible trigger from an invisible one."""
import json
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "trigger_visibility.py"


def test_plants_the_trigger_a_defend_run_plants(load_script):
    from dglcleaner.experiments.config import build_defend_config
    from dglcleaner.runner import SeedRun

    cfg = build_defend_config({"dataset": "synthetic", "attack": "sub-ba",
                               "train": {"epochs": 1}})
    mine = load_script("benchmarks/trigger_visibility.py").plant(SeedRun(cfg, 3))
    theirs = SeedRun(cfg, 3).attack_result  # trains the clean model first
    assert mine.poisoned_idx.tolist() == theirs.poisoned_idx.tolist()
    for i in mine.poisoned_idx.tolist():
        a, b = mine.train_graphs[i], theirs.train_graphs[i]
        assert [t.tolist() for t in a.edges()] == [t.tolist() for t in b.edges()]
        assert torch.equal(a.ndata["feat"], b.ndata["feat"])


def test_separability_is_chance_on_identical_rows_and_high_on_shifted_ones(load_script):
    sep = load_script("benchmarks/trigger_visibility.py").separability
    x = torch.randn(60, 8, generator=torch.Generator().manual_seed(0))
    assert sep(x, x.clone()) <= 60.0
    shifted = x.clone()
    shifted[:, 2] += 6.0  # Bayes accuracy Phi(3) = 99.9 %
    assert sep(x, shifted) >= 95.0


def test_runs_end_to_end_on_the_synthetic_data():
    proc = subprocess.run([sys.executable, str(SCRIPT)], check=True, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    rec = json.loads(proc.stdout.splitlines()[0])
    assert rec["poisoned"] > 0 and rec["edges_changed"] > 0
    assert 50.0 <= rec["histogram_separability"] <= 100.0
    assert "| synthetic |" in proc.stdout


def test_unknown_dataset_is_one_line():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--datasets", "no-such-set"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1


def test_asr_comes_from_the_stored_run_with_the_same_settings(tmp_path, load_script):
    from dglcleaner.experiments.config import build_defend_config, load_grid
    from dglcleaner.experiments.grid import run_grid
    from dglcleaner.experiments.store import Store
    from dglcleaner.runner import SeedRun

    db = str(tmp_path / "r.sqlite")
    doc = {"name": "tiny", "datasets": ["synthetic"], "attacks": ["sub-ba"],
           "defenses": [{"name": "none", "label": "Before"}], "seeds": [0, 1],
           "settings": {"train": {"epochs": 2}}}
    run_grid(load_grid(doc=doc), db, device="cpu")
    with Store(db) as st:
        stored = {r.seed: r.record["backdoored"]["asr"] for r in st.rows()}
    mod = load_script("benchmarks/trigger_visibility.py")
    settings = {"dataset": "synthetic", "attack": "sub-ba", "train": {"epochs": 2}}
    for seed in (0, 1):
        assert mod.stored_asr(db, SeedRun(build_defend_config(settings), seed)) == stored[seed]
    # other settings (here the training length) find nothing
    other = {**settings, "train": {"epochs": 3}}
    assert mod.stored_asr(db, SeedRun(build_defend_config(other), 0)) is None


def test_spearman_handles_ties(load_script):
    rho = load_script("benchmarks/trigger_visibility.py").spearman
    assert rho([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert rho([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert abs(rho([1, 1, 2, 3], [1, 2, 3, 4]) - 0.9486832980505138) < 1e-12


def test_missing_asr_db_is_one_line_before_any_work(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--asr-db", str(tmp_path / "no.sqlite")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and not proc.stdout
