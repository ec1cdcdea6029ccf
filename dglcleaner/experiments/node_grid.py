"""Label-poisoning grids (``task: node``): one stored row per attack, budget and split.

A grid file for node classification (issue 6's tables) looks like::

    name: lp_cora_ml
    task: node
    datasets: [cora_ml, citeseer]
    models: [gcn]
    attacks: [rnd, {name: sgc-bin, label: SGC-BIN}, {name: lp, preset: official}]
    protocols: [faithful, flawed]          # named protocols (default: faithful)
    budgets: [0.05, 0.1, 0.15, 0.2, 0.3]   # fractions of the labeled nodes
    splits: 10                             # split seeds 0..9, or a list of seeds
    settings: {n_trials: 0, n_folds: 5}    # Protocol fields, for every protocol
    report: {rows: [dataset, attack], columns: budget, metrics: [acc], group: poisoned}

Every (dataset, model, protocol, split) is a *unit*: the data are loaded once and the victim
trained on clean labels is one row of it (attack ``clean``, budget 0), then every attack and
budget. A row's record is ``{"poisoned": {"acc", "val_acc", "flips", "budget_nodes"},
"skipped", "params", "attack_seconds", "attack_info"}`` (accuracy in percent on clean test
labels). A split that the protocol skips (a class with <= 2 poisoned labels, spec A5) is
stored with ``acc`` null, so it is left out of the mean as in the reference.

Each cell is seeded from its split alone (the split seed, stored as the row's ``seed``, for the
split and the attack; ``victim_seed`` 0 for the victim, as the reference resets it), so a row
has the same numbers however the grid ran.
"""
from __future__ import annotations

import itertools
import time
import traceback
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .config import ConfigError, RunSpec, _entries, _hash

#: Valid top-level keys of a node grid.
NODE_KEYS = ("name", "description", "task", "datasets", "models", "attacks", "protocols",
             "budgets", "splits", "settings", "report", "plot", "paper")
#: Cell fields stored under the record's ``poisoned`` group (the report's metrics).
_POISONED = ("acc", "val_acc", "flips", "budget_nodes")
DEFAULT_REPORT = {"rows": ["dataset", "attack"], "columns": "budget", "metrics": ["acc"],
                  "group": "poisoned", "over": "splits"}


def is_node_grid(doc: Mapping[str, Any]) -> bool:
    task = doc.get("task", "graph")
    if task not in ("graph", "node"):
        raise ConfigError(f"task must be graph (backdoor grids) or node (label poisoning); got "
                          f"{task!r}")
    return task == "node"


def _splits(doc: Mapping[str, Any]) -> List[int]:
    raw = doc.get("splits", 10)
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 1:
        return list(range(raw))
    if (isinstance(raw, list) and raw
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in raw)):
        return list(dict.fromkeys(raw))
    raise ConfigError(f"splits must be a count >= 1 or a non-empty list of split seeds >= 0; got "
                      f"{raw!r}")


def _budgets(doc: Mapping[str, Any]) -> List[float]:
    raw = doc.get("budgets", [0.1])
    raw = raw if isinstance(raw, list) else [raw]
    out = []
    for b in raw:
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not 0.0 < float(b) <= 1.0:
            raise ConfigError(f"budgets must be fractions of the labeled nodes in (0, 1]; got "
                              f"{b!r}")
        out.append(float(b))
    if not out:
        raise ConfigError("budgets must not be empty")
    return list(dict.fromkeys(out))


def _protocol(entry: Dict[str, Any], settings: Dict[str, Any]):
    from dataclasses import fields

    from ..node.protocol import Protocol, get_protocol

    valid = {f.name for f in fields(Protocol)} - {"name"}
    over = dict(settings, **(entry.get("params") or {}))
    unknown = sorted(set(over) - valid)
    if unknown:
        raise ConfigError(f"unknown protocol setting(s) {', '.join(map(repr, unknown))}; valid: "
                          f"{', '.join(sorted(valid))}")
    try:
        return get_protocol(str(entry["name"]), **over)
    except TypeError as exc:
        raise ConfigError(f"invalid protocol settings: {exc}") from None


def expand_node(doc: Mapping[str, Any], grid_name: str = "grid") -> List[RunSpec]:
    """All runs of a node grid, unit by unit (clean row first, then attacks x budgets)."""
    from ..data.npz import NPZ_DATASETS
    from ..errors import unknown_name
    from ..node.models import MODELS
    from ..registry import find, load_spec

    unknown = sorted(set(doc) - set(NODE_KEYS))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(map(repr, unknown))} in a node grid; valid "
                          f"keys: {', '.join(NODE_KEYS)}")
    settings = doc.get("settings") or {}
    if not isinstance(settings, dict):
        raise ConfigError(f"'settings' must be a mapping of protocol fields; got {settings!r}")
    datasets = _entries(doc, "datasets", ["cora_ml"])
    models = _entries(doc, "models", ["gcn"])
    attacks = _entries(doc, "attacks", ["rnd"])
    protocols = _entries(doc, "protocols", ["faithful"])
    budgets, splits = _budgets(doc), _splits(doc)
    for d in datasets:
        if str(d["name"]) not in NPZ_DATASETS:
            raise unknown_name("node dataset", str(d["name"]), NPZ_DATASETS)
    for m in models:
        if str(m["name"]).lower().replace("_", "-") not in MODELS:
            raise unknown_name("node model", str(m["name"]), MODELS)
    for a in attacks:
        if getattr(load_spec(find("attack", str(a["name"]))), "task", None) != "node":
            raise ConfigError(f"attack {a['name']!r} is a graph backdoor attack; a node grid "
                              f"takes label-poisoning attacks")
    for key, entries, allowed in (("datasets", datasets, {"name", "label"}),
                                  ("models", models, {"name", "label"}),
                                  ("attacks", attacks, {"name", "label", "params", "preset"}),
                                  ("protocols", protocols, {"name", "label", "params"})):
        for e in entries:
            extra = sorted(set(e) - allowed)
            if extra:
                raise ConfigError(f"entry {e['name']!r} of {key!r} in a node grid has field(s) "
                                  f"{', '.join(extra)} it does not use; valid: "
                                  f"{', '.join(sorted(allowed))}")
    protos = [(p, _protocol(p, settings)) for p in protocols]

    runs: List[RunSpec] = []
    for ds, mdl, (pent, proto), split in itertools.product(datasets, models, protos, splits):
        base = {"task": "node", "dataset": str(ds["name"]),
                "model": str(mdl["name"]).lower().replace("_", "-"),
                "protocol": proto.to_dict(), "split": int(split), "seed": int(split),
                "victim_seed": 0}
        unit_key = _hash(base)
        axes_base = {"dataset": ds.get("label") or ds["name"],
                     "model": mdl.get("label") or mdl["name"],
                     "protocol": pent.get("label") or pent["name"]}
        cells = [(None, 0.0)] + [(a, b) for a in attacks for b in budgets]
        for atk, budget in cells:
            cfg = dict(base, attack=None if atk is None else str(atk["name"]),
                       attack_params=dict((atk or {}).get("params") or {}),
                       attack_preset=(atk or {}).get("preset"), budget=budget)
            axes = dict(axes_base, attack="clean" if atk is None else (atk.get("label")
                                                                      or atk["name"]),
                        budget=budget, seed=int(split))
            key = _hash(cfg)
            runs.append(RunSpec(key=key, config=cfg, axes=axes, unit_key=unit_key,
                                group_key=key, grid=grid_name, attack_key=key))
    return runs


def run_node_unit(unit: Sequence[Sequence[RunSpec]], db_path: str, *, device: str = "auto",
                  data_dir: Optional[str] = None, emit: Any = None) -> None:
    """Run one unit (dataset, model, protocol, split) of a node grid; one row per run."""
    from ..data.npz import load_npz_dataset
    from ..node.protocol import get_protocol
    from ..node.runner import NodeSetup
    from ..registry import load_plugin
    from ..runner import versions
    from ..seeding import resolve_device
    from .grid import _error_text, git_commit
    from .store import Store

    emit = emit or (lambda kind, key, payload: None)
    specs = [spec for group in unit for spec in group]
    first = specs[0].config
    vers, commit = versions(), git_commit()
    setup = split = None
    unit_error: Optional[str] = None
    dev = None
    t_setup = time.perf_counter()
    try:
        dev = resolve_device(device)
        proto_d = dict(first["protocol"])
        proto = get_protocol(proto_d.pop("name"), **proto_d)
        setup = NodeSetup(load_npz_dataset(first["dataset"], data_dir=data_dir), first["model"],
                          dev)
        split = setup.split(proto, first["split"])
    except Exception as exc:  # noqa: BLE001 - every run of the unit is stored as failed
        unit_error = _error_text(exc, "loading the data")
    setup_s = time.perf_counter() - t_setup
    with Store(db_path) as store:
        for i, spec in enumerate(specs):
            cfg = spec.config
            emit("start", spec.key, {"run": spec.describe(), "axes": spec.axes})
            t0 = time.perf_counter()
            error, rec = unit_error, {}
            if error is None:
                try:
                    if cfg["attack"] is None:
                        cell = setup.clean_cell(proto, split, cfg["victim_seed"])
                    else:
                        emit("stage", spec.key, {"stage": "attack"})
                        plugin = load_plugin("attack", cfg["attack"])(
                            preset=cfg["attack_preset"], **cfg["attack_params"])
                        cell = setup.attack_cell(plugin, proto, split, cfg["split"],
                                                 cfg["budget"], cfg["victim_seed"])
                    rec = {k: v for k, v in cell.items() if k not in _POISONED}
                    rec["poisoned"] = {k: cell.get(k) for k in _POISONED}
                except Exception as exc:  # noqa: BLE001 - recorded, the grid goes on
                    error = _error_text(exc, "attack" if cfg["attack"] else "clean victim")
                    rec = {"traceback": traceback.format_exc(limit=-3)}
            elapsed = time.perf_counter() - t0 + (setup_s if i == 0 else 0.0)
            status = "ok" if error is None else "failed"
            store.put(key=spec.key, grid=spec.grid, seed=spec.seed, axes=spec.axes, config=cfg,
                      status=status, error=error, record=rec,
                      timings={"attack": rec.get("attack_seconds") or 0.0},
                      elapsed_s=round(elapsed, 4), versions=vers, git_commit=commit,
                      device=str(dev) if dev is not None else device)
            emit("done", spec.key, {"status": status, "error": error, "elapsed": elapsed,
                                    "run": spec.describe(), "axes": spec.axes})
