"""Experiment grids: load a YAML/TOML file, apply ``--set`` overrides, expand into runs.

A grid file names the axes; every combination becomes one run (one seed of one defense)::

    name: table3
    datasets: [AIDS, Bitcoin]            # or {name: Fingerprint, label: ..., options: {...}}
    models: [gin]
    attacks: [sub-ba, {name: gta, label: GTA, params: {...}, preset: official}]
    defenses: [{name: none, label: Before}, abl, gcleaner]
    seeds: 5                             # or an explicit list [0, 3, 7]
    settings: {injection_ratio: 0.05, holding_ratio: 0.03, train: {epochs: 40}}
    sweep: {injection_ratio: [0.01, 0.03]}   # DefendConfig fields (train.X for TrainConfig),
                                             # e.g. adaptive_alpha: [0, 0.5, 1] (Fig. 9)
    # an attack or defense entry may carry its own `sweep:` over its plugin parameters
    record: {confusion: true}            # extra per-run data (confusion matrices, Fig. 5);
                                         # recovery: false turns off the recovered-trigger
                                         # metrics (Table 4; on by default, cheap); options
                                         # set true are part of the run key
    report: {rows: [dataset, attack], columns: defense, metrics: [asr, acc]}
    plot: {kind: curve, x: injection_ratio, hue: defense}
    paper:
      source: GCleaner paper, Table 3
      values: [{dataset: AIDS, attack: Sub-BA, defense: Before, asr: 95.84, acc: 97.14}]

Each run has *axes* (dataset, model, attack and defense labels, sweep values, seed) used by
reports and plots, and a *key*: a hash of its full canonical :class:`DefendConfig` (defaults
filled in, device and data folder left out) and seed. A run whose key is already stored as
``ok`` is skipped when a grid is started again.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..errors import UserError

TOP_KEYS = ("name", "description", "task", "datasets", "models", "attacks", "defenses",
            "seeds", "settings", "sweep", "record", "report", "plot", "paper")
#: Run fields set by the axes, not by ``settings``.
AXIS_FIELDS = ("dataset", "model", "attack", "defense", "attack_params", "defense_params",
               "attack_preset", "defense_preset", "seed", "seeds", "device", "data_dir")
#: Fields that only the attack stage reads (the data and the clean model do not depend on them).
#: ``adaptive_alpha`` (the adaptive attack of the paper's Sec. 5.2.6) changes only how the
#: backdoored model is trained, so it belongs here too: every alpha shares the clean model.
ATTACK_FIELDS = ("attack", "attack_params", "attack_preset", "injection_ratio", "adaptive_alpha")
#: Fields the backdoored-model training reads but the attack itself does not: runs that differ
#: only in these share the attack result (poisoned set and trigger) as well, unless the attack
#: trains its own backdoored model (GTA applies alpha inside its bi-level loop).
BACKDOOR_TRAINING_FIELDS = ("adaptive_alpha",)
#: Fields that change only the holding and evaluation sets, never what the models train on:
#: the split draws train/test first and the holding set from test afterwards
#: (:func:`~dglcleaner.data.splits.split_dataset`), so runs that differ only in these share
#: the clean model, the attack result and the backdoored model (not the data stage).
EVAL_FIELDS = ("holding_ratio",)
#: Fields the data stage reads but the clean model does not (the holding and evaluation sets,
#: the trigger size derived from the dataset): runs differing only in these recompute the data
#: stage and share the clean model.
DATA_STAGE_FIELDS = EVAL_FIELDS + ("trigger_size", "trigger_fraction")
DEFENSE_FIELDS = ("defense", "defense_params", "defense_preset")
#: Left out of the run key: they say where a run happens, not what it computes.
UNKEYED_FIELDS = ("device", "data_dir", "seeds")


class ConfigError(UserError):
    """A grid file that cannot be read or names something that does not exist."""


@dataclass
class RunSpec:
    """One run of a grid: a full config, its axes and the keys used to share work."""

    key: str
    config: Dict[str, Any]          # DefendConfig.to_dict() without the unkeyed fields
    axes: Dict[str, Any]
    unit_key: str                   # clean model: shared by every attack, defense, holding
    group_key: str                  # + data stage + attack: shared by every defense
    grid: str = ""
    attack_key: str = ""            # + attack result (not its model): shared across alphas
    data_key: str = ""              # unit + holding set and trigger size: the data stage
    model_key: str = ""             # group minus holding: attack and backdoored model

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    def describe(self) -> str:
        skip = {"seed"}
        parts = [f"{v}" for k, v in self.axes.items() if k not in skip]
        return " · ".join(parts) + f" · seed {self.seed}"


@dataclass
class Grid:
    """A loaded grid file (after overrides); :meth:`expand` lists its runs."""

    name: str
    doc: Dict[str, Any]
    path: Optional[str] = None
    runs: List[RunSpec] = field(default_factory=list)

    @property
    def report(self) -> Dict[str, Any]:
        return dict(self.doc.get("report") or {})

    @property
    def plot(self) -> Dict[str, Any]:
        return dict(self.doc.get("plot") or {})

    @property
    def paper(self) -> Dict[str, Any]:
        return dict(self.doc.get("paper") or {})

    @property
    def record_options(self) -> Dict[str, Any]:
        return dict(self.doc.get("record") or {})


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------
def read_document(path: str | os.PathLike) -> Dict[str, Any]:
    """Parse a YAML (``.yaml``/``.yml``) or TOML (``.toml``) grid file into a dict."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"grid file {str(p)!r} does not exist; give a .yaml, .yml or .toml file")
    text = p.read_text(encoding="utf-8")
    suffix = p.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            doc = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            doc = yaml.safe_load(text)
        else:
            raise ConfigError(f"grid file {p.name!r} has suffix {suffix!r}; valid: .yaml, .yml, "
                              f".toml")
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - parser errors become one line
        msg = " ".join(str(exc).split())
        raise ConfigError(f"cannot parse {p.name}: {msg}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{p.name} must hold a mapping at the top level (keys: "
                          f"{', '.join(TOP_KEYS)})")
    return doc


def parse_value(text: str) -> Any:
    """A ``--set`` value: YAML scalar/list syntax (``5``, ``0.1``, ``[AIDS, NCI1]``, ``null``)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except Exception:  # noqa: BLE001 - keep it as a plain string
        return text


def apply_overrides(doc: Dict[str, Any], assignments: Sequence[str],
                    top_keys: Sequence[str] = TOP_KEYS) -> Dict[str, Any]:
    """Return a copy of ``doc`` with ``key.sub=value`` assignments applied (dotted paths)."""
    out = copy.deepcopy(doc)
    for item in assignments:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value (e.g. seeds=2 or settings.train.epochs=5); "
                              f"got {item!r}")
        path, raw = item.split("=", 1)
        keys = [k for k in path.strip().split(".") if k]
        if not keys:
            raise ConfigError(f"--set expects key=value; got {item!r}")
        if keys[0] not in top_keys:
            raise ConfigError(f"--set {path!r}: unknown top-level key {keys[0]!r}; valid: "
                              f"{', '.join(top_keys)}")
        node = out
        for k in keys[:-1]:
            nxt = node.get(k)
            if not isinstance(nxt, dict):
                nxt = {}
                node[k] = nxt
            node = nxt
        node[keys[-1]] = parse_value(raw.strip())
    return out


def load_grid(path: str | os.PathLike | None = None, overrides: Sequence[str] = (),
              doc: Optional[Dict[str, Any]] = None) -> Grid:
    """Load a grid from ``path`` (or an in-memory ``doc``), apply overrides and expand it."""
    if doc is None:
        if path is None:
            raise ConfigError("give a grid file or a document")
        doc = read_document(path)
    from .node_grid import DEFAULT_REPORT, NODE_KEYS, expand_node, is_node_grid

    node = is_node_grid(doc)
    doc = apply_overrides(doc, overrides, NODE_KEYS if node else TOP_KEYS)
    name = str(doc.get("name") or (Path(path).stem if path else "grid"))
    if node:
        doc["report"] = {**DEFAULT_REPORT, **(doc.get("report") or {})}
        grid = Grid(name=name, doc=doc, path=str(path) if path else None)
        grid.runs = expand_node(doc, name)
        return grid
    unknown = sorted(set(doc) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"unknown grid key(s) {', '.join(map(repr, unknown))}; valid keys: "
                          f"{', '.join(TOP_KEYS)}")
    grid = Grid(name=name, doc=doc, path=str(path) if path else None)
    grid.runs = expand(doc, name)
    return grid


# ---------------------------------------------------------------------------------------------
# Expansion
# ---------------------------------------------------------------------------------------------
def _entries(doc: Mapping[str, Any], key: str, default: List[Any]) -> List[Dict[str, Any]]:
    """Normalise an axis list: strings become ``{name: ...}`` dicts."""
    raw = doc.get(key, default)
    if raw is None:
        raw = default
    if isinstance(raw, (str, dict)):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{key!r} must be a non-empty list of names or mappings; got {raw!r}")
    out = []
    allowed = {"name", "label", "params", "preset", "sweep", "options"}
    for item in raw:
        if item is None:
            item = {"name": None}
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or "name" not in item:
            raise ConfigError(f"each entry of {key!r} must be a name or a mapping with 'name'; "
                              f"got {item!r}")
        extra = set(item) - allowed
        if extra:
            raise ConfigError(f"entry {item.get('name')!r} of {key!r} has unknown field(s) "
                              f"{', '.join(sorted(extra))}; valid: {', '.join(sorted(allowed))}")
        out.append(dict(item))
    return out


def _seeds(doc: Mapping[str, Any]) -> List[int]:
    raw = doc.get("seeds", 1)
    if isinstance(raw, bool):
        raise ConfigError(f"seeds must be a count or a list of integers; got {raw!r}")
    if isinstance(raw, int):
        if raw < 1:
            raise ConfigError(f"seeds must be >= 1; got {raw}")
        return list(range(raw))
    if isinstance(raw, list) and raw and all(isinstance(s, int) and not isinstance(s, bool)
                                             for s in raw):
        return list(dict.fromkeys(raw))
    raise ConfigError(f"seeds must be a count or a non-empty list of integers; got {raw!r}")


def _sweep_points(sweep: Any, where: str) -> List[Dict[str, Any]]:
    """Cross product of a ``{key: [values]}`` mapping, as a list of ``{key: value}``."""
    if not sweep:
        return [{}]
    if not isinstance(sweep, dict):
        raise ConfigError(f"{where} sweep must map names to lists of values; got {sweep!r}")
    keys = list(sweep)
    lists = []
    for k in keys:
        vals = sweep[k] if isinstance(sweep[k], list) else [sweep[k]]
        if not vals:
            raise ConfigError(f"{where} sweep {k!r} has no values")
        lists.append(vals)
    return [dict(zip(keys, combo)) for combo in itertools.product(*lists)]


def _settings_fields() -> Tuple[set, set]:
    from ..runner import DefendConfig
    from ..training import TrainConfig

    run_fields = {f.name for f in fields(DefendConfig)} - set(AXIS_FIELDS) - {"train"}
    return run_fields, {f.name for f in fields(TrainConfig)}


def _set_setting(cfg: Dict[str, Any], key: str, value: Any, run_fields: set, train_fields: set,
                 where: str) -> None:
    if key.startswith("train."):
        sub = key.split(".", 1)[1]
        if sub not in train_fields:
            raise ConfigError(f"{where}: unknown training setting {sub!r}; valid: "
                              f"{', '.join(sorted(train_fields))}")
        cfg.setdefault("train", {})[sub] = value
        return
    if key == "train":
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: 'train' must be a mapping of {', '.join(sorted(train_fields))}")
        for k, v in value.items():
            _set_setting(cfg, f"train.{k}", v, run_fields, train_fields, where)
        return
    if key not in run_fields:
        raise ConfigError(f"{where}: unknown setting {key!r}; valid: "
                          f"{', '.join(sorted(run_fields | {'train'}))}")
    cfg[key] = value


def build_defend_config(cfg: Dict[str, Any]):
    """A validated :class:`~dglcleaner.runner.DefendConfig` from a plain dict."""
    from ..runner import DefendConfig
    from ..training import TrainConfig

    d = dict(cfg)
    train = TrainConfig(**(d.pop("train", None) or {}))
    try:
        out = DefendConfig(train=train, **d)
    except TypeError as exc:
        raise ConfigError(f"invalid run settings: {exc}") from None
    out.validate()
    return out


def _hash(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def canonical(cfg_obj) -> Dict[str, Any]:
    """The keyed part of a DefendConfig (what determines the numbers)."""
    d = cfg_obj.to_dict()
    for k in UNKEYED_FIELDS:
        d.pop(k, None)
    return d


def expand(doc: Mapping[str, Any], grid_name: str = "grid") -> List[RunSpec]:
    """All runs of a grid document, in a stable order (datasets, models, attacks, sweep,
    seeds, defenses innermost so that runs sharing a backdoored model are adjacent)."""
    run_fields, train_fields = _settings_fields()
    base: Dict[str, Any] = {}
    settings = doc.get("settings") or {}
    if not isinstance(settings, dict):
        raise ConfigError(f"'settings' must be a mapping; got {settings!r}")
    for k, v in settings.items():
        _set_setting(base, k, v, run_fields, train_fields, "settings")
    datasets = _entries(doc, "datasets", ["synthetic"])
    models = _entries(doc, "models", ["gin"])
    attacks = _entries(doc, "attacks", ["sub-ba"])
    defenses = _entries(doc, "defenses", ["none"])
    seeds = _seeds(doc)
    global_points = _sweep_points(doc.get("sweep"), "top-level")
    _check_names(datasets, models, attacks, defenses)
    # Extra per-run data (record: {confusion: true}) is part of the run's key: a run stored
    # without it (say by Table 3, same configuration) must not count as this grid's run.
    extra = {k: v for k, v in sorted((doc.get("record") or {}).items()) if v}

    runs: List[RunSpec] = []
    seen: Dict[str, RunSpec] = {}
    for ds, mdl, atk, point in itertools.product(datasets, models, attacks, global_points):
        for apoint in _sweep_points(atk.get("sweep"), f"attack {atk['name']!r}"):
            for seed in seeds:
                for dfn in defenses:
                    for dpoint in _sweep_points(dfn.get("sweep"), f"defense {dfn['name']!r}"):
                        spec = _one_run(grid_name, base, ds, mdl, atk, dfn, point, apoint, dpoint,
                                        seed, run_fields, train_fields)
                        if extra:
                            spec.key = _hash({"run": spec.config, "record": extra})
                        if spec.key in seen:  # the same run listed twice: keep one
                            continue
                        seen[spec.key] = spec
                        runs.append(spec)
    return runs


def _one_run(grid_name, base, ds, mdl, atk, dfn, point, apoint, dpoint, seed, run_fields,
             train_fields) -> RunSpec:
    cfg = copy.deepcopy(base)
    for k, v in point.items():
        _set_setting(cfg, k, v, run_fields, train_fields, "sweep")
    attack = atk["name"]
    if isinstance(attack, str) and attack.lower() == "none":
        attack = None
    cfg.update(
        dataset=ds["name"], dataset_options=dict(ds.get("options") or {}, **cfg.get(
            "dataset_options", {})),
        model=mdl["name"], attack=attack,
        attack_params=dict(atk.get("params") or {}, **apoint), attack_preset=atk.get("preset"),
        defense=dfn["name"], defense_params=dict(dfn.get("params") or {}, **dpoint),
        defense_preset=dfn.get("preset"), seed=int(seed), seeds=1)
    obj = build_defend_config(cfg)
    canon = canonical(obj)
    axes: Dict[str, Any] = {
        "dataset": ds.get("label") or ds["name"],
        "model": mdl.get("label") or mdl["name"],
        "attack": atk.get("label") or (attack or "none"),
        "defense": dfn.get("label") or dfn["name"],
    }
    axes.update(point)
    axes.update({f"attack.{k}": v for k, v in apoint.items()})
    axes.update({f"defense.{k}": v for k, v in dpoint.items()})
    axes["seed"] = int(seed)
    data = {k: v for k, v in canon.items() if k not in ATTACK_FIELDS + DEFENSE_FIELDS}
    unit = {k: v for k, v in data.items() if k not in DATA_STAGE_FIELDS}
    group = {k: v for k, v in canon.items() if k not in DEFENSE_FIELDS}
    attack = {k: v for k, v in group.items() if k not in BACKDOOR_TRAINING_FIELDS}
    model = {k: v for k, v in group.items() if k not in EVAL_FIELDS}
    return RunSpec(key=_hash(canon), config=canon, axes=axes, unit_key=_hash(unit),
                   group_key=_hash(group), grid=grid_name, attack_key=_hash(attack),
                   data_key=_hash(data), model_key=_hash(model))


def _check_names(datasets, models, attacks, defenses) -> None:
    """Fail in milliseconds on a typo in a dataset, model or plugin name (before training)."""
    from ..data.catalog import canonical_name
    from ..models import model_class
    from ..registry import find

    for d in datasets:
        canonical_name(str(d["name"]))
    for m in models:
        model_class(str(m["name"]))
    for a in attacks:
        if a["name"] is not None and str(a["name"]).lower() != "none":
            find("attack", str(a["name"]))
    for d in defenses:
        find("defense", str(d["name"]))


def group_runs(runs: Sequence[RunSpec]) -> List[List[List[RunSpec]]]:
    """Nest runs as units (shared clean model) of groups (shared data split and attack),
    keeping first-appearance order."""
    units: Dict[str, Dict[str, List[RunSpec]]] = {}
    for r in runs:
        units.setdefault(r.unit_key, {}).setdefault(r.group_key, []).append(r)
    return [list(groups.values()) for groups in units.values()]
