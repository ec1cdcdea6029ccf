"""``dglcleaner attack``: label poisoning for node classification under a named protocol.

Example::

    dglcleaner attack --task node --attack sgc-bin --dataset cora_ml --budget 0.1 --model gcn

Flips ``ceil(budget * |labeled|)`` labels, evaluates the victim under the protocol (default:
the faithful one of Lingam et al., ICLR 2024) on ``--splits`` random splits and prints clean vs
poisoned test accuracy (mean ± std, %). ``--json`` writes schema ``dglcleaner.node-attack/1``.
"""
from __future__ import annotations

import time
from typing import Any, Dict, Optional, Tuple

import click

from ..errors import ParameterError, UserError

SCHEMA = "dglcleaner.node-attack/1"


def _load_attack(name: str, params: Dict[str, Any], preset: Optional[str]) -> Any:
    from ..registry import load_plugin

    cls = load_plugin("attack", name)
    if getattr(cls, "task", None) != "node":
        raise UserError(f"attack {name!r} is a graph-classification attack; with --task node use a "
                        "label-poisoning attack (rnd, rnd-bin, deg, deg-bin, lp, lafak, mg, meta, sgc, "
                        "sgc-bin, ntk, ntk-bin), or use `dglcleaner defend` for graph attacks")
    return cls(preset=preset, **params)


def run_attack(task: str, attack: str, dataset: str, budget: float, model: str, splits: int,
               seed: int, protocol: str, device: str, data_dir: Optional[str],
               params: Dict[str, Any], preset: Optional[str] = None, trials: Optional[int] = None,
               epochs: Optional[int] = None, progress: Any = None) -> Dict[str, Any]:
    """Validate the inputs, run :func:`~dglcleaner.node.runner.run_label_poisoning`, and build
    the JSON document."""
    if task != "node":
        raise UserError(f"--task {task!r} is not supported by `attack`; valid: node "
                        "(graph backdoor attacks run through `dglcleaner defend`)")
    if not (0.0 < budget <= 1.0):
        raise ParameterError(f"--budget must be a fraction of labeled nodes in (0, 1]; got {budget}")
    if splits < 1:
        raise ParameterError(f"--splits must be >= 1; got {splits}")
    if trials is not None and trials < 0:
        raise ParameterError(f"--trials must be >= 0; got {trials}")
    if epochs is not None and epochs < 1:
        raise ParameterError(f"--epochs must be >= 1; got {epochs}")
    from ..node.models import MODELS
    from ..node.protocol import get_protocol
    from ..errors import unknown_name

    if model.lower().replace("_", "-") not in MODELS:
        raise unknown_name("node model", model, MODELS)
    overrides: Dict[str, Any] = {} if trials is None else {"n_trials": trials}
    if epochs is not None:
        overrides.update(epochs=epochs, patience=min(100, max(1, epochs // 5)))
    proto = get_protocol(protocol, **overrides)
    plugin = _load_attack(attack, params, preset)

    from ..data.npz import load_npz_dataset
    from ..node.runner import run_label_poisoning
    from ..runner import versions
    from ..seeding import resolve_device

    dev = resolve_device(device)
    data = load_npz_dataset(dataset, data_dir=data_dir)
    t0 = time.perf_counter()
    out = run_label_poisoning(data, plugin, model=model.lower().replace("_", "-"), budgets=[budget],
                              splits=splits, protocol=proto, seed=seed, device=dev, progress=progress)
    config = {"task": task, "attack": plugin.name, "attack_params": plugin.get_params(),
              "preset": preset, "dataset": dataset, "num_nodes": data.num_nodes,
              "num_classes": data.num_classes, "budget": budget, "model": model, "splits": splits,
              "seed": seed, "protocol": proto.to_dict(), "device": str(dev)}
    return {"schema": SCHEMA, "summary": out["summary"], "runs": out["runs"], "config": config,
            "versions": versions(), "seconds": round(time.perf_counter() - t0, 2)}


def _print(doc: Dict[str, Any], json_path: Optional[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    def fmt(ms):
        if not ms or ms.get("n", 0) == 0:
            return "-"
        return f"{ms['mean']:.2f} ± {ms['std']:.2f}"

    cfg, s = doc["config"], doc["summary"]
    table = Table(title=f"{cfg['dataset']} · {cfg['model']} · {cfg['attack']} · budget "
                        f"{cfg['budget']:g} · protocol {cfg['protocol']['name']} (test acc %, mean ± std)")
    for col in ("labels", "accuracy", "splits used"):
        table.add_column(col, justify="left" if col == "labels" else "right")
    table.add_row("clean", fmt(s["clean"]["acc"]), str(s["clean"]["acc"]["n"]))
    table.add_row("poisoned", fmt(s["poisoned"]["acc"]), str(s["poisoned"]["acc"]["n"]))
    console = Console()
    console.print(table)
    flips = [r["flips"] for r in doc["runs"] if r["budget"]]
    if flips:
        console.print(f"labels flipped per split: {min(flips)}-{max(flips)}; total {doc['seconds']:.1f} s")
    if json_path:
        console.print(f"results written to {json_path}")


@click.command("attack")
@click.option("--task", default="node", show_default=True, help="node (label poisoning).")
@click.option("--attack", required=True, help="Label-poisoning attack plugin, e.g. sgc-bin.")
@click.option("--dataset", default="cora_ml", show_default=True, help="cora_ml, citeseer, cora, pubmed.")
@click.option("--budget", default=0.1, show_default=True, type=float,
              help="Fraction of labeled (train+val) nodes whose label is flipped, in (0, 1].")
@click.option("--model", default="gcn", show_default=True,
              help="Victim: mlp, gcn, gat, appnp, gcn-jknet, cpgcn.")
@click.option("--splits", default=10, show_default=True, type=int, help="Number of random splits.")
@click.option("--seed", default=0, show_default=True, type=int, help="First split seed.")
@click.option("--protocol", default="faithful", show_default=True,
              help="faithful, flawed, flawed-large-val, flawed-class-equal, flawed-no-tuning, flawed-clean-val.")
@click.option("--trials", default=None, type=int, help="Override the tuning trials (0 = defaults only).")
@click.option("--epochs", default=None, type=int,
              help="Override the victim's max epochs (1000; early-stopping window becomes epochs/5).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda or auto.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder with <name>/<name>.npz (else $DGLCLEANER_DATA_DIR, cache, download).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Attack parameter (repeatable).")
@click.option("--preset", default=None, help="Attack preset, e.g. official.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help=f"Write the results (schema {SCHEMA}) to this file.")
@click.option("--quiet", is_flag=True, help="No progress display.")
def attack_cmd(task: str, attack: str, dataset: str, budget: float, model: str, splits: int,
               seed: int, protocol: str, trials: Optional[int], epochs: Optional[int],
               device: str, data_dir: Optional[str], params: Tuple[str, ...],
               preset: Optional[str], json_path: Optional[str], quiet: bool) -> None:
    """Poison node labels with an attack and report clean vs poisoned victim accuracy."""
    from ..params import parse_assignments
    from .main import set_threads

    set_threads(None)  # $OMP_NUM_THREADS, else 1 (see `defend --threads`)

    kwargs = dict(task=task, attack=attack, dataset=dataset, budget=budget, model=model,
                  splits=splits, seed=seed, protocol=protocol, device=device, data_dir=data_dir,
                  params=parse_assignments(params), preset=preset, trials=trials,
                  epochs=epochs)
    if quiet:
        doc = run_attack(**kwargs)
    else:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        console = Console(stderr=True)
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                      TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                      console=console, transient=not console.is_terminal) as bar:
            t = bar.add_task("loading", total=None)

            def cb(msg: str, done: int, total: int) -> None:
                bar.update(t, description=msg, completed=done, total=total)

            doc = run_attack(**kwargs, progress=cb)
    if json_path:
        from ..io_utils import atomic_write_json

        atomic_write_json(json_path, doc)
    _print(doc, json_path)
