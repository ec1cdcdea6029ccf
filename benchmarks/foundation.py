"""Foundation check (issue 2): Sub-BA on AIDS with GIN, 5% injection, several seeds.

Claim checked: the backdoored model reaches ASR >= 85% with clean ACC within 3 points of the
clean model. Also reports the clean-model control ASR, fine-tuning as a defense, and the time per
stage. Two trigger rules run on the same splits and clean models: a trigger graph drawn per seed
(the default) and the trigger of GCleaner's released code (``trigger_seed=10``, pinned for
every seed). Writes ``docs/results/foundation.md`` and ``docs/results/foundation.json``.

    python benchmarks/foundation.py --data-dir ../shared/datasets --seeds 5
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _common import fmt, machine, machine_md

from dglcleaner.io_utils import atomic_write_bytes, atomic_write_json
import time
from dataclasses import replace

from dglcleaner.runner import DefendConfig, SeedRun, defend_document
from dglcleaner.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="AIDS")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--model", default="gin")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    ap.add_argument("--trigger-seed", type=int, default=10,
                    help="trigger seed of the pinned variant (released code: 10)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "foundation"))
    ap.add_argument("--from-json", action="store_true",
                    help="re-render the Markdown from the stored JSON without training")
    args = ap.parse_args(argv)

    if args.from_json:
        stored = json.loads(Path(args.out).with_suffix(".json").read_text())
        doc, pinned, info = stored["result"], stored.get("pinned"), stored["machine"]
    else:
        cfg = DefendConfig(dataset=args.dataset, data_dir=args.data_dir, attack="sub-ba",
                           defense="finetune", model=args.model, seeds=args.seeds,
                           device="cpu", train=TrainConfig(epochs=args.epochs))
        doc, pinned = _run_both(cfg, args.trigger_seed)
        info = machine()
    checks = [_check(doc)] + ([_check(pinned)] if pinned else [])
    timings = {}
    for r in doc["runs"] + (pinned["runs"] if pinned else []):
        for k, v in r["timings"].items():
            timings.setdefault(k, []).append(v)
    lines = [
        f"# Foundation check: Sub-BA on {args.dataset}, {args.model.upper()}",
        "",
        f"Command: `python benchmarks/foundation.py --dataset {args.dataset} --seeds {args.seeds}"
        f" --epochs {args.epochs}` (5% injection, target 1, trigger size "
        f"{doc['runs'][0]['attack']['trigger_size']}, holding 3%, degree one-hot features).",
        "",
        "Two trigger rules on the same splits and clean models. **Per-seed trigger** (the default):",
        "each seed draws its own Erdos-Renyi(k, 0.8) trigger graph. **Released trigger**",
        "(`--attack-param trigger_seed=10`, part of the `official` preset): every seed uses the",
        "graph GCleaner's released code draws, `networkx.erdos_renyi_graph(k, 0.8, seed=10)`, which",
        f"for k = 3 is {_official_trigger(3)}.",
        "",
        f"{len(doc['runs'])} seeds, mean ± std (%).",
        "",
        "| trigger | model | ACC | ASR | ASR (all triggered) | ASR (clean model correct) |",
        "|---|---|---|---|---|---|",
    ]
    names = {"clean": "clean (ASR: trigger on the clean model, control)",
             "backdoored": "backdoored (Sub-BA)", "defended": "fine-tuned on holding set"}
    for label, d in (("per-seed", doc), ("released", pinned)):
        if not d:
            continue
        for g in ("clean", "backdoored", "defended"):
            m = d["summary"][g]
            lines.append(f"| {label} | {names[g]} | {fmt(m['acc'])} | {fmt(m.get('asr'))} | "
                         f"{fmt(m.get('asr_all'))} | {fmt(m.get('asr_conditional'))} |")
    lines.append("")
    for label, (ok_asr, ok_acc, clean_acc, bd_acc, bd_asr) in zip(
            ("per-seed trigger", "released trigger"), checks):
        lines += [
            f"- {label}: backdoored ASR >= 85%: **{'yes' if ok_asr else 'no'}** ({bd_asr:.2f}%);"
            f" backdoored ACC within 3 points of the clean model: **{'yes' if ok_acc else 'no'}**"
            f" (clean {clean_acc:.2f}%, backdoored {bd_acc:.2f}%).",
        ]
    lines += [
        "",
        "Per seed: with k = 3 the trigger's shape decides much of the ASR (a single edge is",
        "weak, a triangle strong):",
        "",
        "| seed | per-seed trigger edges | backdoored ASR | clean-model ASR |"
        + (" released trigger: backdoored ASR | clean-model ASR |" if pinned else ""),
        "|---|---|---|---|" + ("---|---|" if pinned else ""),
    ]
    for i, r in enumerate(doc["runs"]):
        row = (f"| {r['seed']} | {r['attack']['trigger']['edges']} | "
               f"{r['backdoored']['asr']:.1f} | {r['clean']['asr']:.1f} |")
        if pinned:
            p = pinned["runs"][i]
            row += f" {p['backdoored']['asr']:.1f} | {p['clean']['asr']:.1f} |"
        lines.append(row)
    lines += [
        "",
        "Time per stage (s, mean over runs; the released-trigger runs reuse the split and the",
        "clean model): " + ", ".join(
            f"{k} {sum(v) / len(v):.2f}" for k, v in timings.items()) + ".",
        "",
        machine_md(info) + " Times depend on load: the load average is printed with them; "
        "on a shared machine they are upper bounds.",
        "",
    ]
    out = Path(args.out)
    atomic_write_bytes(out.with_suffix(".md"), "\n".join(lines).encode())
    if not args.from_json:
        atomic_write_json(out.with_suffix(".json"),
                          {"machine": info, "result": doc, "pinned": pinned})
    print("\n".join(lines))
    return 0 if all(c[0] and c[1] for c in checks) else 1


def _run_both(cfg: DefendConfig, trigger_seed: int):
    """Per seed: the default run, then the pinned-trigger run sharing its split and clean
    model. Returns the two ``dglcleaner.defend/1`` documents."""
    pinned_cfg = replace(cfg, attack_params=dict(cfg.attack_params, trigger_seed=trigger_seed))
    runs, pinned_runs = [], []
    start = time.perf_counter()
    for i in range(cfg.seeds):
        seed = cfg.seed + i
        log = (lambda msg, _s=seed: print(f"seed {_s}: {msg}", file=sys.stderr))
        run = SeedRun(cfg, seed, log)
        runs.append(run.record(cfg.defense))
        other = SeedRun(pinned_cfg, seed, log).share_stages(run)
        pinned_runs.append(other.record(cfg.defense))
    elapsed = time.perf_counter() - start
    return (defend_document(cfg, runs, elapsed),
            defend_document(pinned_cfg, pinned_runs, elapsed))


def _check(doc):
    s = doc["summary"]
    clean_acc, bd_acc, bd_asr = (s["clean"]["acc"]["mean"], s["backdoored"]["acc"]["mean"],
                                 s["backdoored"]["asr"]["mean"])
    return bd_asr >= 85.0, clean_acc - bd_acc <= 3.0, clean_acc, bd_acc, bd_asr


def _official_trigger(k: int) -> str:
    import networkx as nx

    edges = sorted(nx.erdos_renyi_graph(k, 0.8, seed=10).edges())
    shape = "a triangle" if k == 3 and len(edges) == 3 else f"{len(edges)} edges"
    return f"{shape} ({[list(e) for e in edges]})"


if __name__ == "__main__":
    sys.exit(main())
