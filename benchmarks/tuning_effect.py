"""What the faithful protocol's tuning changes: tuned runs of a grid against the untuned table.

Reads the tuned node-classification runs of a run archive or results database (a
``label_poisoning.yaml`` grid with ``n_trials > 0``) and the untuned records that
``benchmarks/label_poisoning.py --trials 0 --json`` writes, and prints, per attack and budget,
the tuned accuracy and the tuning effect ``Δ`` (tuned minus untuned, averaged over the splits
both have, with the number of splits where tuning raised the accuracy), the strongest attacks
per budget with and without tuning, and (``--versus A B``) attack A against B split by split.
No training::

    python benchmarks/tuning_effect.py --runs benchmarks/runs/2026-12-06.jsonl.gz \\
        --defaults docs/benchmarks/label-poisoning-cora_ml.json --dataset cora_ml \\
        --versus lafak sgc-bin

Accuracies are clean-test accuracy in %, mean ± population std over the splits the skip rule
kept (lower is a stronger attack). Rows are sorted by the tuned accuracy at the first budget.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

Cells = Dict[Tuple[str, float], Dict[int, float]]  # (attack, budget) -> split -> acc


def _ms(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.fmean(values):.2f} ± {statistics.pstdev(values):.2f}"


def tuned_cells(rows: Sequence[Any], dataset: str, model: str,
                grid: Optional[str]) -> Tuple[Cells, Dict[str, Any]]:
    """Accuracies of the ok, not skipped, tuned runs; the clean row is attack ``clean``,
    budget 0. Also returns the run totals (cells, summed seconds, trials, machines)."""
    cells: Cells = defaultdict(dict)
    info: Dict[str, Any] = {"cells": 0, "seconds": 0.0, "skipped": [], "cpus": set()}
    for r in rows:
        cfg = r.config
        proto = cfg.get("protocol") or {}
        if (cfg.get("task") != "node" or cfg.get("dataset") != dataset or cfg.get("model") != model
                or (grid is not None and r.grid != grid) or not proto.get("n_trials")
                or r.status != "ok"):
            continue
        attack = cfg.get("attack") or "clean"  # the plugin name, as in the untuned records
        info.setdefault("labels", {})[attack] = str(r.axes.get("attack", attack))
        budget = float(cfg.get("budget") or 0.0)
        info["cells"] += 1
        info["seconds"] += float(r.elapsed_s or 0.0)
        info["cpus"].add(r.versions.get("cpu", "?"))
        if r.record.get("skipped"):
            info["skipped"].append((str(r.axes.get("attack", attack)), budget, int(cfg["split"])))
            continue
        cells[(attack, budget)][int(cfg["split"])] = float(r.record["poisoned"]["acc"])
    return cells, info


def untuned_cells(records: Dict[str, Any], protocol: str = "faithful") -> Cells:
    """Accuracies of ``label_poisoning.py --json`` records (budget 0 is the clean model)."""
    cells: Cells = defaultdict(dict)
    for key, rec in records.items():
        pname, _, attack = key.partition("/")
        if pname != protocol:
            continue
        for run in rec.get("runs", []):
            if run.get("skipped"):
                continue
            budget = float(run["budget"])
            cells[("clean" if budget == 0 else attack, budget)][int(run["split"])] = float(run["acc"])
    return cells


def table(tuned: Cells, untuned: Cells, budgets: Sequence[float], label: str,
          labels: Optional[Dict[str, str]] = None) -> List[str]:
    """Two markdown tables over the budgets: the tuned accuracy (clean first, then the attacks
    by tuned accuracy at ``budgets[0]``), and ``Δ`` against the untuned records."""
    name = (labels or {}).get
    head = " | ".join(f"{100 * b:g} %" for b in budgets)
    rule = "|---|" + "---|" * len(budgets)
    clean_t, clean_u = tuned.get(("clean", 0.0), {}), untuned.get(("clean", 0.0), {})
    attacks = sorted({a for a, b in tuned if a != "clean"},
                     key=lambda a: statistics.fmean(tuned[(a, budgets[0])].values())
                     if tuned.get((a, budgets[0])) else float("inf"))
    acc = [f"Tuned accuracy (%), {label}:", "", f"| attack | {head} |", rule,
           f"| clean | " + " | ".join([_ms(list(clean_t.values()))] * len(budgets)) + " |"]
    delta = ["", "Tuned minus defaults (points; splits where tuning raised the accuracy):", "",
             f"| attack | {head} |", rule,
             f"| clean | " + " | ".join([_delta(clean_t, clean_u)] * len(budgets)) + " |"]
    for a in attacks:
        acc.append(f"| {name(a, a)} | " + " | ".join(_ms_of(tuned.get((a, b), {}), len(clean_t))
                                                       for b in budgets) + " |")
        delta.append(f"| {name(a, a)} | " + " | ".join(_delta(tuned.get((a, b), {}), untuned.get((a, b), {}))
                                                         for b in budgets) + " |")
    return acc + delta


def _ms_of(split_acc: Dict[int, float], full: int) -> str:
    """Mean ± std, with the number of splits when a cell has fewer than the clean row (the
    skip rule, or a grid still running), so a partial cell is not read as a full one."""
    text = _ms(list(split_acc.values()))
    return f"{text} ({_splits(len(split_acc))})" if split_acc and len(split_acc) < full else text


def _splits(k: int) -> str:
    return f"{k} split" + ("s" if k != 1 else "")


def _delta(t: Dict[int, float], u: Dict[int, float]) -> str:
    common = sorted(set(t) & set(u))
    if not common:
        return "-"
    d = [t[s] - u[s] for s in common]
    return f"{statistics.fmean(d):+.2f} ({sum(x > 0 for x in d)}/{len(d)})"


def strongest(cells: Cells, budgets: Sequence[float], labels: Optional[Dict[str, str]] = None) -> List[str]:
    """One line per budget: the attacks with the lowest mean accuracy, best first (top 3),
    with the number of splits where it is fewer than the clean row's."""
    out = []
    full = len(cells.get(("clean", 0.0), {}))
    for b in budgets:
        means = sorted((statistics.fmean(v.values()), a, len(v)) for (a, bb), v in cells.items()
                       if bb == b and a != "clean" and v)
        top = ", ".join(f"{(labels or {}).get(a, a)} {m:.2f}" + (f" ({_splits(k)})" if k < full else "")
                        for m, a, k in means[:3])
        out.append(f"- {100 * b:g} %: {top}")
    return out


def versus(cells: Cells, a: str, b: str, budgets: Sequence[float],
           labels: Optional[Dict[str, str]] = None) -> List[str]:
    """Per budget: on how many common splits ``a`` ends lower (stronger) than ``b``, the mean
    and the largest per-split gaps ``a - b``."""
    name = (labels or {}).get
    out = []
    for bud in budgets:
        ta, tb = cells.get((a, bud), {}), cells.get((b, bud), {})
        common = sorted(set(ta) & set(tb))
        if not common:
            out.append(f"- {100 * bud:g} %: no common split")
            continue
        d = [ta[s] - tb[s] for s in common]
        out.append(f"- {100 * bud:g} %: {name(a, a)} lower than {name(b, b)} on {sum(x < 0 for x in d)} of "
                   f"{len(d)} splits; {name(a, a)} - {name(b, b)} = {statistics.fmean(d):+.2f} on average "
                   f"(per split {min(d):+.2f} to {max(d):+.2f})")
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="*", default=[], help="run archives (dglcleaner export)")
    ap.add_argument("--db", default=None, help="a results database instead of / besides --runs")
    ap.add_argument("--defaults", required=True, help="untuned records (label_poisoning.py --json)")
    ap.add_argument("--dataset", default="cora_ml")
    ap.add_argument("--model", default="gcn")
    ap.add_argument("--grid", default=None, help="only runs of this grid name")
    ap.add_argument("--versus", nargs=2, metavar=("A", "B"), default=None,
                    help="compare two attacks (plugin names) split by split")
    ap.add_argument("--budgets", nargs="+", type=float, default=None,
                    help="only these budgets (fractions, e.g. 0.1 0.3; default: every tuned one)")
    ap.add_argument("--md", default=None, help="also write the table here")
    args = ap.parse_args(argv)

    from dglcleaner.errors import DataError
    from dglcleaner.experiments.archive import load_rows

    try:
        rows = load_rows(args.db, args.runs)
        records = json.loads(Path(args.defaults).read_text())
    except (DataError, OSError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tuned, info = tuned_cells(rows, args.dataset, args.model, args.grid)
    if not tuned:
        print(f"error: no tuned {args.model} runs on {args.dataset!r} in the given runs "
              "(a label_poisoning grid with n_trials > 0)", file=sys.stderr)
        return 2
    untuned = untuned_cells(records)
    budgets = sorted({b for a, b in tuned if a != "clean"})
    if args.budgets:
        missing = sorted(set(args.budgets) - set(budgets))
        if missing:
            print(f"error: no tuned runs at budget {', '.join(f'{b:g}' for b in missing)}; tuned budgets "
                  f"here: {', '.join(f'{b:g}' for b in budgets)}", file=sys.stderr)
            return 2
        budgets = sorted(args.budgets)
    labels = info.get("labels", {})
    lines = table(tuned, untuned, budgets, f"{args.dataset}, {args.model.upper()}", labels)
    lines += ["", f"{info['cells']} tuned cells, {info['seconds'] / 60:.1f} min summed, on "
              f"{', '.join(sorted(info['cpus']))}; skipped (attack, budget, split): "
              f"{sorted(info['skipped']) or 'none'}", "", "Strongest attacks (tuned):"]
    lines += strongest(tuned, budgets, labels)
    lines += ["", "Strongest attacks (defaults, every split of the untuned records):"]
    lines += strongest(untuned, budgets, labels)
    if args.versus:
        a, b = args.versus
        for which in (a, b):
            if not any(k[0] == which for k in tuned):
                print(f"error: no tuned runs of attack {which!r}; attacks here: "
                      f"{', '.join(sorted({k[0] for k in tuned} - {'clean'}))}", file=sys.stderr)
                return 2
        lines += ["", "Split by split (tuned):"] + versus(tuned, a, b, budgets, labels)
        lines += ["", "Split by split (defaults):"] + versus(untuned, a, b, budgets, labels)
    text = "\n".join(lines)
    if args.md:
        Path(args.md).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
