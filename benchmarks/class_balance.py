"""Class balance of the evaluation split: what ACC and ASR a constant predictor gets.

A model that always predicts the most common class scores the majority rate as ACC and 0 % ASR
(the ASR is measured on non-target graphs), so on an unbalanced dataset a defense that wrecks
the model can look like a good one. This script prints, per dataset and seed, the class counts
of the evaluation graphs (the split of ``SeedRun``: 80 % train, the defender's 25 % of the rest
held out, default settings) and that majority rate; no training.

    DGLCLEANER_DATA_DIR=../shared/datasets python benchmarks/class_balance.py --datasets Bitcoin
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from typing import List, Optional

from dglcleaner.runner import DefendConfig, SeedRun


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["AIDS", "Bitcoin", "Fingerprint"])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--target-label", type=int, default=1)
    ap.add_argument("--data-dir", default=os.environ.get("DGLCLEANER_DATA_DIR"))
    args = ap.parse_args(argv)
    print("| dataset | seed | eval graphs | class counts | non-target | majority rate % |")
    print("|---|---|---|---|---|---|")
    for name in args.datasets:
        rates = []
        for seed in range(args.seeds):
            cfg = DefendConfig(dataset=name, device="cpu", data_dir=args.data_dir,
                               target_label=args.target_label)
            _, y = SeedRun(cfg, seed=seed).data["eval"]
            counts = [int((y == c).sum()) for c in range(int(y.max()) + 1)]
            rate = 100.0 * max(counts) / len(y)
            rates.append(rate)
            print(f"| {name} | {seed} | {len(y)} | {counts} | "
                  f"{int((y != args.target_label).sum())} | {rate:.2f} |")
        std = statistics.pstdev(rates) if len(rates) > 1 else 0.0
        print(f"| {name} | mean | | | | {statistics.mean(rates):.2f} ± {std:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
