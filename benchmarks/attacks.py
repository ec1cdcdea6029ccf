"""Benchmark the four graph-backdoor attacks (issue 3): clean ACC, backdoored ACC/ASR, the
trigger's ASR on the clean model (control) and time per attack.

Per dataset and seed the data split and the clean model are computed once and shared by all
attacks (they do not depend on the attack). Writes a Markdown table (mean ± std over seeds, in
percent) between the result markers of ``docs/attacks.md`` (the prose around them is kept) and,
with ``--json``, every per-seed record.

Examples::

    python benchmarks/attacks.py --datasets AIDS --seeds 1            # what docs/ shows
    python benchmarks/attacks.py --quick                              # smoke run, synthetic
    DGLCLEANER_DATA_DIR=/data python benchmarks/attacks.py            # the full grid (slow)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import torch

from _common import machine, machine_md, scoped_params

from dglcleaner.io_utils import atomic_write_bytes
from dglcleaner.metrics import mean_std
from dglcleaner.runner import DefendConfig, SeedRun, versions
from dglcleaner.training import TrainConfig

ATTACKS = ("sub-ba", "gta", "exp-ba", "motif-ba")
DATASETS = ("AIDS", "Bitcoin", "Fingerprint", "COLLAB")
BEGIN, END = "<!-- BEGIN RESULTS (benchmarks/attacks.py) -->", "<!-- END RESULTS -->"
DOC = Path(__file__).resolve().parents[1] / "docs" / "attacks.md"

COLUMNS = [
    ("poisoned", "poisoned"),
    ("clean_acc", "clean ACC"),
    ("bd_acc", "backdoored ACC"),
    ("bd_asr", "ASR"),
    ("control_asr", "clean-model ASR (control)"),
    ("bd_asr_all", "ASR (all, GTA)"),
    ("bd_asr_conditional", "ASR (cond., Motif)"),
    ("attack_s", "attack s"),
    ("backdoor_train_s", "backdoored-model training s"),
]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=list(DATASETS))
    p.add_argument("--attacks", nargs="+", default=list(ATTACKS))
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    p.add_argument("--model", default="gin")
    p.add_argument("--epochs", type=int, default=None,
                   help="training epochs (default: TrainConfig's)")
    p.add_argument("--injection-ratio", type=float, default=0.05)
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--attack-param", action="append", default=[], metavar="ATTACK:NAME=VALUE",
                   help="plugin parameter, e.g. gta:iterations=5 (repeatable)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: synthetic data, 1 seed, 10 epochs, GTA 3 iterations")
    p.add_argument("--out", default=str(DOC), help="Markdown file to update")
    p.add_argument("--json", default=None, help="also write per-seed records here")
    args = p.parse_args(argv)
    if args.quick:
        args.datasets, args.seeds, args.epochs = ["synthetic"], 1, 10
        args.attack_param = ["gta:iterations=3"] + args.attack_param
    return args


def attack_params(specs: List[str]) -> Dict[str, Dict[str, str]]:
    return scoped_params(specs, "--attack-param", "ATTACK")


def one_seed(dataset: str, seed: int, args, params) -> List[Dict[str, Any]]:
    """All attacks for one (dataset, seed); the data split and clean model are shared."""
    train = TrainConfig() if args.epochs is None else TrainConfig(epochs=args.epochs)
    base = None
    rows = []
    for attack in args.attacks:
        cfg = DefendConfig(dataset=dataset, attack=attack, defense="none", model=args.model,
                           device=args.device, data_dir=args.data_dir, train=train,
                           injection_ratio=args.injection_ratio,
                           attack_params=params.get(attack, {}))
        run = SeedRun(cfg, seed)
        if base is None:
            base = run
            t0 = time.perf_counter()
            base.clean_model  # noqa: B018 - trained once, shared below
            clean_s = time.perf_counter() - t0
        else:  # same dataset/seed/model: reuse the split and the clean model
            run.share_stages(base, ("data", "clean_model"))
        row: Dict[str, Any] = {"dataset": dataset, "seed": seed, "attack": attack,
                               "clean_train_s": clean_s}
        try:
            t0 = time.perf_counter()
            res = run.attack_result
            row["attack_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            model = run.backdoored_model
            row["backdoor_train_s"] = time.perf_counter() - t0
            control = run.evaluate(run.clean_model)
            bd = run.evaluate(model)
            row.update(poisoned=int(len(res.poisoned_idx)), clean_acc=control["acc"],
                       control_asr=control["asr"], bd_acc=bd["acc"], bd_asr=bd["asr"],
                       bd_asr_all=bd["asr_all"], bd_asr_conditional=bd["asr_conditional"],
                       trigger_size=run.data["trigger_size"],
                       trigger={k: v for k, v in res.trigger.items()
                                if k != "positions_by_graph"})
        except Exception as exc:  # noqa: BLE001 - one failing attack must not end the grid
            row["error"] = f"{type(exc).__name__}: {exc}"
        print(json.dumps({k: v for k, v in row.items() if k != "trigger"}, default=str),
              flush=True)
        rows.append(row)
    return rows


def fmt(values: List[float], pct: bool = True) -> str:
    s = mean_std(values)
    if s["mean"] is None:
        return "–"
    if len([v for v in values if v is not None and not math.isnan(v)]) == 1:
        return f"{s['mean']:.1f}" if pct else f"{s['mean']:.1f}"
    return f"{s['mean']:.1f} ± {s['std']:.1f}"


def table(rows: List[Dict[str, Any]], args) -> str:
    head = "| dataset | attack | seeds | " + " | ".join(c[1] for c in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (3 + len(COLUMNS))]
    for dataset in args.datasets:
        for attack in args.attacks:
            rs = [r for r in rows if r["dataset"] == dataset and r["attack"] == attack]
            ok = [r for r in rs if "error" not in r]
            if not ok:
                err = rs[0]["error"] if rs else "not run"
                lines.append(f"| {dataset} | {attack} | 0 | failed: {err[:120]} |"
                             + " |" * (len(COLUMNS) - 1))
                continue
            cells = [fmt([r[key] for r in ok]) for key, _ in COLUMNS]
            cells[0] = f"{mean_std([r['poisoned'] for r in ok])['mean']:.0f}"
            lines.append(f"| {dataset} | {attack} | {len(ok)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_doc(path: Path, body: str) -> None:
    text = path.read_text() if path.exists() else f"# Attacks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip() + f"\n\n{BEGIN}\n{END}\n"
    pre, rest = text.split(BEGIN, 1)
    _, post = rest.split(END, 1)
    atomic_write_bytes(path, (pre + BEGIN + "\n" + body.strip() + "\n" + END + post).encode())


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    params = attack_params(args.attack_param)
    start = time.perf_counter()
    rows: List[Dict[str, Any]] = []
    for dataset in args.datasets:
        for seed in range(args.seeds):
            rows.extend(one_seed(dataset, seed, args, params))
    wall = time.perf_counter() - start
    v = versions()
    epochs = TrainConfig().epochs if args.epochs is None else args.epochs
    cli = " ".join(sys.argv[1:] if argv is None else argv)
    body = "\n".join([
        f"Measured by `python benchmarks/attacks.py {cli}`"
        f" on {time.strftime('%Y-%m-%d')}: model {args.model.upper()}, {epochs} training epochs, "
        f"injection ratio {args.injection_ratio:.0%}, seeds 0..{args.seeds - 1}, device "
        f"{args.device}; attack parameters {params or 'defaults'}. Wall time {wall:.0f} s.",
        f"Machine: {v['platform']}, {v['cpu_threads']} torch thread(s); torch {v['torch']}, "
        f"DGL {v['dgl']}, Python {v['python']}.",
        machine_md(machine()) + " Times are upper bounds when the load average is above the"
        " core count.",
        "",
        "Percentages, mean ± std over seeds (a single number: one seed). `attack s` is the "
        "attack stage (GTA's includes training its own backdoored model); `backdoored-model "
        "training s` is the runner's training on the poisoned set (≈0 for GTA).",
        "",
        table(rows, args),
    ])
    write_doc(Path(args.out), body)
    if args.json:
        atomic_write_bytes(Path(args.json), json.dumps({"rows": rows, "versions": v}, indent=1,
                                                       default=str).encode())
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
