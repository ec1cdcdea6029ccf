"""GTA on the embedded synthetic data: poisoning, trainable topology generator, determinism."""
import numpy as np
import pytest
import torch

from dglcleaner.api import AttackContext
from dglcleaner.errors import ParameterError
from dglcleaner.graph_ops import undirected_pairs
from dglcleaner_plugins.attacks.gta import GTA, straight_through

SMALL = dict(iterations=2, gen_epochs=3, model_epochs=1)


def _ctx(run, **over):
    g, y = run.data["train"]
    kw = dict(train_graphs=g, train_labels=y, num_classes=run.data["num_classes"],
              featurizer=run.data["featurizer"], target_label=1, injection_ratio=0.1,
              trigger_size=3, seed=5, device=torch.device("cpu"),
              build_model=run.build_model, train=run.train, clean_model=run.clean_model)
    kw.update(over)
    return AttackContext(**kw)


def _edge_set(g):
    u, v = undirected_pairs(g)
    return set(zip(u.tolist(), v.tolist()))


def _snapshot(graphs):
    return [(g.num_nodes(), _edge_set(g), g.ndata["feat"].clone()) for g in graphs]


def _same_snapshot(a, b):
    return all(x[0] == y[0] and x[1] == y[1] and torch.equal(x[2], y[2]) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def gta_run(synthetic_run):
    ctx = _ctx(synthetic_run)
    before = _snapshot(ctx.train_graphs)
    clean_state = {k: v.clone() for k, v in ctx.clean_model.state_dict().items()}
    plugin = GTA(**SMALL)
    res = plugin.run(ctx)
    return ctx, before, clean_state, plugin, res


def test_poisoned_fraction_labels_and_trigger_block(gta_run):
    ctx, before, _, _, res = gta_run
    n = len(ctx.train_graphs)
    idx = res.poisoned_idx.tolist()
    assert len(idx) == round(0.1 * n)
    assert all(int(ctx.train_labels[i]) != 1 for i in idx)
    assert all(int(res.train_labels[i]) == 1 for i in idx)
    rest = [i for i in range(n) if i not in set(idx)]
    assert torch.equal(res.train_labels[rest], ctx.train_labels[rest])
    assert all(res.train_graphs[i] is ctx.train_graphs[i] for i in rest)
    for i in idx:
        old, new = ctx.train_graphs[i], res.train_graphs[i]
        assert new.num_nodes() == old.num_nodes()
        changed = (_edge_set(old) ^ _edge_set(new))
        touched = {x for e in changed for x in e}
        assert len(touched) <= 3  # only pairs among the k = 3 trigger nodes change
        assert new.ndata["feat"].shape == old.ndata["feat"].shape
        diff_rows = (new.ndata["feat"] != old.ndata["feat"]).any(dim=1).nonzero().flatten()
        assert len(diff_rows) <= 3  # only trigger rows carry generated features
    assert _same_snapshot(_snapshot(ctx.train_graphs), before)  # inputs not mutated


def test_returns_its_own_model_and_leaves_clean_model_alone(gta_run):
    ctx, _, clean_state, _, res = gta_run
    assert res.model is not None and res.model is not ctx.clean_model
    after = ctx.clean_model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in clean_state.items())


def test_topology_generator_learns_but_not_with_official_detach(gta_run, synthetic_run):
    _, _, _, plugin, res = gta_run
    assert res.trigger["topology_param_change"] > 0
    detached = GTA(official_detach=True, **SMALL).run(_ctx(synthetic_run))
    assert detached.trigger["topology_param_change"] == 0.0


def test_straight_through_gradient_reaches_the_topology_generator(gta_run):
    ctx, _, _, plugin, _ = gta_run
    chunk = plugin._prepare(ctx.train_graphs[:8], [np.array([0, 1, 2])] * 8, 3,
                            ctx.featurizer, torch.device("cpu"))
    plugin.toponet_.zero_grad()
    w = plugin._topology(chunk)
    assert set(w.detach().unique().tolist()) <= {0.0, 1.0}  # binary in the forward pass
    logits = plugin._forward(ctx.clean_model.eval(), chunk, w, plugin._features(chunk))
    logits[:, 1].sum().backward()
    grads = [p.grad for p in plugin.toponet_.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    x = torch.tensor([0.2, 0.7], requires_grad=True)
    straight_through(x, 0.5).sum().backward()
    assert torch.equal(x.grad, torch.ones(2))


def test_test_time_trigger_is_adaptive_deterministic_and_non_mutating(gta_run):
    ctx, _, _, _, res = gta_run
    graphs = ctx.train_graphs[:20]
    before = _snapshot(graphs)
    out1 = res.apply_trigger(graphs, 7)
    out2 = res.apply_trigger(graphs, 7)
    assert _same_snapshot(_snapshot(out1), _snapshot(out2))
    assert _same_snapshot(_snapshot(graphs), before)
    for old, new in zip(graphs, out1):
        touched = {x for e in _edge_set(old) ^ _edge_set(new) for x in e}
        assert len(touched) <= 3 and new.num_nodes() == old.num_nodes()


def test_same_seed_same_result(gta_run, synthetic_run):
    _, _, _, _, res = gta_run
    again = GTA(**SMALL).run(_ctx(synthetic_run))
    assert torch.equal(again.poisoned_idx, res.poisoned_idx)
    assert _same_snapshot(_snapshot(again.train_graphs), _snapshot(res.train_graphs))
    s1, s2 = res.model.state_dict(), again.model.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)


@pytest.mark.parametrize("over, words", [
    (dict(injection_ratio=1.5), "injection ratio"),
    (dict(trigger_size=10_000), "trigger size"),
])
def test_bad_settings_raise_one_line(synthetic_run, over, words):
    with pytest.raises(ParameterError) as err:
        GTA(**SMALL).run(_ctx(synthetic_run, **over))
    assert words in str(err.value) and "\n" not in str(err.value)


def test_all_target_class_raises(synthetic_run):
    ctx = _ctx(synthetic_run)
    ctx.train_labels = torch.ones_like(ctx.train_labels)
    with pytest.raises(ParameterError) as err:
        GTA(**SMALL).run(ctx)
    assert "target label" in str(err.value) and "\n" not in str(err.value)


def test_bad_parameter_value():
    with pytest.raises(ParameterError):
        GTA(threshold=1.5)


def test_feature_activation_bounds_generated_features(gta_run):
    ctx, _, _, plugin, _ = gta_run
    chunk = plugin._prepare(ctx.train_graphs[:4], [np.array([0, 1, 2])] * 4, 3,
                            ctx.featurizer, torch.device("cpu"))
    sig = GTA(feat_activation="sigmoid", **SMALL)
    sig.featnet_ = plugin.featnet_
    with torch.no_grad():
        relu_rows, sig_rows = plugin._features(chunk), sig._features(chunk)
    assert relu_rows.shape == sig_rows.shape == (12, ctx.featurizer.dim)
    assert float(relu_rows.min()) >= 0.0
    assert 0.0 < float(sig_rows.min()) and float(sig_rows.max()) < 1.0


# --- resampling (the release's resample_steps x bilevel_steps loop) --------------------------
RESAMPLE = dict(resample_steps=2, iterations=1, gen_epochs=2, model_epochs=1)


@pytest.fixture(scope="module")
def resampled(synthetic_run):
    messages = []
    ctx = _ctx(synthetic_run, progress=messages.append)
    before = _snapshot(ctx.train_graphs)
    plugin = GTA(**RESAMPLE)
    res = plugin.run(ctx)
    return ctx, before, plugin, res, messages


def test_resampling_draws_a_new_poisoned_set_and_keeps_the_last(resampled, gta_run):
    ctx, before, plugin, res, messages = resampled
    first, last = plugin.draws_
    assert len(plugin.draws_) == 2 and not np.array_equal(first, last)
    # the first draw is the one resample_steps=1 uses (same seed): only the later draws are new
    assert np.array_equal(first, gta_run[4].poisoned_idx.numpy())
    assert res.poisoned_idx.tolist() == last.tolist()
    assert len(messages) == 2 * 1  # resample_steps x iterations bi-level iterations
    assert res.trigger["resample_steps"] == 2
    assert res.trigger["poisoned_over_draws"] == len(set(first.tolist()) | set(last.tolist()))
    n = len(ctx.train_graphs)
    for i in range(n):
        if i in set(last.tolist()):
            assert int(res.train_labels[i]) == 1
            assert res.train_graphs[i] is not ctx.train_graphs[i]
        else:  # clean again, including graphs that carried a trigger in the first draw only
            assert int(res.train_labels[i]) == int(ctx.train_labels[i])
            assert res.train_graphs[i] is ctx.train_graphs[i]
    assert _same_snapshot(_snapshot(ctx.train_graphs), before)  # inputs not mutated


def test_resampling_same_seed_same_result(resampled, synthetic_run):
    _, _, plugin, res, _ = resampled
    again_plugin = GTA(**RESAMPLE)
    again = again_plugin.run(_ctx(synthetic_run))
    assert all(np.array_equal(a, b) for a, b in zip(plugin.draws_, again_plugin.draws_))
    assert _same_snapshot(_snapshot(again.train_graphs), _snapshot(res.train_graphs))
    s1, s2 = res.model.state_dict(), again.model.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    out1, out2 = res.apply_trigger(res.train_graphs[:5], 3), again.apply_trigger(
        res.train_graphs[:5], 3)
    assert _same_snapshot(_snapshot(out1), _snapshot(out2))


def test_official_preset_is_three_draws_of_four_iterations():
    official = GTA(preset="official")
    assert (official.resample_steps, official.iterations) == (3, 4)
    assert GTA().resample_steps == 1
    with pytest.raises(ParameterError):
        GTA(resample_steps=0)
