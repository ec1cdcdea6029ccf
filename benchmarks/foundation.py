"""Foundation check (issue 2): Sub-BA on AIDS with GIN, 5% injection, several seeds.

Claim checked: the backdoored model reaches ASR >= 85% with clean ACC within 3 points of the
clean model. Also reports the clean-model control ASR, fine-tuning as a defense, and the time per
stage. Writes ``docs/results/foundation.md`` and ``docs/results/foundation.json``.

    python benchmarks/foundation.py --data-dir ../shared/datasets --seeds 5
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _common import fmt, machine, machine_md

from dglcleaner.io_utils import atomic_write_bytes, atomic_write_json
from dglcleaner.runner import DefendConfig, run_defend
from dglcleaner.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="AIDS")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--model", default="gin")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "foundation"))
    ap.add_argument("--from-json", action="store_true",
                    help="re-render the Markdown from the stored JSON without training")
    args = ap.parse_args(argv)

    if args.from_json:
        stored = json.loads(Path(args.out).with_suffix(".json").read_text())
        doc, info = stored["result"], stored["machine"]
    else:
        cfg = DefendConfig(dataset=args.dataset, data_dir=args.data_dir, attack="sub-ba",
                           defense="finetune", model=args.model, seeds=args.seeds,
                           device="cpu", train=TrainConfig(epochs=args.epochs))
        doc = run_defend(cfg, lambda i, msg: print(f"seed {cfg.seed + i}: {msg}",
                                                   file=sys.stderr))
        info = machine()
    s = doc["summary"]
    clean_acc, bd_acc, bd_asr = (s["clean"]["acc"]["mean"], s["backdoored"]["acc"]["mean"],
                                 s["backdoored"]["asr"]["mean"])
    ok_asr, ok_acc = bd_asr >= 85.0, clean_acc - bd_acc <= 3.0
    timings = {}
    for r in doc["runs"]:
        for k, v in r["timings"].items():
            timings.setdefault(k, []).append(v)
    lines = [
        f"# Foundation check: Sub-BA on {args.dataset}, {args.model.upper()}",
        "",
        f"Command: `python benchmarks/foundation.py --dataset {args.dataset} --seeds {args.seeds}"
        f" --epochs {args.epochs}` (5% injection, target 1, trigger size "
        f"{doc['runs'][0]['attack']['trigger_size']}, holding 3%, degree one-hot features).",
        "",
        f"{len(doc['runs'])} seeds, mean ± std (%).",
        "",
        "| model | ACC | ASR | ASR (all triggered) | ASR (clean model correct) |",
        "|---|---|---|---|---|",
    ]
    names = {"clean": "clean (ASR: trigger on the clean model, control)",
             "backdoored": "backdoored (Sub-BA)", "defended": "fine-tuned on holding set"}
    for g in ("clean", "backdoored", "defended"):
        m = s[g]
        lines.append(f"| {names[g]} | {fmt(m['acc'])} | {fmt(m.get('asr'))} | "
                     f"{fmt(m.get('asr_all'))} | {fmt(m.get('asr_conditional'))} |")
    lines += [
        "",
        f"- Backdoored ASR >= 85%: **{'yes' if ok_asr else 'no'}** ({bd_asr:.2f}%).",
        f"- Backdoored ACC within 3 points of the clean model: **{'yes' if ok_acc else 'no'}** "
        f"(clean {clean_acc:.2f}%, backdoored {bd_acc:.2f}%).",
        "",
        "Per seed: the Sub-BA trigger is one Erdos-Renyi(k, 0.8) graph drawn per seed, and with",
        "k = 3 its shape decides much of the ASR (a single edge is weak, a triangle strong):",
        "",
        "| seed | trigger edges | backdoored ASR | clean-model ASR |",
        "|---|---|---|---|",
    ] + [
        f"| {r['seed']} | {r['attack']['trigger']['edges']} | {r['backdoored']['asr']:.1f} | "
        f"{r['clean']['asr']:.1f} |" for r in doc["runs"]
    ] + [
        "",
        "For comparison, GCleaner's released code draws its trigger with "
        "`networkx.erdos_renyi_graph(k, 0.8, seed=10)`; for k = 3 that is "
        f"{_official_trigger(3)}, the strongest shape, which fits the paper's 95.84% ASR.",
        "",
        "Time per stage (s, mean over seeds): " + ", ".join(
            f"{k} {sum(v) / len(v):.2f}" for k, v in timings.items()) + ".",
        "",
        machine_md(info) + " Times depend on load: the load average is printed with them; "
        "on a shared machine they are upper bounds.",
        "",
    ]
    out = Path(args.out)
    atomic_write_bytes(out.with_suffix(".md"), "\n".join(lines).encode())
    if not args.from_json:
        atomic_write_json(out.with_suffix(".json"), {"machine": info, "result": doc})
    print("\n".join(lines))
    return 0 if ok_asr and ok_acc else 1


def _official_trigger(k: int) -> str:
    import networkx as nx

    edges = sorted(nx.erdos_renyi_graph(k, 0.8, seed=10).edges())
    shape = "a triangle" if k == 3 and len(edges) == 3 else f"{len(edges)} edges"
    return f"{shape} ({[list(e) for e in edges]})"


if __name__ == "__main__":
    sys.exit(main())
