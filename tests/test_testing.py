"""The conformance kit catches plugins that break the contract (each check can fail)."""
from __future__ import annotations

import os

import pytest
import torch

from dglcleaner import testing
from dglcleaner.api import (DefenseContext, DefenseResult, NodeAttackResult, PluginBase,
                            ThreatModel)
from dglcleaner.errors import ParameterError
from dglcleaner.params import Param
from dglcleaner.training import clone_model


class GoodDefense(PluginBase):
    """Fine-tune a copy for a few steps (a well-behaved defense for the kit's own tests)."""

    name = "good-defense"
    kind = "defense"
    task = "graph"
    summary = "Fine-tune a copy of the model."
    paper = "-"
    threat_model = ThreatModel.POST_TRAINING
    params = (Param("epochs", int, 1, "epochs", low=1, high=10),)

    def run(self, ctx: DefenseContext) -> DefenseResult:
        model = clone_model(ctx.model)
        ctx.train(model, ctx.clean_graphs, ctx.clean_labels, epochs=self.epochs)
        return DefenseResult(model=model)


class PeekingDefense(GoodDefense):
    """Post-training defense that looks at the poisoned training set."""

    name = "peeking-defense"

    def run(self, ctx: DefenseContext) -> DefenseResult:
        if ctx.train_graphs is not None:  # reading it at all is the violation
            pass
        return DefenseResult(model=clone_model(ctx.model))


class InPlaceDefense(GoodDefense):
    """Trains the suspicious model in place instead of a copy."""

    name = "in-place-defense"

    def run(self, ctx: DefenseContext) -> DefenseResult:
        with torch.no_grad():
            next(ctx.model.parameters()).add_(1.0)
        return DefenseResult(model=ctx.model)


class UnseededDefense(GoodDefense):
    """Draws noise from the OS, not from the seeded generators."""

    name = "unseeded-defense"

    def run(self, ctx: DefenseContext) -> DefenseResult:
        model = clone_model(ctx.model)
        noise = int.from_bytes(os.urandom(4), "little") / 2**32
        with torch.no_grad():
            for p in model.parameters():
                p.add_(noise)
        return DefenseResult(model=model)


class GraphMutatingDefense(GoodDefense):
    name = "graph-mutating-defense"

    def run(self, ctx: DefenseContext) -> DefenseResult:
        ctx.clean_graphs[0].ndata["feat"] *= 0
        return DefenseResult(model=clone_model(ctx.model))


class UncheckedParams:
    """A defense that stores parameters without validating them."""

    name = "unchecked"
    kind = "defense"
    task = "graph"
    summary = "x"
    paper = "-"
    api_version = 1
    threat_model = ThreatModel.POST_TRAINING
    params = (Param("epochs", int, 1, "epochs", low=1, high=10),)

    def __init__(self, **kw):
        self.epochs = kw.get("epochs", 1)

    def run(self, ctx):
        return DefenseResult(model=ctx.model)


class BadName(GoodDefense):
    name = "Bad Name"


class FutureApi(GoodDefense):
    api_version = 2


class NegativeExplainer(PluginBase):
    """Returns negative scores."""

    name = "negative"
    kind = "explainer"
    task = "graph"
    summary = "Negative scores."
    paper = "-"

    def node_importance(self, model, graph, feat, target=None):
        return -torch.ones(graph.num_nodes())


class TrainModeExplainer(NegativeExplainer):
    """Leaves the model in training mode."""

    name = "train-mode"

    def node_importance(self, model, graph, feat, target=None):
        model.train()
        return torch.ones(graph.num_nodes())


class MutatingAttack(PluginBase):
    """Rewrites the input graphs' features in place."""

    name = "mutating-attack"
    kind = "attack"
    task = "graph"
    summary = "x"
    paper = "-"

    def run(self, ctx):
        from dglcleaner.api import AttackResult

        ctx.train_graphs[0].ndata["feat"] += 1
        return AttackResult(ctx.train_graphs, ctx.train_labels, torch.tensor([0]),
                            lambda graphs, seed: graphs)


class GreedyNodeAttack(PluginBase):
    """Flips more labels than the budget allows."""

    name = "greedy"
    kind = "attack"
    task = "node"
    summary = "x"
    paper = "-"

    def run(self, ctx):
        idx = ctx.labeled_idx[: ctx.budget + 3]
        labels = ctx.labels.clone()
        labels[idx] = (labels[idx] + 1) % ctx.num_classes
        return NodeAttackResult(labels=labels, flipped_idx=idx)


class HonestNodeAttack(GreedyNodeAttack):
    """Flips exactly the budget (seeded)."""

    name = "honest"

    def run(self, ctx):
        gen = torch.Generator().manual_seed(ctx.seed)
        perm = torch.randperm(len(ctx.labeled_idx), generator=gen)[: ctx.budget]
        idx = ctx.labeled_idx[perm]
        labels = ctx.labels.clone()
        labels[idx] = (labels[idx] + 1) % ctx.num_classes
        return NodeAttackResult(labels=labels, flipped_idx=idx)


class ModelCheckingDefense(GoodDefense):
    """Its check reads the model, which does not exist yet when the runner calls it."""

    name = "model-checking-defense"

    def check(self, ctx):
        if ctx.model.training:
            raise ParameterError("never reached")


def test_good_defense_passes_every_check() -> None:
    testing.check_defense(GoodDefense)


@pytest.mark.parametrize("plugin, check, match", [
    (PeekingDefense, testing.check_defense_threat_model, "ctx.train_graphs"),
    (InPlaceDefense, testing.check_defense_no_mutation, "modified ctx.model"),
    (GraphMutatingDefense, testing.check_defense_no_mutation, "clean_graphs"),
    (UnseededDefense, testing.check_defense_seeded, "same seed"),
    (UncheckedParams, testing.check_params_validated, "was accepted"),
    (BadName, testing.check_metadata, "lower-case"),
    (FutureApi, testing.check_api_version, "plugin API 2"),
    (NegativeExplainer, testing.check_explainer_output, "non-negative"),
    (TrainModeExplainer, testing.check_explainer_no_mutation, "training mode"),
    (MutatingAttack, testing.check_attack_no_mutation, "in place"),
    (ModelCheckingDefense, testing.check_settings_hook, "before training"),
    (GreedyNodeAttack, testing.check_attack_output, "budget"),
], ids=lambda x: getattr(x, "__name__", None) if not isinstance(x, str) else None)
def test_check_catches_violation(plugin, check, match) -> None:
    with pytest.raises(AssertionError, match=match):
        check(plugin)


def test_threat_model_violation_is_an_assertion_error() -> None:
    assert issubclass(testing.ThreatModelViolation, AssertionError)


def test_node_attack_checks_pass_for_honest_attack() -> None:
    testing.check_attack(HonestNodeAttack)


def test_runner_context_hides_excluded_fields() -> None:
    bench = testing.get_bench()
    post = bench.defense_context(GoodDefense())
    assert post.train_graphs is None and post.train_labels is None and post.model is not None

    class TrainingSet(GoodDefense):
        threat_model = ThreatModel.TRAINING_SET

    pre = bench.defense_context(TrainingSet())
    assert pre.model is None and pre.clean_graphs is None and pre.train_graphs is not None
    assert testing.excluded_fields("training-set") == {"model", "clean_graphs", "clean_labels",
                                                       "oracle_trigger"}
    guarded = testing.GuardedDefenseContext.wrap(pre, "x")
    assert isinstance(guarded, DefenseContext) and guarded.train_graphs is not None
    with pytest.raises(testing.ThreatModelViolation, match="training-set"):
        guarded.model  # noqa: B018


def test_parametrize_with_checks_ids() -> None:
    mark = testing.parametrize_with_checks([GoodDefense, GoodDefense(epochs=2), GoodDefense])
    ids = [p.id for p in mark.args[1]]
    assert "good-defense-check_metadata" in ids
    assert "good-defense(epochs=2)-check_defense_seeded" in ids
    assert "good-defense#2-check_params_validated" in ids
    assert len(ids) == 3 * (len(testing.COMMON_CHECKS) + len(testing.KIND_CHECKS["defense"]))


def test_check_params_class_attribute_is_used() -> None:
    class Fast(GoodDefense):
        check_params = {"epochs": 3}

    assert testing.plugin_instance(Fast).epochs == 3
    assert testing.plugin_instance(GoodDefense).epochs == 1
