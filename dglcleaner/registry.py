"""Plugin discovery through Python entry points (flake8/HTTPie style).

:func:`discover` lists plugins from ``importlib.metadata`` **without importing them** (so
``dglcleaner --help`` and ``list-plugins`` stay fast); :func:`load_plugin` imports exactly one,
checks it against its protocol and plugin-API version, and turns any failure into a
:class:`~dglcleaner.errors.PluginLoadError` naming the distribution that shipped it.
Names resolve case-insensitively (``GTA``, ``gta`` and ``Gta`` are the same plugin); two
distributions registering the same name are refused, naming both.

Set ``DGLCLEANER_DISABLE_PLUGINS=dist1,dist2`` to ignore plugins of those distributions.
"""
from __future__ import annotations

import importlib.metadata as md
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from .api import ENTRY_POINT_GROUPS, KINDS, check_plugin_class
from .errors import PluginLoadError, UserError, unknown_name


@dataclass(frozen=True)
class PluginSpec:
    """A discovered (not yet imported) plugin."""

    kind: str
    name: str
    value: str
    dist: str
    version: str

    @property
    def group(self) -> str:
        return ENTRY_POINT_GROUPS[self.kind]

    @property
    def display(self) -> str:
        return f"{self.dist}[{self.name}]"

    def to_dict(self) -> Dict[str, str]:
        return {
            "kind": self.kind,
            "name": self.name,
            "group": self.group,
            "value": self.value,
            "distribution": self.dist,
            "version": self.version,
        }


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _disabled() -> set:
    raw = os.environ.get("DGLCLEANER_DISABLE_PLUGINS", "")
    return {_normalise(x) for x in raw.split(",") if x.strip()}


def _entry_points(group: str) -> List[Tuple[md.EntryPoint, str, str]]:
    """(entry point, distribution name, version) for a group, sorted for determinism."""
    found = []
    seen = set()
    for dist in md.distributions():
        try:
            eps = dist.entry_points
        except Exception:  # noqa: BLE001 - a broken METADATA must not break discovery
            continue
        dist_name = dist.metadata["Name"] or "unknown"
        for ep in eps:
            if ep.group != group:
                continue
            key = (dist_name, ep.name, ep.value)
            if key in seen:  # the same dist reachable twice on sys.path
                continue
            seen.add(key)
            found.append((ep, dist_name, dist.version or "?"))
    found.sort(key=lambda t: (_normalise(t[0].name), t[1]))
    return found


def discover(kind: Optional[str] = None) -> List[PluginSpec]:
    """All installed plugins of ``kind`` (or of every kind), without importing any of them."""
    kinds = KINDS if kind is None else (kind,)
    disabled = _disabled()
    specs = []
    for k in kinds:
        if k not in ENTRY_POINT_GROUPS:
            raise unknown_name("plugin kind", k, KINDS)
        for ep, dist, version in _entry_points(ENTRY_POINT_GROUPS[k]):
            if _normalise(dist) in disabled:
                continue
            specs.append(PluginSpec(k, ep.name, ep.value, dist, version))
    return specs


def find(kind: str, name: str) -> PluginSpec:
    """Resolve ``name`` (case-insensitive) to one plugin spec of ``kind``.

    Raises :class:`UnknownNameError` with "did you mean" and the valid names, or
    :class:`PluginLoadError` when two distributions register the same name.
    """
    specs = discover(kind)
    matches = [s for s in specs if _normalise(s.name) == _normalise(name)]
    if not matches:
        raise unknown_name(kind, name, sorted({s.name for s in specs}))
    dists = sorted({s.dist for s in matches})
    if len(matches) > 1 and len({(s.dist, s.value) for s in matches}) > 1:
        raise PluginLoadError(
            f"{kind} name {name!r} is registered by more than one distribution "
            f"({' and '.join(dists)}); uninstall one of them or disable it with "
            f"DGLCLEANER_DISABLE_PLUGINS=<distribution>"
        )
    return matches[0]


_CACHE: Dict[Tuple[str, str, str], Any] = {}


def load_spec(spec: PluginSpec) -> Any:
    """Import one plugin and check it against its protocol."""
    key = (spec.kind, spec.dist, spec.value)
    if key in _CACHE:
        return _CACHE[key]
    ep = md.EntryPoint(name=spec.name, value=spec.value, group=spec.group)
    try:
        obj = ep.load()
    except UserError:
        raise
    except BaseException as exc:  # noqa: BLE001 - isolate any plugin failure, SystemExit too
        if isinstance(exc, KeyboardInterrupt):
            raise
        msg = str(exc).splitlines()[0] if str(exc) else ""
        raise PluginLoadError(
            f"plugin {spec.display} ({spec.value}) failed to import: "
            f"{type(exc).__name__}: {msg}; fix or uninstall the distribution {spec.dist!r} "
            f"(or set DGLCLEANER_DISABLE_PLUGINS={spec.dist})"
        ) from None
    check_plugin_class(obj, spec.kind, spec.display)
    if _normalise(getattr(obj, "name", "")) != _normalise(spec.name):
        raise PluginLoadError(
            f"plugin {spec.display} declares name {obj.name!r}, which differs from its "
            f"entry-point name {spec.name!r}"
        )
    _CACHE[key] = obj
    return obj


def load_plugin(kind: str, name: str) -> Any:
    """Import and return the plugin class ``name`` of ``kind`` (``attack``, ``defense``,
    ``explainer``)."""
    return load_spec(find(kind, name))


def make_plugin(kind: str, name: str, params: Optional[Dict[str, Any]] = None,
                preset: Optional[str] = None) -> Any:
    """Load plugin ``name`` and instantiate it with validated ``params``."""
    cls = load_plugin(kind, name)
    kwargs = dict(params or {})
    if preset is not None:
        kwargs["preset"] = preset
    return cls(**kwargs)


def check_all(kind: Optional[str] = None) -> List[Tuple[PluginSpec, Optional[str]]]:
    """Try to load every plugin; ``(spec, None)`` when it loads, ``(spec, error)`` when not.

    One broken plugin never stops the others (HTTPie behaviour).
    """
    out = []
    for spec in discover(kind):
        try:
            load_spec(spec)
            out.append((spec, None))
        except UserError as exc:
            out.append((spec, str(exc)))
    return out
