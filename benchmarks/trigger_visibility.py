"""How visible is Sub-BA's trigger in a dataset's graphs, before any model is trained?

A backdoor can only be learnt if the trigger changes what the model sees. For each dataset and
seed this script plants Sub-BA's trigger exactly as a ``defend`` run with the same settings does
(same split, features, trigger and positions; no model is trained, Sub-BA uses none) and
measures, on the poisoned training graphs against their clean originals:

- ``edges_changed``: edges added plus edges removed, as a percentage of the clean graph's edges;
- ``trigger_degree_change``: over the nodes whose degree the trigger changed, the mean absolute
  change as a percentage of the clean degree (isolated nodes count as degree 1; trigger nodes
  whose degree happens to stay the same are not counted);
- ``histogram_separability``: 5-fold cross-validated accuracy of a logistic regression telling a
  triggered graph from its clean original by the sum of its node features (for one-hot degree
  features, the degree histogram: what a sum readout of GIN's input layer sees). Pairs stay in
  one fold; 50 % is chance.

With ``--asr-db DB`` each record also gets the backdoored model's ASR of the stored run with
the same settings and seed (e.g. Table 3's "Before" runs), and the script prints Spearman's rank
correlation between separability and that ASR. One JSON line per dataset and seed, then a
Markdown table (mean ± std over seeds)::

    DGLCLEANER_DATA_DIR=../shared/datasets python benchmarks/trigger_visibility.py \\
        --datasets AIDS Bitcoin Fingerprint COLLAB --seeds 5 --asr-db results/table3.sqlite
"""
from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, machine_md  # noqa: E402

METRICS = ("edges_changed", "trigger_degree_change", "histogram_separability")


def _edge_set(g) -> set:
    u, v = g.edges()
    return {(a, b) for a, b in zip(u.tolist(), v.tolist()) if a < b}


def separability(x_clean, x_trig, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated accuracy (percent) of an L2-regularised logistic regression telling the
    rows of ``x_trig`` from those of ``x_clean`` (row i of both is one pair; pairs share a fold)."""
    import torch

    n = x_clean.shape[0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    correct = 0
    for f in range(folds):
        test = order[f::folds]
        train = order[torch.isin(order, test, invert=True)]
        xt = torch.cat([x_clean[train], x_trig[train]])
        yt = torch.cat([torch.zeros(len(train)), torch.ones(len(train))])
        mu, sd = xt.mean(0), xt.std(0).clamp_min(1e-6)
        w = torch.zeros(xt.shape[1], requires_grad=True)
        b = torch.zeros(1, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            logits = ((xt - mu) / sd) @ w + b
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, yt)
            loss = loss + 1e-2 * w.square().sum()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            for x, label in ((x_clean[test], 0), (x_trig[test], 1)):
                pred = (((x - mu) / sd) @ w + b) > 0
                correct += int((pred == bool(label)).sum())
    return 100.0 * correct / (2 * n)


def plant(run):
    """Sub-BA's result for ``run`` (a ``SeedRun``): the runner's attack seeding and context,
    minus the clean model it would train first and Sub-BA never reads."""
    from dglcleaner.seeding import derive_seed, seed_everything

    seed_everything(derive_seed(run.seed, "attack"))
    return run.attack.run(run.attack_context(None))


_DEFENSE_FIELDS = ("defense", "defense_params", "defense_preset")


def _attack_side(config: Dict[str, object]) -> Dict[str, object]:
    return {k: v for k, v in config.items() if k not in _DEFENSE_FIELDS}


@functools.lru_cache(maxsize=None)
def _stored(db: str) -> List[tuple]:
    from dglcleaner.experiments.store import iter_rows

    return [(_attack_side(row.config), row.metric("backdoored.asr"))
            for row in iter_rows(db) if row.status == "ok"]


def stored_asr(db: str, run) -> Optional[float]:
    """Backdoored ASR of a stored run whose settings, defense aside, are ``run``'s."""
    from dglcleaner.experiments.config import canonical

    mine = _attack_side({**canonical(run.cfg), "seed": run.seed})
    return next((asr for side, asr in _stored(db) if side == mine and asr is not None), None)


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's rho (average ranks for ties)."""
    import numpy as np

    def ranks(v):
        v = np.asarray(v, dtype=float)
        order = v.argsort(kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        for val in np.unique(v):  # ties share their mean rank
            r[v == val] = r[v == val].mean()
        return r

    return float(np.corrcoef(ranks(xs), ranks(ys))[0, 1])


def measure(dataset: str, seed: int, data_dir: Optional[str],
            asr_db: Optional[str] = None) -> Dict[str, object]:
    """The three measures for one dataset and seed (Sub-BA with ``defend``'s defaults)."""
    from dglcleaner.experiments.config import build_defend_config
    from dglcleaner.runner import SeedRun
    import torch

    run = SeedRun(build_defend_config({"dataset": dataset, "attack": "sub-ba",
                                       "data_dir": data_dir}), seed)
    graphs = run.data["train"][0]
    res = plant(run)
    idx = res.poisoned_idx.tolist()
    changed, deg_change, x_clean, x_trig = [], [], [], []
    for i in idx:
        before, after = graphs[i], res.train_graphs[i]
        e0, e1 = _edge_set(before), _edge_set(after)
        changed.append(100.0 * len(e0 ^ e1) / max(1, len(e0)))
        d0, d1 = before.in_degrees().float(), after.in_degrees().float()
        moved = (d0 != d1).nonzero().flatten()
        if len(moved):
            deg_change.append(float(((d1 - d0).abs()[moved] / d0[moved].clamp_min(1)).mean()) * 100)
        x_clean.append(before.ndata["feat"].float().sum(0))
        x_trig.append(after.ndata["feat"].float().sum(0))
    rec = {"dataset": dataset, "seed": seed, "trigger_size": run.data["trigger_size"],
           "poisoned": len(idx),
           "mean_degree": float(torch.cat([graphs[i].in_degrees().float() for i in idx]).mean()),
           "edges_changed": statistics.fmean(changed),
           "trigger_degree_change": statistics.fmean(deg_change) if deg_change else 0.0,
           "histogram_separability": separability(torch.stack(x_clean), torch.stack(x_trig))}
    if asr_db is not None:
        rec["backdoored_asr"] = stored_asr(asr_db, run)
    return rec


def table(records: List[Dict[str, object]]) -> str:
    with_asr = any("backdoored_asr" in r for r in records)
    head = ("| dataset | seeds | k | mean degree | edges changed (%) | degree change of the nodes "
            "touched (%) | histogram separability (%, chance 50) |")
    lines = [head + (" backdoored ASR (%) |" if with_asr else ""),
             "|---" * (7 + with_asr) + "|"]
    for ds in dict.fromkeys(r["dataset"] for r in records):
        rows = [r for r in records if r["dataset"] == ds]

        def ms(key: str) -> str:
            vals = [float(r[key]) for r in rows if r.get(key) is not None]
            if not vals:
                return "-"
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            return f"{statistics.fmean(vals):.1f} ± {sd:.1f}"

        line = (f"| {ds} | {len(rows)} | {rows[0]['trigger_size']} | {ms('mean_degree')} | "
                f"{ms('edges_changed')} | {ms('trigger_degree_change')} | "
                f"{ms('histogram_separability')} |")
        lines.append(line + (f" {ms('backdoored_asr')} |" if with_asr else ""))
    return "\n".join(lines)


def per_seed(records: List[Dict[str, object]]) -> List[str]:
    """Separability and stored ASR per dataset and seed (empty without an ASR column)."""
    if not any(r.get("backdoored_asr") is not None for r in records):
        return []
    lines = ["| dataset | seed | histogram separability (%) | backdoored ASR (%) |",
             "|---|---|---|---|"]
    for r in records:
        asr = r.get("backdoored_asr")
        lines.append(f"| {r['dataset']} | {r['seed']} | {r['histogram_separability']:.1f} | "
                     + ("-" if asr is None else f"{asr:.1f}") + " |")
    return lines + [""]


def correlation_lines(records: List[Dict[str, object]]) -> List[str]:
    """Spearman's rho of separability against stored ASR, pooled and per dataset."""
    pairs = [r for r in records if r.get("backdoored_asr") is not None]
    groups = [("all datasets", pairs)] + [
        (ds, [r for r in pairs if r["dataset"] == ds])
        for ds in dict.fromkeys(r["dataset"] for r in pairs)]
    out = []
    for name, rows in groups:
        if len(rows) >= 3:
            rho = spearman([r["histogram_separability"] for r in rows],
                           [r["backdoored_asr"] for r in rows])
            out.append(f"Spearman rho (separability vs backdoored ASR), {name}, "
                       f"{len(rows)} runs: {rho:.2f}")
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["synthetic"])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", type=Path, default=None, help="also write the Markdown page here")
    ap.add_argument("--asr-db", default=None,
                    help="results store whose runs with the same settings give the ASR column")
    args = ap.parse_args(argv)

    import torch

    from dglcleaner.errors import UserError

    torch.set_num_threads(1)
    if args.asr_db is not None and not Path(args.asr_db).is_file():
        print(f"error: --asr-db {args.asr_db!r} is not a results database file", file=sys.stderr)
        return 2
    records = []
    start = time.perf_counter()
    try:
        for ds in args.datasets:
            for seed in range(args.seeds):
                rec = measure(ds, seed, args.data_dir, args.asr_db)
                records.append(rec)
                print(json.dumps(rec))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cmd = "python benchmarks/trigger_visibility.py " + " ".join(
        str(a) for a in (argv if argv is not None else sys.argv[1:]))
    page = "\n".join([
        f"Measured by `{cmd}` ({len(records)} dataset-seed pairs, "
        f"{time.perf_counter() - start:.0f} s). Sub-BA with `defend`'s defaults (5 % poisoned, "
        "trigger ER(k, 0.8), k = max(2, 20 % of the average graph)); the poisoned training "
        "graphs against their clean originals. Separability: 5-fold cross-validated accuracy "
        "of a logistic regression on the summed node features (the degree histogram), "
        "chance 50 %.", "", machine_md(machine()), "", table(records), "",
        *per_seed(records), *("- " + line for line in correlation_lines(records))]) + "\n"
    print()
    print(page)
    if args.out is not None:
        from dglcleaner.io_utils import atomic_write_bytes

        atomic_write_bytes(args.out, page.encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
