"""Why ABL leaves the backdoor on AIDS: its unlearning step, swept with the isolation fixed.

One data seed: ABL's isolation and continued training run once (``unlearning_epochs=0``), then
the same model is unlearned on the same isolated graphs with each learning rate / epoch pair,
and ASR / ACC are measured. Diagnostic for ``docs/defenses.md``; prints JSON lines.

    DGLCLEANER_DATA_DIR=../shared/datasets python benchmarks/abl_unlearning.py --attack motif-ba
"""
from __future__ import annotations

import argparse
import copy
import json

import torch

from _common import machine

from dglcleaner.registry import make_plugin
from dglcleaner.runner import DefendConfig, SeedRun
from dglcleaner.seeding import derive_seed, seed_everything

SWEEP = ((5e-4, 5), (5e-4, 40), (5e-3, 5), (5e-3, 20), (2e-2, 20))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="AIDS")
    ap.add_argument("--attack", default="motif-ba")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    cfg = DefendConfig(dataset=args.dataset, attack=args.attack, defense="abl", seed=args.seed,
                       device="cpu", data_dir=args.data_dir)
    run = SeedRun(cfg, args.seed)
    plugin = make_plugin("defense", "abl", {"unlearning_epochs": 0}, None)
    ctx = run.defense_context(plugin)
    # The same seeding as the runner's record(), so this is the grid's ABL up to unlearning.
    seed_everything(derive_seed(args.seed, "defense", "abl"))
    res = plugin.run(ctx)
    poisoned = set(run.attack_result.poisoned_idx.tolist())
    iso = list(res.flagged)
    ev = run.evaluate(res.model, res)
    print(json.dumps({"isolated": len(iso), "poisoned_isolated": len(poisoned & set(iso)),
                      "no_unlearning": {"asr": round(ev["asr"], 2), "acc": round(ev["acc"], 2)}}))
    graphs, labels = ctx.train_graphs, ctx.train_labels
    for lr, epochs in SWEEP:
        model = copy.deepcopy(res.model)
        sweep = make_plugin("defense", "abl", {"unlearning_epochs": epochs, "unlearning_lr": lr},
                            None)
        row = {"unlearning_lr": lr, "unlearning_epochs": epochs}
        ce, stopped = sweep.unlearn(model, [graphs[i] for i in iso], labels[iso],
                                    derive_seed(args.seed, "abl", "unlearn"), ctx.device)
        ev = run.evaluate(model, res)
        row.update(ce_first=ce[0] if ce else None, ce_last=ce[-1] if ce else None,
                   asr=round(ev["asr"], 2), acc=round(ev["acc"], 2))
        if stopped:
            row["stopped"] = stopped
        print(json.dumps(row), flush=True)
    print(json.dumps({"machine": machine(), "dataset": args.dataset, "attack": args.attack,
                      "seed": args.seed}))


if __name__ == "__main__":
    main()
