"""Benchmark the baseline defenses (issue 4): ABL, Prune, Randomized smoothing, ED, XGBD.

For every (dataset, attack, seed) one :class:`~dglcleaner.runner.SeedRun` trains the clean and
the backdoored models once; every defense is then run on that same cached run
(``run.record(defense)``), and the clean model and data split are also shared by all attacks of
a (dataset, seed). Writes ``docs/results/defenses.md`` (mean ± std over seeds, the paper's
numbers beside ours: Table 3's ABL/Prune/RS columns, Table 7's ED/XGBD columns, AIDS only for
Table 7) and ``docs/results/defenses.json`` (every per-seed record), with the machine.

An attack whose plugin fails to load (or to run) is skipped with a message; a defense that
fails is reported in the table as failed, the others still run.

Examples::

    python benchmarks/defenses.py --quick                      # smoke run: synthetic, sub-ba
    DGLCLEANER_DATA_DIR=/work/shared/datasets python benchmarks/defenses.py \\
        --attacks sub-ba --defenses abl prune smoothing --seeds 1   # what docs/ shows
    python benchmarks/defenses.py --datasets AIDS Bitcoin Fingerprint COLLAB   # full grid (slow)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from _common import fmt, machine, machine_md, scoped_params  # noqa: E402
from dglcleaner.metrics import mean_std  # noqa: E402
from dglcleaner.registry import make_plugin  # noqa: E402
from dglcleaner.runner import DefendConfig, SeedRun  # noqa: E402
from dglcleaner.training import TrainConfig  # noqa: E402

ATTACKS = ("sub-ba", "gta", "exp-ba", "motif-ba")
DEFENSES = ("abl", "prune", "smoothing", "ed", "xgbd")
DETECTORS = ("abl", "ed", "xgbd")
OUT = Path(__file__).resolve().parents[1] / "docs" / "results" / "defenses.md"

# GCleaner paper (backdoor.md section 1.5), ASR / ACC in percent.
# Table 3: Before, ABL, Prune, Randomized smoothing (all four datasets).
_T3_COLS = ("before", "abl", "prune", "smoothing")
_T3 = {
    ("Bitcoin", "sub-ba"): ((79.03, 68.48), (25.32, 64.85), (41.53, 62.27), (29.11, 64.85)),
    ("Bitcoin", "gta"): ((91.20, 69.60), (28.86, 66.73), (35.63, 59.90), (35.16, 67.51)),
    ("Bitcoin", "exp-ba"): ((84.67, 69.17), (13.47, 64.58), (18.77, 61.31), (28.97, 66.92)),
    ("Bitcoin", "motif-ba"): ((86.08, 68.25), (16.94, 61.99), (28.85, 58.59), (24.15, 63.39)),
    ("COLLAB", "sub-ba"): ((77.49, 79.52), (21.42, 75.86), (42.60, 64.20), (32.02, 67.71)),
    ("COLLAB", "gta"): ((83.05, 78.70), (32.70, 80.84), (35.19, 70.78), (45.37, 76.90)),
    ("COLLAB", "exp-ba"): ((79.42, 78.92), (27.41, 71.57), (43.21, 68.43), (28.41, 74.59)),
    ("COLLAB", "motif-ba"): ((81.46, 79.71), (24.64, 70.79), (22.97, 66.64), (39.48, 71.55)),
    ("AIDS", "sub-ba"): ((95.84, 97.14), (46.94, 95.36), (91.55, 87.25), (65.30, 91.79)),
    ("AIDS", "gta"): ((99.02, 97.33), (55.10, 95.00), (97.18, 84.33), (79.59, 87.86)),
    ("AIDS", "exp-ba"): ((96.76, 95.14), (33.89, 95.12), (62.24, 88.17), (45.51, 92.36)),
    ("AIDS", "motif-ba"): ((95.91, 97.85), (20.41, 96.43), (95.31, 83.25), (69.39, 89.64)),
    ("Fingerprint", "sub-ba"): ((94.31, 60.26), (12.60, 50.17), (35.01, 46.65), (80.32, 50.00)),
    ("Fingerprint", "gta"): ((100.00, 61.54), (10.52, 54.74), (37.70, 49.58), (67.14, 54.67)),
    ("Fingerprint", "exp-ba"): ((97.87, 60.69), (18.13, 51.79), (29.79, 50.86), (59.71, 56.61)),
    ("Fingerprint", "motif-ba"): ((98.97, 61.11), (16.58, 58.54), (48.42, 53.17),
                                  (69.27, 53.41)),
}
# Table 7 (AIDS only): ED, XGBD.
_T7 = {
    "sub-ba": {"ed": (26.64, 90.37), "xgbd": (17.18, 89.51)},
    "gta": {"ed": (52.04, 89.64), "xgbd": (32.28, 92.33)},
    "exp-ba": {"ed": (16.81, 92.12), "xgbd": (9.26, 93.35)},
    "motif-ba": {"ed": (24.08, 87.36), "xgbd": (15.32, 92.94)},
}


def paper(dataset: str, attack: str, column: str) -> Optional[Tuple[float, float]]:
    """The paper's (ASR, ACC) for ``column`` (``before`` or a defense name), if it has one."""
    if column in _T3_COLS and (dataset, attack) in _T3:
        return _T3[(dataset, attack)][_T3_COLS.index(column)]
    if dataset == "AIDS" and column in _T7.get(attack, {}):
        return _T7[attack][column]
    return None


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["AIDS"])
    p.add_argument("--attacks", nargs="+", default=list(ATTACKS))
    p.add_argument("--defenses", nargs="+", default=list(DEFENSES))
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    p.add_argument("--epochs", type=int, default=None,
                   help="training epochs (default: TrainConfig's)")
    p.add_argument("--model", default="gin")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-dir", default=None,
                   help="datasets folder (default: $DGLCLEANER_DATA_DIR)")
    p.add_argument("--defense-param", action="append", default=[],
                   metavar="DEFENSE:NAME=VALUE",
                   help="defense parameter, e.g. xgbd:explainer=gradcam (repeatable)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: synthetic data, sub-ba, 1 seed, 10 epochs, "
                        "ED/XGBD with Grad-CAM")
    p.add_argument("--out", default=str(OUT), help="Markdown file (JSON beside it)")
    p.add_argument("--from-json", default=None, metavar="FILE",
                   help="re-render the Markdown from a JSON this script wrote (no training)")
    args = p.parse_args(argv)
    if args.quick:
        args.datasets, args.attacks, args.seeds, args.epochs = ["synthetic"], ["sub-ba"], 1, 10
        args.defense_param = ["ed:explainer=gradcam", "xgbd:explainer=gradcam"] + \
            args.defense_param
    return args


def defense_params(specs: List[str]) -> Dict[str, Dict[str, str]]:
    return scoped_params(specs, "--defense-param", "DEFENSE")


def one_seed(dataset: str, seed: int, args, params) -> List[Dict[str, Any]]:
    """Every (attack, defense) for one (dataset, seed): each attack's SeedRun trains its
    backdoored model once and is shared by all defenses; data and clean model by all attacks."""
    train = TrainConfig() if args.epochs is None else TrainConfig(epochs=args.epochs)
    base: Optional[SeedRun] = None
    rows: List[Dict[str, Any]] = []
    for attack in args.attacks:
        try:
            make_plugin("attack", attack, {}, None)
        except Exception as exc:  # noqa: BLE001 - a missing attack plugin skips, not aborts
            msg = f"{type(exc).__name__}: {exc}"
            print(f"skipping attack {attack!r}: its plugin does not load ({msg})", flush=True)
            rows.append({"dataset": dataset, "seed": seed, "attack": attack, "defense": None,
                         "error": f"attack skipped: {msg}"})
            continue
        cfg = DefendConfig(dataset=dataset, attack=attack, defense="none", model=args.model,
                           device=args.device, data_dir=args.data_dir, train=train)
        run = SeedRun(cfg, seed)
        if base is None:
            base = run
        else:  # same dataset/seed/model: reuse the split and the clean model
            run.share_stages(base, ("data", "clean_model"))
        try:
            run.backdoored_model  # noqa: B018 - attack + backdoored model, once per attack
        except Exception as exc:  # noqa: BLE001
            msg = f"{type(exc).__name__}: {exc}"
            print(f"skipping attack {attack!r} on {dataset} seed {seed}: {msg}", flush=True)
            rows.append({"dataset": dataset, "seed": seed, "attack": attack, "defense": None,
                         "error": f"attack failed: {msg}"})
            continue
        for defense in args.defenses:
            row: Dict[str, Any] = {"dataset": dataset, "seed": seed, "attack": attack,
                                   "defense": defense}
            before = run.timings.get("defense", 0.0)
            try:
                rec = run.record(defense, params.get(defense, {}))
                row.update({k: v for k, v in rec.items() if k not in ("seed", "attack")})
                row["attack_info"] = rec.get("attack")
                row["defense_s"] = run.timings.get("defense", 0.0) - before
            except Exception as exc:  # noqa: BLE001 - one failing defense must not end the grid
                row["error"] = f"{type(exc).__name__}: {exc}"
            brief = {k: row.get(k) for k in ("dataset", "seed", "attack", "defense",
                                              "backdoored", "defended", "detection",
                                              "defense_s", "error") if k in row}
            print(json.dumps(brief, default=str), flush=True)
            rows.append(row)
    return rows


def _pair(rs: List[Dict[str, Any]], group: str) -> str:
    asr = mean_std([r[group]["asr"] for r in rs])
    acc = mean_std([r[group]["acc"] for r in rs])
    return f"{fmt(asr, 1)} / {fmt(acc, 1)}"


def table(rows: List[Dict[str, Any]], args) -> str:
    head = ("| dataset | attack | defense | seeds | before ASR / ACC | defended ASR / ACC | "
            "paper before | paper defended | det. precision | det. recall | flagged | "
            "defense s |")
    lines = [head, "|" + "---|" * 12]
    for dataset in args.datasets:
        for attack in args.attacks:
            skipped = [r for r in rows if r["dataset"] == dataset and r["attack"] == attack
                       and r.get("defense") is None]
            if skipped:
                lines.append(f"| {dataset} | {attack} | – | 0 | {skipped[0]['error'][:100]} |"
                             + " |" * 7)
                continue
            for defense in args.defenses:
                rs = [r for r in rows if r["dataset"] == dataset and r["attack"] == attack
                      and r["defense"] == defense]
                ok = [r for r in rs if "error" not in r]
                pb, pd = paper(dataset, attack, "before"), paper(dataset, attack, defense)
                pcell = lambda p: "–" if p is None else f"{p[0]:.2f} / {p[1]:.2f}"  # noqa
                if not ok:
                    err = rs[0]["error"][:100] if rs else "not run"
                    lines.append(f"| {dataset} | {attack} | {defense} | 0 | failed: {err} | | "
                                 f"{pcell(pb)} | {pcell(pd)} | | | | |")
                    continue
                det = [r["detection"] for r in ok if "detection" in r]
                dcell = (lambda k: fmt(mean_std([d[k] for d in det]), 1)) if det else \
                    (lambda k: "–")
                lines.append(
                    f"| {dataset} | {attack} | {defense} | {len(ok)} | {_pair(ok, 'backdoored')}"
                    f" | {_pair(ok, 'defended')} | {pcell(pb)} | {pcell(pd)} | "
                    f"{dcell('precision')} | {dcell('recall')} | {dcell('flagged')} | "
                    f"{fmt(mean_std([r['defense_s'] for r in ok]), 0)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.data_dir is None:
        args.data_dir = os.environ.get("DGLCLEANER_DATA_DIR")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    params = defense_params(args.defense_param)
    cmd = " ".join(sys.argv[1:] if argv is None else argv)
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        out_path = args.out
        args = argparse.Namespace(**{**saved["args"], "out": out_path})
        params = defense_params(args.defense_param)
        rows, wall, info, cmd = saved["rows"], saved["wall_s"], saved["machine"], saved["cmd"]
    else:
        start = time.perf_counter()
        rows = []
        for dataset in args.datasets:
            for seed in range(args.seeds):
                rows.extend(one_seed(dataset, seed, args, params))
        wall = time.perf_counter() - start
        info = machine()
    epochs = TrainConfig().epochs if args.epochs is None else args.epochs
    body = "\n".join([
        "# Baseline defenses: measured results",
        "",
        f"Generated by `python benchmarks/defenses.py {cmd}`: datasets {', '.join(args.datasets)}"
        f"; attacks {', '.join(args.attacks)}; defenses {', '.join(args.defenses)}; seeds "
        f"0..{args.seeds - 1}; model {args.model.upper()}, {epochs} training epochs, device "
        f"{args.device}; defense parameters {params or 'defaults'}. Wall time {wall:.0f} s.",
        "",
        machine_md(info),
        "",
        "ASR / ACC in percent, mean ± std over seeds (std 0.0 with one seed). `before` is the "
        "backdoored model the defense starts from (training-set defenses retrain their own "
        "model on the same poisoned set). Paper columns: GCleaner Table 3 (ABL, Prune, "
        "Randomized smoothing; all four datasets) and Table 7 (ED, XGBD; AIDS only); `–` = no "
        "paper number. Detection precision/recall (percent, evaluator-only: the defenses never "
        "see the poison indices) are given for the defenses that flag training graphs "
        "(ABL's isolated set, ED, XGBD).",
        "",
        table(rows, args),
        "",
    ])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(body)
    out.with_suffix(".json").write_text(json.dumps(
        {"args": vars(args), "cmd": cmd, "machine": info, "wall_s": wall, "rows": rows},
        indent=1,
        default=str))
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
