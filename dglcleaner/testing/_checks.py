"""The conformance checks. Each takes a plugin (class or instance) and raises
``AssertionError`` (with a message saying what to fix) when the plugin breaks the contract,
or ``unittest.SkipTest`` when a check does not apply (pytest reports it as skipped)."""
from __future__ import annotations

import inspect
import json
import math
import re
import unittest
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import torch

from .. import api
from ..api import API_VERSION, KINDS, PROTOCOLS, DefenseResult, ThreatModel
from ..errors import ParameterError, PluginLoadError
from ..params import Param
from ..seeding import derive_seed, seed_everything
from . import _snapshot as snap
from ._bench import get_bench, make_node_problem
from ._guard import GuardedDefenseContext, ThreatModelViolation

#: Graphs per explained batch (search-based explainers such as SubgraphX are costly).
_EXPLAIN_GRAPHS = 2
_NAME_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def plugin_class(plugin: Any) -> type:
    """The class of ``plugin`` (a class or an instance)."""
    return plugin if inspect.isclass(plugin) else type(plugin)


def plugin_instance(plugin: Any) -> Any:
    """``plugin`` itself, or the class instantiated with its ``check_params`` (fast settings
    a plugin may declare for the kit; default: no arguments)."""
    if not inspect.isclass(plugin):
        return plugin
    return plugin(**dict(getattr(plugin, "check_params", {}) or {}))


def _label(plugin: Any) -> str:
    return f"{plugin_class(plugin).__name__}({getattr(plugin, 'name', '?')!r})"


def _skip(reason: str) -> None:
    raise unittest.SkipTest(reason)


def _require_task(plugin: Any, task: str, what: str) -> None:
    if getattr(plugin, "task", None) != task:
        _skip(f"{what} checks exist for task {task!r} only; "
              f"{getattr(plugin, 'name', '?')!r} has task {getattr(plugin, 'task', None)!r}")


def _device(device: Optional[str]) -> str:
    return device or "cpu"


# ---------------------------------------------------------------------------------------------
# common checks
# ---------------------------------------------------------------------------------------------
def check_metadata(plugin: Any, device: Optional[str] = None) -> None:
    """Metadata present and typed: name, kind, task, summary, paper, params, threat model."""
    cls = plugin_class(plugin)
    who = _label(plugin)
    for attr in ("name", "kind", "task", "summary", "paper"):
        value = getattr(cls, attr, None)
        assert isinstance(value, str) and value.strip(), f"{who}.{attr} must be a non-empty str"
    assert _NAME_RE.match(cls.name), (
        f"{who}.name {cls.name!r} must be lower-case words joined by '-' (e.g. 'my-defense'); "
        f"it is the entry-point and CLI name")
    assert cls.kind in KINDS, f"{who}.kind must be one of {', '.join(KINDS)}; got {cls.kind!r}"
    assert cls.task in ("graph", "node"), f"{who}.task must be 'graph' or 'node'"
    assert "\n" not in cls.summary and len(cls.summary) <= 120, (
        f"{who}.summary must be one line of at most 120 characters")
    params = getattr(cls, "params", None)
    assert isinstance(params, tuple), f"{who}.params must be a tuple of Param"
    names = [p.name for p in params]
    assert all(isinstance(p, Param) for p in params), f"{who}.params must hold Param objects"
    assert len(set(names)) == len(names), f"{who}.params has duplicate names: {names}"
    for p in params:
        assert re.match(r"^[a-z_][a-z0-9_]*$", p.name), f"parameter {p.name!r} must be snake_case"
        assert p.type in (int, float, str, bool), f"parameter {p.name!r}: type must be int, " \
                                                  f"float, str or bool"
        if p.default is not None:
            try:
                ok = p.validate(p.default)
            except ParameterError as exc:
                raise AssertionError(f"{who}: default of {p.name!r} is invalid: {exc}") from None
            assert ok == p.default, f"{who}: default of {p.name!r} changes on validation"
        assert isinstance(p.help, str) and p.help.strip(), (
            f"{who}: parameter {p.name!r} needs a one-line help text (shown by list-plugins)")
    if cls.kind == "defense":
        try:
            ThreatModel(getattr(cls, "threat_model", None))
        except ValueError:
            raise AssertionError(
                f"{who}.threat_model must be a ThreatModel "
                f"({', '.join(t.value for t in ThreatModel)})") from None
    presets = getattr(cls, "presets", None) or {}
    assert hasattr(presets, "items"), f"{who}.presets must map preset names to parameters"
    inst = plugin_instance(plugin)
    assert isinstance(inst, PROTOCOLS[cls.kind]), (
        f"{who} does not satisfy the {cls.kind} protocol (dglcleaner.api.{cls.kind.title()})")


def check_api_version(plugin: Any, device: Optional[str] = None) -> None:
    """The plugin declares the plugin API version this dglcleaner provides."""
    cls = plugin_class(plugin)
    version = getattr(cls, "api_version", None)
    assert isinstance(version, int) and not isinstance(version, bool), (
        f"{_label(plugin)}.api_version must be an int (dglcleaner.api.API_VERSION)")
    assert version == API_VERSION, (
        f"{_label(plugin)} targets plugin API {version}; this dglcleaner provides {API_VERSION}")
    try:
        api.check_plugin_class(cls, cls.kind)
    except PluginLoadError as exc:
        raise AssertionError(str(exc)) from None


def check_docstring(plugin: Any, device: Optional[str] = None) -> None:
    """A class or module docstring exists (the docs pages are generated from it)."""
    import sys

    cls = plugin_class(plugin)
    doc = (cls.__doc__ or "").strip()
    mod_doc = (getattr(sys.modules.get(cls.__module__), "__doc__", None) or "").strip()
    assert doc or mod_doc, (
        f"{_label(plugin)} needs a docstring (summary, Paper:, Threat model:, Parameters)")


def _bad_values(p: Param) -> List[Any]:
    if p.choices:
        return ["__not-a-valid-choice__"]
    if p.type is bool:
        return ["maybe"]
    if p.type in (int, float):
        out: List[Any] = ["not-a-number"]
        if p.type is int:
            out.append(1.5)
        if p.low is not None and math.isfinite(p.low):
            out.append(p.low if p.low_open else p.low - 1)
        if p.high is not None and math.isfinite(p.high):
            out.append(p.high if p.high_open else p.high + 1)
        return out
    return []


def check_params_validated(plugin: Any, device: Optional[str] = None) -> None:
    """Every declared parameter is validated in ``__init__``: wrong types, out-of-range
    values, unknown names and unknown presets raise ``ParameterError``; defaults are kept."""
    cls = plugin_class(plugin)
    who = _label(plugin)
    try:
        inst = cls()
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"{who}() with default parameters failed: {exc!r}") from None
    if hasattr(inst, "get_params"):
        got = inst.get_params()
        for p in cls.params:
            assert p.name in got, f"{who}.get_params() lacks {p.name!r}"
            if p.default is not None:
                assert got[p.name] == p.default, (
                    f"{who}.get_params()[{p.name!r}] is {got[p.name]!r}, default {p.default!r}")
    for p in cls.params:
        for bad in _bad_values(p):
            try:
                cls(**{p.name: bad})
            except ParameterError:
                continue
            except Exception as exc:  # noqa: BLE001
                raise AssertionError(
                    f"{who}({p.name}={bad!r}) raised {type(exc).__name__} instead of "
                    f"dglcleaner.errors.ParameterError") from None
            raise AssertionError(f"{who}({p.name}={bad!r}) was accepted; valid: "
                                 f"{p.range_text()}")
    try:
        cls(no_such_parameter_xyz=1)
    except ParameterError:
        pass
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"{who} with an unknown parameter raised {type(exc).__name__}, "
                             f"not ParameterError") from None
    else:
        raise AssertionError(f"{who}(no_such_parameter_xyz=1) was accepted silently")
    presets = dict(getattr(cls, "presets", None) or {})
    for name in presets:
        try:
            cls(preset=name)
        except Exception as exc:  # noqa: BLE001
            raise AssertionError(f"{who}(preset={name!r}) failed: {exc}") from None
    if presets:
        try:
            cls(preset="__no-such-preset__")
        except ParameterError:
            pass
        else:
            raise AssertionError(f"{who}(preset='__no-such-preset__') did not raise "
                                 f"ParameterError")


def check_settings_hook(plugin: Any, device: Optional[str] = None) -> None:
    """The optional ``check`` hook accepts the bench's valid settings with what the runner
    hands it before training: no clean model (attacks); no model, no poisoned training set
    (defenses)."""
    inst = plugin_instance(plugin)
    hook = getattr(inst, "check", None)
    if not callable(hook) or inst.task != "graph":
        _skip(f"{_label(plugin)} has no check hook for graph runs")
    bench = get_bench(_device(device))
    if inst.kind == "attack":
        ctx = bench.attack_context()
        ctx.clean_model = None
    else:
        from ..runner import defense_context

        ctx = defense_context(bench.run, inst, check=True)
    try:
        hook(ctx)
    except Exception as exc:  # noqa: BLE001 - any failure here breaks the contract
        raise AssertionError(
            f"{_label(plugin)}.check failed on the bench's valid settings before training "
            f"(model and poisoned set are None then): {type(exc).__name__}: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# attacks
# ---------------------------------------------------------------------------------------------
def _run_attack(inst: Any, bench: Any, seed: int = 0) -> Any:
    ctx = bench.attack_context(seed)
    seed_everything(derive_seed(seed, "attack"))
    return ctx, inst.run(ctx)


def _run_node_attack(inst: Any, device: str, seed: int = 0) -> Any:
    ctx = make_node_problem(seed=seed, device=device)
    seed_everything(derive_seed(seed, "attack"))
    return ctx, inst.run(ctx)


def _check_feats(graphs: Sequence[Any], dim: int, what: str) -> None:
    for i, g in enumerate(graphs):
        assert "feat" in g.ndata, f"{what}[{i}] has no ndata['feat'] (use featurizer.refresh)"
        feat = g.ndata["feat"]
        assert feat.shape == (g.num_nodes(), dim), (
            f"{what}[{i}] ndata['feat'] has shape {tuple(feat.shape)}, expected "
            f"({g.num_nodes()}, {dim})")


def check_attack_output(plugin: Any, device: Optional[str] = None) -> None:
    """The attack returns the right result type, sizes, labels, features and trigger."""
    inst = plugin_instance(plugin)
    who = _label(plugin)
    if inst.task == "node":
        ctx, res = _run_node_attack(inst, _device(device))
        assert isinstance(res, api.NodeAttackResult), f"{who}.run must return NodeAttackResult"
        assert res.labels.shape == ctx.labels.shape, f"{who}: labels shape changed"
        assert res.labels.dtype == torch.long, f"{who}: labels must be a LongTensor"
        assert int(res.labels.min()) >= 0 and int(res.labels.max()) < ctx.num_classes
        flipped = torch.as_tensor(res.flipped_idx).long().cpu()
        assert flipped.dim() == 1 and len(flipped) <= ctx.budget, (
            f"{who} flipped {len(flipped)} labels; the budget is {ctx.budget}")
        allowed = set(ctx.labeled_idx.cpu().tolist())
        assert set(flipped.tolist()) <= allowed, f"{who} flipped labels outside labeled_idx"
        changed = (res.labels.cpu() != ctx.labels.cpu()).nonzero().flatten().tolist()
        assert set(changed) == set(flipped.tolist()), (
            f"{who}: flipped_idx {sorted(flipped.tolist())} differs from the labels that "
            f"changed {sorted(changed)}")
        return
    _require_task(inst, "graph", "attack")
    bench = get_bench(_device(device))
    ctx, res = _run_attack(inst, bench)
    n = len(ctx.train_graphs)
    assert isinstance(res, api.AttackResult), f"{who}.run must return an AttackResult"
    assert len(res.train_graphs) == n and len(res.train_labels) == n, (
        f"{who} returned {len(res.train_graphs)} graphs / {len(res.train_labels)} labels for "
        f"{n} training graphs")
    idx = torch.as_tensor(res.poisoned_idx)
    assert idx.dim() == 1 and idx.dtype == torch.long, f"{who}: poisoned_idx must be 1-D long"
    assert 0 < len(idx) <= n and int(idx.min()) >= 0 and int(idx.max()) < n, (
        f"{who}: poisoned_idx must hold 1..{n} valid training indices")
    assert len(set(idx.tolist())) == len(idx), f"{who}: poisoned_idx has duplicates"
    labels = torch.as_tensor(res.train_labels)
    assert bool((labels[idx] == ctx.target_label).all()), (
        f"{who}: poisoned graphs must carry the target label {ctx.target_label}")
    dim = ctx.featurizer.dim
    _check_feats(res.train_graphs, dim, "train_graphs")
    if res.model is not None:
        bg, _ = bench.eval_batch(3)
        with torch.no_grad():
            logits = res.model.eval()(bg, bg.ndata["feat"])
        assert logits.shape == (3, ctx.num_classes), f"{who}: the returned model's logits " \
                                                     f"have shape {tuple(logits.shape)}"
    try:
        json.dumps(res.trigger)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{who}: trigger must be JSON-serialisable ({exc})") from None
    graphs, _ = bench.eval_graphs(6)
    before = snap.graphs_state(graphs)
    trig = res.apply_trigger(graphs, 7)
    assert isinstance(trig, list) and len(trig) == len(graphs), (
        f"{who}: apply_trigger must return a list with one graph per input graph")
    _check_feats(trig, dim, "apply_trigger(...)")
    assert any(not snap.same_graph_state(b, snap.graph_state(g)) for b, g in zip(before, trig)), \
        f"{who}: apply_trigger left every graph unchanged"


def check_attack_no_mutation(plugin: Any, device: Optional[str] = None) -> None:
    """Neither ``run`` nor ``apply_trigger`` modifies the graphs or labels it was given."""
    inst = plugin_instance(plugin)
    who = _label(plugin)
    if inst.task == "node":
        ctx = make_node_problem(device=_device(device))
        before = (snap.graph_state(ctx.graph), ctx.features.clone(), ctx.labels.clone(),
                  ctx.labeled_idx.clone())
        seed_everything(0)
        inst.run(ctx)
        assert snap.same_graph_state(before[0], snap.graph_state(ctx.graph)), \
            f"{who} modified the input graph"
        for old, new, what in zip(before[1:], (ctx.features, ctx.labels, ctx.labeled_idx),
                                  ("features", "labels", "labeled_idx")):
            assert torch.equal(old, new), f"{who} modified ctx.{what} in place"
        return
    _require_task(inst, "graph", "attack")
    bench = get_bench(_device(device))
    ctx = bench.attack_context()
    ctx.train_graphs = [g.clone() for g in ctx.train_graphs]
    before = snap.graphs_state(ctx.train_graphs)
    labels = ctx.train_labels.clone()
    seed_everything(0)
    res = inst.run(ctx)
    i = snap.first_changed_graph(before, ctx.train_graphs)
    assert i < 0, f"{who}.run modified input training graph {i} in place (copy it first)"
    assert torch.equal(labels, ctx.train_labels), f"{who}.run modified ctx.train_labels"
    graphs = [g.clone() for g in bench.eval_graphs(6)[0]]
    before = snap.graphs_state(graphs)
    res.apply_trigger(graphs, 3)
    i = snap.first_changed_graph(before, graphs)
    assert i < 0, f"{who}.apply_trigger modified its input graph {i} in place"


def check_attack_seeded(plugin: Any, device: Optional[str] = None) -> None:
    """The same seed gives the same poisoned set, labels, graphs and triggered test graphs."""
    inst = plugin_instance(plugin)
    who = _label(plugin)
    if inst.task == "node":
        _, a = _run_node_attack(inst, _device(device), seed=3)
        _, b = _run_node_attack(inst, _device(device), seed=3)
        assert torch.equal(a.labels, b.labels), f"{who}: same seed, different poisoned labels"
        return
    _require_task(inst, "graph", "attack")
    bench = get_bench(_device(device))
    _, a = _run_attack(inst, bench, seed=3)
    _, b = _run_attack(inst, bench, seed=3)
    assert torch.equal(torch.as_tensor(a.poisoned_idx), torch.as_tensor(b.poisoned_idx)), \
        f"{who}: same seed, different poisoned_idx"
    assert torch.equal(torch.as_tensor(a.train_labels), torch.as_tensor(b.train_labels)), \
        f"{who}: same seed, different labels"
    i = snap.first_changed_graph(snap.graphs_state(a.train_graphs), b.train_graphs)
    assert i < 0, f"{who}: same seed, different poisoned graph {i}"
    graphs, _ = bench.eval_graphs(6)
    ta, tb = a.apply_trigger(graphs, 11), b.apply_trigger(graphs, 11)
    i = snap.first_changed_graph(snap.graphs_state(ta), tb)
    assert i < 0, f"{who}: apply_trigger with the same seed gave a different graph {i}"


# ---------------------------------------------------------------------------------------------
# defenses
# ---------------------------------------------------------------------------------------------
def _defense_ctx(inst: Any, bench: Any, guard: bool = False, clone_graphs: bool = False) -> Any:
    """The runner's context for ``inst`` on the bench, with a private copy of the model (so a
    faulty defense cannot spoil the shared bench) and optionally a threat-model guard."""
    from ..training import clone_model

    ctx = bench.defense_context(inst)
    if ctx.model is not None:
        ctx.model = clone_model(ctx.model)
    for field in ("clean_graphs", "train_graphs"):
        graphs = getattr(ctx, field)
        if graphs is not None:
            setattr(ctx, field, [g.clone() for g in graphs] if clone_graphs else list(graphs))
    if guard:
        ctx = GuardedDefenseContext.wrap(ctx, _label(inst),
                                         bool(getattr(inst, "wants_oracle_trigger", False)))
    return ctx


def _run_defense(inst: Any, ctx: Any) -> Any:
    seed_everything(derive_seed(ctx.seed, "defense", inst.name))
    return inst.run(ctx)


def _defended_predictions(result: Any, graphs: List[Any], device: Any) -> torch.Tensor:
    from ..training import predict

    seed_everything(12345)  # a stochastic predict/transform must be seeded by the caller
    if result.transform is not None:
        graphs = result.transform(graphs)
    if result.predict is not None:
        return torch.as_tensor(result.predict(result.model, graphs)).cpu()
    return predict(result.model, graphs, device=device)


def check_defense_output(plugin: Any, device: Optional[str] = None) -> None:
    """The defense returns a ``DefenseResult`` whose model (with its transform/predict) can be
    evaluated, and whose ``flagged`` indices (if any) are valid training indices."""
    inst = plugin_instance(plugin)
    who = _label(plugin)
    _require_task(inst, "graph", "defense")
    bench = get_bench(_device(device))
    ctx = _defense_ctx(inst, bench)
    res = _run_defense(inst, ctx)
    assert isinstance(res, DefenseResult), f"{who}.run must return a DefenseResult"
    assert res.model is not None, f"{who}: DefenseResult.model is None"
    graphs, _ = bench.eval_graphs(6)
    if res.transform is not None:
        out = res.transform(list(graphs))
        assert isinstance(out, list) and len(out) == len(graphs), (
            f"{who}: transform must return one graph per input graph")
        _check_feats(out, ctx.featurizer.dim, "transform(...)")
    pred = _defended_predictions(res, graphs, bench.device)
    assert pred.shape == (len(graphs),), f"{who}: predictions have shape {tuple(pred.shape)}"
    assert int(pred.min()) >= 0 and int(pred.max()) < ctx.num_classes
    if res.predict is None:
        bg, _ = bench.eval_batch(3)
        with torch.no_grad():
            logits = res.model.eval()(bg, bg.ndata["feat"])
        assert logits.shape == (3, ctx.num_classes), f"{who}: logits shape {tuple(logits.shape)}"
    metrics = bench.run.evaluate(res.model, res)
    bad = {k: v for k, v in metrics.items() if v is not None and v == v and not 0 <= v <= 100}
    assert not bad, f"{who}: metrics outside [0, 100] percent: {bad}"
    if res.flagged is not None:
        assert ctx.train_graphs is not None, (
            f"{who} flags training graphs but its threat model gives it none")
        flagged = [int(i) for i in res.flagged]
        assert all(0 <= i < len(ctx.train_graphs) for i in flagged), (
            f"{who}: flagged indices must lie in [0, {len(ctx.train_graphs)})")
    assert isinstance(res.info, dict), f"{who}: DefenseResult.info must be a dict"


def check_defense_threat_model(plugin: Any, device: Optional[str] = None) -> None:
    """The runner hands ``None`` for everything outside the threat model, and the defense
    never reads those fields (the kit's guarded context raises if it does)."""
    from ._guard import excluded_fields

    inst = plugin_instance(plugin)
    _require_task(inst, "graph", "defense")
    bench = get_bench(_device(device))
    ctx = bench.defense_context(inst)
    wants = bool(getattr(inst, "wants_oracle_trigger", False))
    for field in excluded_fields(inst.threat_model, wants):
        assert getattr(ctx, field) is None, (
            f"the runner handed {_label(inst)} ctx.{field} outside its threat model")
    try:
        _run_defense(inst, _defense_ctx(inst, bench, guard=True))
    except ThreatModelViolation:
        raise
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"{_label(inst)} failed on the guarded context: {exc!r}") from None


def check_defense_no_mutation(plugin: Any, device: Optional[str] = None) -> None:
    """The defense changes neither the model it is given nor any graph or label."""
    inst = plugin_instance(plugin)
    who = _label(plugin)
    _require_task(inst, "graph", "defense")
    bench = get_bench(_device(device))
    ctx = _defense_ctx(inst, bench, clone_graphs=True)
    model_before = snap.model_state(ctx.model)
    graphs_before = {f: snap.graphs_state(getattr(ctx, f)) for f in ("clean_graphs",
                     "train_graphs") if getattr(ctx, f) is not None}
    labels_before = {f: getattr(ctx, f).clone() for f in ("clean_labels", "train_labels")
                     if getattr(ctx, f) is not None}
    _run_defense(inst, ctx)
    changed = snap.changed_keys(model_before, snap.model_state(ctx.model))
    assert not changed, (f"{who} modified ctx.model in place ({', '.join(changed[:3])}); "
                         f"copy it first (dglcleaner.training.clone_model)")
    for field, before in graphs_before.items():
        i = snap.first_changed_graph(before, getattr(ctx, field))
        assert i < 0, f"{who} modified ctx.{field}[{i}] in place"
    for field, before in labels_before.items():
        assert torch.equal(before, getattr(ctx, field)), f"{who} modified ctx.{field}"


def check_defense_seeded(plugin: Any, device: Optional[str] = None) -> None:
    """Two runs on the same context seed give the same model, predictions and flags."""
    inst = plugin_instance(plugin)
    who = _label(plugin)
    _require_task(inst, "graph", "defense")
    bench = get_bench(_device(device))
    a = _run_defense(inst, _defense_ctx(inst, bench))
    b = _run_defense(inst, _defense_ctx(inst, bench))
    changed = snap.changed_keys(snap.model_state(a.model), snap.model_state(b.model))
    assert not changed, f"{who}: same seed, different model weights ({', '.join(changed[:3])})"
    graphs, _ = bench.eval_graphs(8)
    pa = _defended_predictions(a, graphs, bench.device)
    pb = _defended_predictions(b, graphs, bench.device)
    assert torch.equal(pa, pb), f"{who}: same seed, different predictions"
    fa = None if a.flagged is None else sorted(int(i) for i in a.flagged)
    fb = None if b.flagged is None else sorted(int(i) for i in b.flagged)
    assert fa == fb, f"{who}: same seed, different flagged graphs"


# ---------------------------------------------------------------------------------------------
# explainers
# ---------------------------------------------------------------------------------------------
def _explain(inst: Any, bench: Any, target: Optional[torch.Tensor] = None,
             seed: int = 0) -> Any:
    from ..training import clone_model

    model = clone_model(bench.run.clean_model).eval()
    bg, _ = bench.eval_batch(_EXPLAIN_GRAPHS)
    seed_everything(seed)
    out = inst.node_importance(model, bg, bg.ndata["feat"], target)
    return model, bg, out


def check_explainer_output(plugin: Any, device: Optional[str] = None) -> None:
    """One finite, non-negative score per node of the batched graph, with and without
    an explicit target."""
    inst = plugin_instance(plugin)
    who = _label(plugin)
    _require_task(inst, "graph", "explainer")
    bench = get_bench(_device(device))
    for target in (None, torch.ones(_EXPLAIN_GRAPHS, dtype=torch.long, device=bench.device)):
        _, bg, imp = _explain(inst, bench, target)
        assert isinstance(imp, torch.Tensor), f"{who}.node_importance must return a tensor"
        assert imp.shape == (bg.num_nodes(),), (
            f"{who}: importance has shape {tuple(imp.shape)}, expected ({bg.num_nodes()},)")
        assert bool(torch.isfinite(imp).all()), f"{who}: importance has NaN/inf values"
        assert bool((imp >= 0).all()), f"{who}: importance must be non-negative"


def check_explainer_no_mutation(plugin: Any, device: Optional[str] = None) -> None:
    """The explainer changes neither the model (weights, train/eval mode, requires_grad)
    nor the graph or its features."""
    from ..training import clone_model

    inst = plugin_instance(plugin)
    who = _label(plugin)
    _require_task(inst, "graph", "explainer")
    bench = get_bench(_device(device))
    model = clone_model(bench.run.clean_model).eval()
    grads = [p.requires_grad for p in model.parameters()]
    before = snap.model_state(model)
    bg, _ = bench.eval_batch(_EXPLAIN_GRAPHS)
    gstate = snap.graph_state(bg)
    feat = bg.ndata["feat"]
    feat_before = feat.clone()
    seed_everything(0)
    inst.node_importance(model, bg, feat)
    changed = snap.changed_keys(before, snap.model_state(model))
    assert not changed, f"{who} modified the model ({', '.join(changed[:3])})"
    assert not model.training, f"{who} left the model in training mode"
    assert grads == [p.requires_grad for p in model.parameters()], (
        f"{who} changed requires_grad of model parameters")
    assert snap.same_graph_state(gstate, snap.graph_state(bg)), f"{who} modified the graph"
    assert torch.equal(feat_before, feat), f"{who} modified the feature tensor in place"


def check_explainer_seeded(plugin: Any, device: Optional[str] = None) -> None:
    """The same global seed gives the same importance scores."""
    inst = plugin_instance(plugin)
    _require_task(inst, "graph", "explainer")
    bench = get_bench(_device(device))
    a = _explain(inst, bench, seed=5)[2]
    b = _explain(inst, bench, seed=5)[2]
    assert torch.allclose(a, b, atol=1e-6), f"{_label(inst)}: same seed, different scores"


# ---------------------------------------------------------------------------------------------
# registry of checks
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    """One named check; ``check(plugin)`` runs it (raises ``AssertionError`` on failure)."""

    name: str
    func: Callable[..., None]
    device: Optional[str] = None

    def __call__(self, plugin: Any) -> None:
        self.func(plugin, device=self.device)

    def __repr__(self) -> str:
        return self.name


COMMON_CHECKS = (check_metadata, check_api_version, check_docstring, check_params_validated)
KIND_CHECKS: Dict[str, tuple] = {
    "attack": (check_attack_output, check_attack_no_mutation, check_attack_seeded,
               check_settings_hook),
    "defense": (check_defense_output, check_defense_threat_model, check_defense_no_mutation,
                check_defense_seeded, check_settings_hook),
    "explainer": (check_explainer_output, check_explainer_no_mutation, check_explainer_seeded),
}


def yield_checks(plugin: Any, device: Optional[str] = None) -> Iterator[Check]:
    """Every check that applies to ``plugin``'s kind, common ones first."""
    kind = getattr(plugin_class(plugin), "kind", None)
    funcs = COMMON_CHECKS + KIND_CHECKS.get(kind, ())
    for func in funcs:
        yield Check(func.__name__, func, device)
