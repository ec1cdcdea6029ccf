"""GCleaner: recovery, differentiable multi-layer Grad-CAM, unlearning, switches, bad input,
and the adaptive attack loss (synthetic data; the whole file runs in well under a minute)."""
import copy

import numpy as np
import pytest
import torch

from dglcleaner._dgl import dgl
from dglcleaner.errors import ParameterError
from dglcleaner_plugins.defenses.gcleaner import GCleaner
from dglcleaner_plugins.defenses.gcleaner.gradcam_loss import gradcam_maps, per_graph_l2
from dglcleaner_plugins.defenses.gcleaner.recovery import (TriggerGenerator, montage_batch,
                                                           pairwise_hinge, recover_trigger,
                                                           select_positions, _global_sel)

FAST = dict(explainer="random", recovery_epochs=5, teacher_epochs=3, epochs=5)


def _sd(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_params_presets_and_oracle_flag():
    assert GCleaner().wants_oracle_trigger is False
    assert GCleaner.wants_oracle_trigger is False
    off = GCleaner(preset="official")
    assert off.wants_oracle_trigger is True
    assert (off.optimizer, off.epochs, off.teacher, off.heat_grad) == ("adam", 100, "original", "none")
    with pytest.raises(ParameterError, match="lam"):
        GCleaner(lam=-0.1)
    with pytest.raises(ParameterError, match="explainer"):
        GCleaner(explainer="lime")


def test_montage_replaces_only_edges_among_selected_nodes_and_passes_gradients():
    g1 = dgl.graph(([0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]), num_nodes=4)
    g2 = dgl.graph(([0, 1, 1, 2], [1, 0, 2, 1]), num_nodes=3)
    for g in (g1, g2):
        g.ndata["feat"] = torch.eye(5)[: g.num_nodes()]
    bg = dgl.batch([g1, g2])
    sel = _global_sel(bg, [np.array([0, 1]), np.array([1, 2])])
    gen = TriggerGenerator(5, 2, hidden=8)
    xt, at = gen(bg.ndata["feat"][sel])
    assert at.shape == (2, 2, 2) and torch.all(at.diagonal(dim1=1, dim2=2) == 0)
    assert set(at.detach().unique().tolist()) <= {0.0, 1.0}
    tg, tfeat, ew = montage_batch(bg, bg.ndata["feat"], sel, xt, at)
    assert tg.num_nodes() == bg.num_nodes()
    assert tg.batch_num_nodes().tolist() == [4, 3]
    src, dst = tg.edges()
    # the original edge 0-1 of g1 (both selected) is gone as a weight-1 edge; 1-2 of g1 stays
    kept = {(int(s), int(d)) for s, d, w in zip(src, dst, ew) if w.item() == 1.0 and
            (int(s), int(d)) not in {(0, 1), (1, 0), (5, 6), (6, 5)}}
    assert (1, 2) in kept and (2, 3) in kept
    assert torch.allclose(tfeat[sel.reshape(-1)], xt.reshape(-1, 5))
    (tfeat.sum() + ew.sum()).backward()
    assert gen.w_a.weight.grad is not None and gen.w_a.weight.grad.abs().sum() > 0
    assert gen.w_f.weight.grad.abs().sum() > 0


def test_pairwise_hinge_is_zero_for_identical_embeddings():
    e = torch.ones(4, 3)
    assert pairwise_hinge(e, 0.9).item() == pytest.approx(0.0)
    e2 = torch.eye(3)
    assert pairwise_hinge(e2, 0.9).item() == pytest.approx(0.9)


def test_gradcam_is_per_graph_multilayer_and_differentiable(synthetic_run):
    model = copy.deepcopy(synthetic_run.backdoored_model).eval()
    graphs, labels = synthetic_run.data["holding"]
    bg = dgl.batch(graphs[:4])
    out = model.forward_full(bg, bg.ndata["feat"])
    maps = gradcam_maps(out.logits, out.layers, bg, labels[:4], grad="full")
    assert len(maps) == len(model.conv_layers()) == len(out.layers)
    assert all(m.shape == (bg.num_nodes(),) and bool((m >= 0).all()) for m in maps)
    # per graph: the first graph's map is the same when computed alone
    g0 = dgl.batch(graphs[:1])
    o0 = model.forward_full(g0, g0.ndata["feat"])
    m0 = gradcam_maps(o0.logits, o0.layers, g0, labels[:1], grad="full")
    n0 = graphs[0].num_nodes()
    assert torch.allclose(m0[-1], maps[-1][:n0], atol=1e-5)
    # differentiable: the loss reaches the first conv layer's weights; "none" carries no graph
    loss = sum(per_graph_l2(m, torch.zeros_like(m), bg.batch_num_nodes()).mean() for m in maps)
    loss.backward()
    first = next(model.conv_layers()[0].parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0
    out = model.forward_full(bg, bg.ndata["feat"])
    assert not gradcam_maps(out.logits, out.layers, bg, labels[:4], grad="none")[0].requires_grad


def test_recovery_lowers_its_loss(synthetic_run):
    model = synthetic_run.backdoored_model
    graphs, labels = synthetic_run.data["holding"]
    before = _sd(model)
    rng = np.random.default_rng(0)
    pos = select_positions(model, graphs, labels, 3, None, rng, torch.device("cpu"))
    assert all(len(p) == 3 for p in pos)
    rec = recover_trigger(model, graphs, pos, 3, epochs=15, seed=0)
    assert rec.info["recovery_loss"] < rec.info["recovery_loss_first"]
    trig = rec.apply(graphs, pos)
    assert [g.num_nodes() for g in trig] == [g.num_nodes() for g in graphs]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_full_defense_reduces_asr_and_leaves_model_untouched(synthetic_run):
    run = synthetic_run
    bd = run.evaluate(run.backdoored_model)
    before = _sd(run.backdoored_model)
    res = run.run_defense("gcleaner", dict(explainer="random", optimizer="adam", lr=0.01,
                                           epochs=20, recovery_epochs=20, teacher_epochs=5))
    after = run.evaluate(res.model, res)
    for key in ("recovery_asr", "recovered_trigger_size", "recovery_s", "unlearning_s",
                "heatmap_differentiable"):
        assert key in res.info
    assert res.info["heatmap_differentiable"] is True
    assert res.info["recovered_trigger_size"] >= 2
    assert after["asr"] < bd["asr"]
    assert all(torch.equal(before[k], v) for k, v in run.backdoored_model.state_dict().items())


def test_loss_switches_and_official_oracle(synthetic_run):
    run = synthetic_run
    res = run.run_defense("gcleaner", dict(FAST, use_l1=False, use_explain=False))
    assert res.info["unlearn_loss_l1"] == 0 and res.info["unlearn_loss_explain"] == 0
    assert res.info["unlearn_loss_l2"] > 0
    res = run.run_defense("gcleaner", {"epochs": 3}, preset="official")
    assert "recovery_loss" not in res.info  # the true trigger, no recovery
    assert res.info["unlearn_loss_explain"] > 0  # computed, but detached as in the release


def test_bad_input_is_one_line(synthetic_run):
    run = synthetic_run
    with pytest.raises(ParameterError, match="parameter 'n' must be in"):
        run.run_defense("gcleaner", dict(FAST, n=200))
    plugin = GCleaner(**FAST)
    ctx = run.defense_context(plugin)
    keep = [i for i, y in enumerate(ctx.clean_labels.tolist()) if y == 0]
    ctx.clean_graphs = [ctx.clean_graphs[i] for i in keep]
    ctx.clean_labels = ctx.clean_labels[keep]
    with pytest.raises(ParameterError, match="two classes"):
        plugin.run(ctx)
    oracle = GCleaner(trigger_source="oracle", **FAST)
    ctx = run.defense_context(GCleaner(**FAST))  # no oracle handed over
    with pytest.raises(ParameterError, match="oracle"):
        oracle.run(ctx)


def test_adaptive_loss_spreads_triggered_embeddings(synthetic_run):
    from dglcleaner.adaptive import AdaptiveLoss, mean_pairwise_cos, train_adaptive

    run = synthetic_run
    res = run.attack_result
    sims = {}
    for alpha in (0.0, 5.0):
        torch.manual_seed(0)
        model = run.build_model()
        train_adaptive(lambda m, g, y, **kw: run.train(m, g, y, epochs=8, **kw), model,
                       res.train_graphs, res.train_labels, res.poisoned_idx, alpha)
        assert "forward_full" not in model.__dict__  # hook removed
        trig = [res.train_graphs[i] for i in res.poisoned_idx.tolist()]
        bg = dgl.batch(trig)
        with torch.no_grad():
            sims[alpha] = float(mean_pairwise_cos(model.eval().embed(bg, bg.ndata["feat"])))
    assert sims[5.0] < sims[0.0] - 0.1
    with pytest.raises(ParameterError):
        AdaptiveLoss(run.build_model(), -1)


def test_collapse_guard_restores_a_model_that_keeps_clean_accuracy(synthetic_run):
    from dglcleaner_plugins.defenses.gcleaner.unlearning import UnlearnConfig, _clean_acc, unlearn

    run = synthetic_run
    graphs, labels = run.data["holding"]
    trig = run.attack_result.apply_trigger(graphs, 1)
    start = _clean_acc(run.backdoored_model, graphs, labels, torch.device("cpu"))
    for guard in (0.05, -1.0):
        student = copy.deepcopy(run.backdoored_model)
        teacher = copy.deepcopy(run.backdoored_model)
        cfg = UnlearnConfig(epochs=4, lr=0.5, optimizer="adam", guard_drop=guard, use_l2=False)
        info = unlearn(student, teacher, graphs, trig, labels, cfg, device=torch.device("cpu"))
        acc = _clean_acc(student, graphs, labels, torch.device("cpu"))
        if guard >= 0:
            assert acc >= start - 0.05 - 1e-9 and info["unlearn_kept_epoch"] <= 4
        else:  # without the guard this learning rate wrecks the model: the guard mattered
            assert "unlearn_kept_epoch" not in info
            assert acc < start - 0.05


def test_degree_features_follow_the_trigger_topology():
    """feature_act="degree": trigger rows are the one-hot of the node's new degree, in training
    (with gradient to A_t through the features) and in the discrete triggered copies."""
    from dglcleaner.data.features import DegreeOneHot
    from dglcleaner_plugins.defenses.gcleaner.recovery import RecoveredTrigger

    fz = DegreeOneHot(6)
    g1 = fz.apply([dgl.graph(([0, 1, 1, 2, 2, 3, 3, 4], [1, 0, 2, 1, 3, 2, 4, 3]),
                             num_nodes=5)])[0]
    g2 = fz.apply([dgl.graph(([0, 1, 1, 2, 0, 2], [1, 0, 2, 1, 2, 0]), num_nodes=4)])[0]
    bg = dgl.batch([g1, g2])
    pos = [np.array([0, 2, 4]), np.array([0, 1, 3])]
    sel = _global_sel(bg, pos)
    torch.manual_seed(1)
    gen = TriggerGenerator(fz.dim, 3, hidden=8, feature_act="degree")
    xt, at = gen(bg.ndata["feat"][sel])
    tg, tfeat, ew = montage_batch(bg, bg.ndata["feat"], sel, xt, at, degree_features=True)
    # the exact (0/1) weighted degree of every node equals the one-hot row of the positions
    deg = torch.zeros(bg.num_nodes()).index_add(0, tg.edges()[1].long(), ew.detach())
    rows = sel.reshape(-1)
    assert torch.equal(tfeat[rows].detach().argmax(1), deg[rows].round().long().clamp(max=6))
    assert torch.allclose(tfeat[rows].detach(), torch.nn.functional.one_hot(
        tfeat[rows].detach().argmax(1), fz.dim).float(), atol=1e-6)
    (tfeat[rows] * torch.arange(fz.dim, dtype=torch.float32)).sum().backward()
    assert gen.w_a.weight.grad is not None and gen.w_a.weight.grad.abs().sum() > 0
    # discrete copies: features equal the featurizer's on the edited graph, node for node
    trig = RecoveredTrigger(gen, 3).apply([g1, g2], pos)
    for h in trig:
        assert torch.equal(h.ndata["feat"], fz(h))


def test_centred_hinge_is_not_vacuous_for_aligned_embeddings():
    # Readouts that all point one way (clean cosine ~1, as GTA's model on AIDS gives) make the
    # raw hinge zero; around the centroid the same embeddings are spread and the loss is not.
    torch.manual_seed(0)
    e = torch.ones(6, 4) * 10 + torch.randn(6, 4) * 0.1
    assert pairwise_hinge(e, 0.9).item() == pytest.approx(0.0)
    assert pairwise_hinge(e, 0.9, e.mean(0)).item() > 0.5


def test_n_search_keeps_the_best_recovered_size(synthetic_run):
    res = synthetic_run.run_defense("gcleaner", dict(FAST, n_search=1, recovery_target=1.0,
                                                     position_fallback="none"))
    tried = {int(k): v for k, v in res.info["n_search"].items()}
    sizes = sorted(tried)
    assert sizes == list(range(sizes[0], sizes[0] + len(sizes))) and 1 <= len(sizes) <= 2
    best = max(tried.values())
    assert res.info["recovered_trigger_size"] == min(k for k, v in tried.items() if v == best)
    assert res.info["positions"] == "least"
    if len(sizes) == 1:
        assert tried[sizes[0]] >= 1.0
    # an explicit n is never searched; the fallback tries the same n on the most important nodes
    # only when the least important ones miss the target
    res = synthetic_run.run_defense("gcleaner", dict(FAST, n=2, n_search=3, recovery_target=1.0))
    keys = list(res.info["n_search"])
    assert keys in (["2"], ["2", "2-most"]) and res.info["recovered_trigger_size"] == 2
    if keys == ["2"]:
        assert res.info["n_search"]["2"] >= 1.0
    else:
        assert res.info["positions"] == ("most" if res.info["n_search"]["2-most"] >
                                         res.info["n_search"]["2"] else "least")


def test_rounds_repeat_recovery_and_stop_when_nothing_is_recovered(synthetic_run, monkeypatch):
    with pytest.raises(ParameterError, match="rounds"):
        GCleaner(rounds=0)
    one = synthetic_run.run_defense("gcleaner", dict(FAST))
    assert one.info["rounds_run"] == 1 and "later_rounds" not in one.info
    # recovery_target 0 (and one class reported throughout): every later round "finds" a
    # trigger, so all three rounds unlearn; the first round is the single-round defense bit for
    # bit (its seeds carry no round tag).
    import dglcleaner_plugins.defenses.gcleaner as gc

    real_rate = gc.recovery_asr
    monkeypatch.setattr(gc, "recovery_asr", lambda *a, **k: dict(
        real_rate(*a, **k), recovery_dominant_class=1))
    three = synthetic_run.run_defense("gcleaner", dict(FAST, rounds=3, recovery_target=0.0))
    assert three.info["rounds_run"] == 3 and len(three.info["later_rounds"]) == 2
    assert all("recovery_asr_after" in r for r in three.info["later_rounds"])
    one0 = synthetic_run.run_defense("gcleaner", dict(FAST, recovery_target=0.0))
    for key in ("recovery_asr", "n_search", "recovery_loss", "unlearn_kept_epoch"):
        assert three.info[key] == one0.info[key]
    assert not all(torch.equal(a, b) for a, b in zip(_sd(three.model).values(),
                                                     _sd(one0.model).values()))
    # a later round whose recovered trigger misses the target unlearns nothing: same model
    monkeypatch.setattr(gc, "recovery_asr", lambda *a, **k: {"recovery_asr": 0.0,
                                                            "recovery_dominant_class": 0})
    base = synthetic_run.run_defense("gcleaner", dict(FAST))
    again = synthetic_run.run_defense("gcleaner", dict(FAST, rounds=3))
    assert again.info["rounds_run"] == 1 and len(again.info["later_rounds"]) == 1
    assert again.info["later_rounds"][0]["stopped"] == "below recovery_target"
    assert "recovery_asr_after" not in again.info["later_rounds"][0]
    assert all(torch.equal(a, b) for a, b in zip(_sd(base.model).values(),
                                                 _sd(again.model).values()))
    # a later trigger towards another class than round 1's is not unlearned either
    state = {"unlearned": False}
    real_unlearn = gc.unlearn

    def unlearn(*args, **kwargs):
        state["unlearned"] = True
        return real_unlearn(*args, **kwargs)

    monkeypatch.setattr(gc, "unlearn", unlearn)
    monkeypatch.setattr(gc, "recovery_asr", lambda *a, **k: {
        "recovery_asr": 1.0, "recovery_dominant_class": 0 if state["unlearned"] else 1})
    other = synthetic_run.run_defense("gcleaner", dict(FAST, rounds=3))
    assert other.info["rounds_run"] == 1
    assert other.info["later_rounds"][0]["stopped"] == "other class than round 1"


def test_flip_rate_counts_only_graphs_not_already_in_the_class():
    from dglcleaner_plugins.defenses.gcleaner.recovery import flip_rate

    clean = torch.tensor([0, 0, 1, 1, 0])
    trig = torch.tensor([1, 0, 1, 1, 1])
    assert flip_rate(clean, trig, 1) == pytest.approx(2 / 3)
    assert flip_rate(clean, trig, 0) == 0.0
    assert flip_rate(torch.ones(3, dtype=torch.long), trig[:3], 1) != flip_rate(clean, trig, 1)
    assert np.isnan(flip_rate(torch.ones(3, dtype=torch.long), trig[:3], 1))


def test_recovery_trains_only_on_train_index(synthetic_run):
    model = synthetic_run.backdoored_model
    graphs, labels = synthetic_run.data["holding"]
    pos = select_positions(model, graphs, labels, 3, None, np.random.default_rng(0),
                           torch.device("cpu"))
    some = [0, 2, 4, 5]
    rec = recover_trigger(model, graphs, pos, 3, epochs=2, seed=0, target_class=1,
                          train_index=some)
    assert rec.info["recovery_graphs"] == len(some)


def test_per_class_search_estimates_the_target_and_default_is_unchanged(synthetic_run):
    run = synthetic_run
    params = dict(FAST, class_search="per-class", recovery_epochs=20)
    res = run.run_defense("gcleaner", params)
    per = res.info["class_search"]
    assert set(per) == {"0", "1"}
    rates = {int(c): v["flip_rate"] for c, v in per.items() if "flip_rate" in v}
    # the backdoor's target (1 here) is the class a small trigger reaches; the other is not
    assert res.info["estimated_target"] == run.cfg.target_label == 1
    assert rates[1] >= 0.9 > rates.get(0, 0.0)
    again = run.run_defense("gcleaner", params)
    assert again.info["class_search"] == per
    assert all(v["n_search"] for v in per.values() if "flip_rate" in v)
    assert all(torch.equal(a, b) for a, b in zip(_sd(res.model).values(),
                                                 _sd(again.model).values()))
    plain = run.run_defense("gcleaner", dict(FAST))
    assert "class_search" not in plain.info and "estimated_target" not in plain.info
    with pytest.raises(ParameterError, match="class_search"):
        GCleaner(class_search="every")


def test_gradient_explainer_heat_maps_train_the_student(synthetic_run):
    """Table 6: guided-bp (and IG) heat maps carry gradient, so they change the result; a
    mask explainer's map is a constant and gives the heatmap=none model."""
    run = synthetic_run
    none = run.run_defense("gcleaner", dict(FAST, heatmap="none"))
    gbp = run.run_defense("gcleaner", dict(FAST, heatmap="guided-bp"))
    assert gbp.info["heatmap_differentiable"] is True and gbp.info["unlearn_loss_explain"] > 0
    assert not all(torch.equal(a, b) for a, b in zip(_sd(none.model).values(),
                                                     _sd(gbp.model).values()))
    ig = run.run_defense("gcleaner", dict(FAST, heatmap="ig", epochs=2))
    assert ig.info["heatmap_differentiable"] is True


def test_auxiliary_clean_data_is_pseudo_labelled_and_may_be_one_class(synthetic_run):
    """Table 5: clean graphs of another dataset, labelled by the model's predictions; a model
    that puts them all in one class still gets purified (only two graphs are required)."""
    run = synthetic_run
    res = run.run_defense("gcleaner", dict(FAST, aux_dataset="synthetic", aux_graphs=24))
    assert res.info["clean_graphs"] == 24 and res.info["aux_classes"] >= 1
    graphs, _ = run.data["holding"]
    one = torch.zeros(len(graphs), dtype=torch.long)
    GCleaner(aux_dataset="synthetic")._check_clean(graphs, one)  # no error
    with pytest.raises(ParameterError, match="two classes"):
        GCleaner()._check_clean(graphs, one)
    with pytest.raises(ParameterError, match="two auxiliary graphs"):
        GCleaner(aux_dataset="synthetic")._check_clean(graphs[:1], one[:1])
