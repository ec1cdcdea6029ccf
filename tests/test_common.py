"""The conformance kit (``dglcleaner.testing``) over every installed plugin.

Plugins are found through the registry exactly as the CLI finds them, so adding a plugin (a
built-in one, or a third-party package installed in the environment) adds its tests. Expensive
plugins run with small settings: a plugin's own ``check_params`` if it declares them, else
iteration-like integer parameters (epochs, steps, samples, ...) capped at 2 and the ``random``
explainer where a plugin takes an explainer by name (the contract, not the quality, is tested).
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Tuple

import pytest

from dglcleaner import registry
from dglcleaner.errors import UserError
from dglcleaner.testing import parametrize_with_checks

#: Distributions that exist to be broken (tests/fixtures); never a conformance failure.
EXPECTED_BROKEN = {"dglcleaner-broken-plugin"}

_ITERATIVE = re.compile(r"epoch|iter|step|sample|trial|round|restart|rollout|num_runs")


def fast_params(cls: Any) -> Dict[str, Any]:
    """Small values for iteration-like integer parameters (within their valid range), and
    the cheap ``random`` explainer for plugins that take an explainer by name."""
    out: Dict[str, Any] = {}
    for p in cls.params:
        if p.name == "explainer" and p.type is str and p.default != "random" and (
                not p.choices or "random" in p.choices):
            out[p.name] = "random"
        if p.type is int and isinstance(p.default, int) and _ITERATIVE.search(p.name):
            value = min(p.default, 2)
            if p.low is not None:
                value = max(value, int(p.low) + (1 if p.low_open else 0))
            if value != p.default:
                out[p.name] = value
    return out


def _discovered() -> Tuple[List[Any], List[Tuple[Any, str]]]:
    loaded, failed = [], []
    for spec in registry.discover():
        try:
            loaded.append((spec, registry.load_spec(spec)))
        except UserError as exc:
            failed.append((spec, str(exc)))
    return loaded, failed


LOADED, FAILED = _discovered()


def _tested_plugins() -> List[Any]:
    out = []
    for _, cls in LOADED:
        if getattr(cls, "check_params", None):
            out.append(cls)  # the kit instantiates it with its own check_params
        else:
            params = fast_params(cls)
            out.append(cls(**params) if params else cls)
    return out


def test_builtin_plugins_discovered() -> None:
    names = {(s.kind, s.name) for s, _ in LOADED} | {(s.kind, s.name) for s, _ in FAILED}
    for expected in [("attack", "sub-ba"), ("defense", "none"), ("defense", "finetune")]:
        assert expected in names


@pytest.mark.parametrize("spec, error", FAILED or [pytest.param(None, None, marks=pytest.mark.skip(
    reason="every discovered plugin loads"))], ids=lambda x: getattr(x, "display", None))
def test_plugin_loads(spec: Any, error: str) -> None:
    if spec.dist in EXPECTED_BROKEN:
        pytest.skip(f"{spec.display} is broken on purpose (tests/fixtures)")
    pytest.fail(f"plugin {spec.display} failed to load: {error}")


@parametrize_with_checks(_tested_plugins())
def test_plugin_conforms(plugin: Any, check: Any) -> None:
    check(plugin)


def test_fast_params_stay_in_range() -> None:
    from dglcleaner.params import Param

    class Fake:
        params = (Param("epochs", int, 100, "e", low=5), Param("n_samples", int, 50, "s",
                  low=0, low_open=True), Param("lr", float, 0.1, "lr"),
                  Param("explainer", str, "gnnexplainer", "x"))

    assert fast_params(Fake) == {"epochs": 5, "n_samples": 2, "explainer": "random"}
