"""Conformance kit for dglcleaner plugins (in the spirit of scikit-learn's
``parametrize_with_checks``).

A plugin author runs the same contract tests that dglcleaner runs on its built-in plugins::

    from dglcleaner.testing import parametrize_with_checks
    from my_package import MyDefense

    @parametrize_with_checks([MyDefense, MyDefense(epochs=2)])
    def test_dglcleaner_contract(plugin, check):
        check(plugin)

or, without pytest parametrisation, ``check_defense(MyDefense)`` (likewise
:func:`check_attack`, :func:`check_explainer`, or :func:`check_plugin` for any kind), which
runs every check and raises ``AssertionError`` at the first failure.

What is checked, on the embedded synthetic dataset with a small GIN (seconds on a CPU):

* every plugin: metadata present and typed (name, kind, task, one-line summary, paper,
  ``Param`` tuple with valid defaults and help texts, threat model), the plugin API version,
  a docstring, and parameter validation (wrong types, out-of-range values, unknown names and
  unknown presets raise :class:`~dglcleaner.errors.ParameterError`);
* attacks: result types and sizes, poisoned labels, features on every graph, a
  JSON-serialisable trigger, ``apply_trigger`` output; input graphs and labels not mutated;
  the same seed gives the same result. Node-task (label-poisoning) attacks get the node
  versions: budget respected, only labeled nodes flipped, ``flipped_idx`` consistent;
* defenses: a ``DefenseResult`` whose model/transform/predict evaluate; ``flagged`` valid;
  the threat model respected (the runner hands ``None`` for excluded fields and the defense
  never reads them: the kit's context raises ``ThreatModelViolation`` if it does); neither
  the model nor any graph mutated; seeded;
* explainers: one finite non-negative score per node with and without a target; model
  (weights, mode, ``requires_grad``) and graph unchanged; seeded.

A plugin class may declare ``check_params = {"epochs": 2}``: parameters the kit uses when it
is given the class (so expensive plugins stay fast under test). Pass ``device="cuda"`` to run
the checks on a GPU.
"""
from __future__ import annotations

from typing import Any, Iterable, List, Optional

from ._bench import Bench, get_bench, make_node_problem
from ._checks import (COMMON_CHECKS, KIND_CHECKS, Check, check_api_version,
                      check_attack_no_mutation, check_attack_output, check_attack_seeded,
                      check_defense_no_mutation, check_defense_output, check_defense_seeded,
                      check_defense_threat_model, check_docstring, check_explainer_no_mutation,
                      check_explainer_output, check_explainer_seeded, check_metadata,
                      check_params_validated, check_settings_hook, plugin_class,
                      plugin_instance, yield_checks)
from ._guard import GuardedDefenseContext, ThreatModelViolation, excluded_fields


def _run_all(plugin: Any, kind: Optional[str], device: Optional[str]) -> None:
    import unittest

    got = getattr(plugin_class(plugin), "kind", None)
    if kind is not None and got != kind:
        raise AssertionError(f"{plugin_class(plugin).__name__} is a {got!r} plugin, not {kind}")
    for check in yield_checks(plugin, device):
        try:
            check(plugin)
        except unittest.SkipTest:
            continue


def check_plugin(plugin: Any, device: Optional[str] = None) -> None:
    """Run every check for ``plugin`` (class or instance); raise at the first failure."""
    _run_all(plugin, None, device)


def check_attack(attack: Any, device: Optional[str] = None) -> None:
    """Run every attack check (graph or node task) on ``attack``."""
    _run_all(attack, "attack", device)


def check_defense(defense: Any, device: Optional[str] = None) -> None:
    """Run every defense check on ``defense``."""
    _run_all(defense, "defense", device)


def check_explainer(explainer: Any, device: Optional[str] = None) -> None:
    """Run every explainer check on ``explainer``."""
    _run_all(explainer, "explainer", device)


def _plugin_id(plugin: Any) -> str:
    cls = plugin_class(plugin)
    name = getattr(cls, "name", cls.__name__)
    if plugin is cls:
        return str(name)
    params = getattr(plugin, "get_params", lambda: {})()
    defaults = {p.name: p.default for p in getattr(cls, "params", ())}
    diff = ",".join(f"{k}={v}" for k, v in params.items() if defaults.get(k) != v)
    return f"{name}({diff})" if diff else str(name)


def parametrize_with_checks(plugins: Iterable[Any], device: Optional[str] = None) -> Any:
    """A ``pytest.mark.parametrize("plugin, check", ...)`` over every check of every plugin.

    Test ids read ``<plugin name>-<check name>``, e.g. ``finetune-check_defense_seeded``.
    """
    import pytest

    params: List[Any] = []
    seen: dict = {}
    for plugin in plugins:
        pid = _plugin_id(plugin)
        seen[pid] = seen.get(pid, 0) + 1
        if seen[pid] > 1:
            pid = f"{pid}#{seen[pid]}"
        for check in yield_checks(plugin, device):
            params.append(pytest.param(plugin, check, id=f"{pid}-{check.name}"))
    return pytest.mark.parametrize("plugin, check", params)


__all__ = [
    "Bench", "COMMON_CHECKS", "Check", "GuardedDefenseContext", "KIND_CHECKS",
    "ThreatModelViolation", "check_api_version", "check_attack", "check_attack_no_mutation",
    "check_attack_output", "check_attack_seeded", "check_defense", "check_defense_no_mutation",
    "check_defense_output", "check_defense_seeded", "check_defense_threat_model",
    "check_docstring", "check_explainer", "check_explainer_no_mutation", "check_explainer_output",
    "check_explainer_seeded", "check_metadata", "check_params_validated", "check_plugin",
    "check_settings_hook",
    "excluded_fields", "get_bench", "make_node_problem", "parametrize_with_checks",
    "plugin_class", "plugin_instance", "yield_checks",
]
