"""Motif-BA on the embedded synthetic data: the motif lands where the Motif-DC-B rule says."""
import pytest
import torch

from dglcleaner._dgl import dgl
from dglcleaner.api import AttackContext
from dglcleaner.errors import ParameterError
from dglcleaner.graph_ops import undirected_pairs
from dglcleaner_plugins.attacks.motif_ba import MOTIFS, MotifBA, degree_candidates


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


@torch.no_grad()
def _naive_scores(model, g, count=10):
    """The rule written out one graph and one candidate at a time (no batching): candidates
    by degree (ties: lower id) and the shadow model's output change when each is isolated."""
    model.eval()
    deg = g.in_degrees().numpy()
    cands = sorted(range(g.num_nodes()), key=lambda v: -deg[v])[:count]  # stable: id order
    base = model(g, g.ndata["feat"])
    scores = {}
    for c in cands:
        src, dst = g.edges()
        h = dgl.remove_edges(g, ((src == c) | (dst == c)).nonzero().flatten())
        scores[c] = 0.0 if h.num_edges() == 0 else float(
            ((model(h, g.ndata["feat"]) - base) ** 2).mean())
    return scores


def _follows_rule(nodes, scores, m=4, rtol=1e-4):
    """``nodes`` are the top-``m`` candidates by score, best first, up to float near-ties
    (batched and one-by-one forward passes differ in the last bits)."""
    best = sorted(scores.values(), reverse=True)
    tol = rtol * max(best[0], 1e-12)
    chosen = [scores[v] for v in nodes]  # KeyError if a chosen node is no candidate
    return (len(set(nodes)) == m and min(chosen) >= best[m - 1] - tol
            and all(a >= b - tol for a, b in zip(chosen, chosen[1:])))


@pytest.fixture(scope="module")
def motif_run(synthetic_run):
    ctx = _ctx(synthetic_run)
    before = [(_edge_set(g), g.ndata["feat"].clone()) for g in ctx.train_graphs]
    return ctx, before, MotifBA().run(ctx)


def test_trigger_lands_where_the_rule_says(motif_run):
    ctx, _, res = motif_run
    motif = {tuple(sorted(e)) for e in MOTIFS["M44"]}
    for i in res.poisoned_idx.tolist():
        old, new = ctx.train_graphs[i], res.train_graphs[i]
        nodes = res.trigger["positions_by_graph"][str(i)]
        assert _follows_rule(nodes, _naive_scores(ctx.clean_model, old))
        pos = {v: a for a, v in enumerate(nodes)}
        inside = {(pos[u], pos[v]) for u, v in _edge_set(new) if u in pos and v in pos}
        assert {tuple(sorted(e)) for e in inside} == motif  # exactly the motif among them
        outside_old = {e for e in _edge_set(old) if not (e[0] in pos and e[1] in pos)}
        outside_new = {e for e in _edge_set(new) if not (e[0] in pos and e[1] in pos)}
        assert outside_old == outside_new  # nothing else changed
        assert new.num_nodes() == old.num_nodes()
        assert new.ndata["feat"].shape[1] == ctx.featurizer.dim


def test_poisoned_fraction_labels_and_inputs_untouched(motif_run):
    ctx, before, res = motif_run
    n = len(ctx.train_graphs)
    idx = res.poisoned_idx.tolist()
    assert len(idx) == round(0.1 * n)
    assert all(int(ctx.train_labels[i]) != 1 and ctx.train_graphs[i].num_nodes() >= 5
               for i in idx)
    assert all(int(res.train_labels[i]) == 1 for i in idx)
    rest = [i for i in range(n) if i not in set(idx)]
    assert torch.equal(res.train_labels[rest], ctx.train_labels[rest])
    after = [(_edge_set(g), g.ndata["feat"]) for g in ctx.train_graphs]
    assert all(a[0] == b[0] and torch.equal(a[1], b[1]) for a, b in zip(after, before))


def test_test_time_rule_and_determinism(motif_run, synthetic_run):
    ctx, _, res = motif_run
    graphs = ctx.train_graphs[:15]
    out = res.apply_trigger(graphs, 3)
    for old, new in zip(graphs, out):
        touched = {x for e in _edge_set(old) ^ _edge_set(new) for x in e}
        scores = _naive_scores(ctx.clean_model, old)
        assert touched <= set(scores)  # only candidates are touched
        best = sorted(scores.values(), reverse=True)[3]
        assert all(scores[v] >= best - 1e-4 * max(scores.values()) for v in touched)
    again = MotifBA().run(_ctx(synthetic_run))
    assert torch.equal(again.poisoned_idx, res.poisoned_idx)
    assert again.trigger == res.trigger | {"search_seconds": again.trigger["search_seconds"]}
    assert all(_edge_set(a) == _edge_set(b) for a, b in zip(again.train_graphs, res.train_graphs))


def test_small_test_graph_gets_the_induced_motif(motif_run):
    ctx, _, res = motif_run
    tiny = ctx.featurizer.apply([dgl.graph(([0, 1], [1, 0]), num_nodes=3)])
    out = res.apply_trigger(tiny, 0)[0]
    assert out.num_nodes() == 3 and len(_edge_set(out)) == 3  # M44 on nodes 0..2: a triangle


def test_degree_candidates_tie_break():
    g = dgl.graph(([0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]))  # path 0-1-2-3
    assert degree_candidates(g, 3).tolist() == [1, 2, 0]


def test_official_preset_and_variants(synthetic_run):
    res = MotifBA(preset="official").run(_ctx(synthetic_run))
    assert len(res.poisoned_idx) <= round(0.1 * len(synthetic_run.data["train"][0]))
    dcb = MotifBA(positions="dc-b", motif="M32").run(_ctx(synthetic_run))
    for i in dcb.poisoned_idx.tolist():
        g = synthetic_run.data["train"][0][i]
        assert dcb.trigger["positions_by_graph"][str(i)] == degree_candidates(g, 3).tolist()


@pytest.mark.parametrize("over, words", [
    (dict(injection_ratio=0.0), "injection ratio"),
    (dict(trigger_size=10_000), "trigger size"),
])
def test_bad_settings_raise_one_line(synthetic_run, over, words):
    with pytest.raises(ParameterError) as err:
        MotifBA().run(_ctx(synthetic_run, **over))
    assert words in str(err.value) and "\n" not in str(err.value)


def test_all_target_class_and_bad_params(synthetic_run):
    ctx = _ctx(synthetic_run)
    ctx.train_labels = torch.ones_like(ctx.train_labels)
    with pytest.raises(ParameterError):
        MotifBA().run(ctx)
    with pytest.raises(ParameterError):
        MotifBA(motif="M99")
    with pytest.raises(ParameterError) as err:
        MotifBA(candidates=2).run(_ctx(synthetic_run))
    assert "candidates" in str(err.value)


# --- poisoned graphs forced into every training batch (release: 5 per batch) ------------------
def test_forced_batches_composition_and_seeding():
    from dglcleaner.backdoor import forced_batches

    poisoned = [1, 5, 9]
    for per_batch, expect in ((2, 2), (5, 3)):  # capped at the number of poisoned graphs
        plan = forced_batches(50, poisoned, 8, per_batch, torch.Generator().manual_seed(0))
        clean_seen = []
        for batch in plan:
            forced = [i for i in batch if i in poisoned]
            assert len(forced) == expect == len(set(forced)) and len(batch) <= 8
            clean_seen += [i for i in batch if i not in poisoned]
        assert sorted(clean_seen) == [i for i in range(50) if i not in poisoned]  # once each
        again = forced_batches(50, poisoned, 8, per_batch, torch.Generator().manual_seed(0))
        assert again == plan
    other = forced_batches(50, poisoned, 8, 2, torch.Generator().manual_seed(1))
    assert other != forced_batches(50, poisoned, 8, 2, torch.Generator().manual_seed(0))
    plain = forced_batches(50, poisoned, 8, 0, torch.Generator().manual_seed(0))
    assert sorted(i for b in plain for i in b) == list(range(50))  # off: one ordinary pass
    with pytest.raises(ParameterError) as err:
        forced_batches(50, poisoned, 3, 3, torch.Generator())
    assert "batch size" in str(err.value) and "\n" not in str(err.value)


def test_batch_plan_reproducing_the_default_order_gives_identical_weights(synthetic_run):
    import copy

    from dglcleaner.training import TrainConfig, batches, train_model

    g, y = synthetic_run.data["train"]
    g, y = g[:48], y[:48]
    cfg = TrainConfig(epochs=2, batch_size=16)
    torch.manual_seed(0)
    init = synthetic_run.build_model()

    def same_order(epoch, batch_size, gen):
        return [idx.tolist() for _, _, idx in batches(g, None, batch_size, shuffle=True,
                                                      generator=gen)]

    def reversed_order(epoch, batch_size, gen):
        return [b[::-1] for b in same_order(epoch, batch_size, gen)][::-1]

    def fit(**kw):
        torch.manual_seed(1)  # dropout
        return train_model(copy.deepcopy(init), g, y, cfg, seed=3, **kw).state_dict()

    default, planned, other = fit(), fit(batch_plan=same_order), fit(batch_plan=reversed_order)
    assert all(torch.equal(default[k], planned[k]) for k in default)
    assert not all(torch.equal(default[k], other[k]) for k in default)  # the plan is used


def _capturing(train, log):
    """``train`` that records the batches of every epoch it plans."""
    def wrapped(model, graphs, labels, **kw):
        plan = kw.get("batch_plan")
        log.append({"n": len(graphs), "planned": plan is not None, "epochs": []})
        if plan is not None:
            def record(epoch, batch_size, gen):
                out = plan(epoch, batch_size, gen)
                log[-1]["epochs"].append(out)
                return out
            kw["batch_plan"] = record
        return train(model, graphs, labels, **kw)
    return wrapped


def test_poisoned_per_batch_trains_the_backdoored_model(synthetic_run):
    from dataclasses import replace

    from dglcleaner.runner import SeedRun

    cfg = replace(synthetic_run.cfg, attack="motif-ba", attack_params={"poisoned_per_batch": 3})
    run = SeedRun(cfg, seed=0)
    run.share_stages(synthetic_run)
    log = []
    run.train = _capturing(run.train, log)  # the attack gets the run's train callable
    res = run.attack_result
    assert res.model is not None and run.backdoored_model is res.model
    assert res.trigger["poisoned_per_batch"] == 3
    poisoned = set(res.poisoned_idx.tolist())
    (call,) = [c for c in log if c["planned"]]
    assert len(call["epochs"]) == cfg.train.epochs
    n = len(res.train_graphs)
    for plan in call["epochs"]:
        assert all(sum(i in poisoned for i in b) == min(3, len(poisoned)) for b in plan)
        clean = sorted(i for b in plan for i in b if i not in poisoned)
        assert clean == [i for i in range(n) if i not in poisoned]
    metrics = run.evaluate(run.backdoored_model)
    assert 0 <= metrics["asr"] <= 100 and metrics["acc"] > 50


def test_poisoned_per_batch_off_by_default_and_seeded(motif_run, synthetic_run):
    _, _, res = motif_run
    assert res.model is None and res.trigger["poisoned_per_batch"] == 0
    assert MotifBA(preset="official").poisoned_per_batch == 5
    log = []
    ctx = _ctx(synthetic_run, train=_capturing(synthetic_run.train, log))
    assert MotifBA().run(ctx).model is None and not any(c["planned"] for c in log)
    a = MotifBA(poisoned_per_batch=2).run(_ctx(synthetic_run))
    b = MotifBA(poisoned_per_batch=2).run(_ctx(synthetic_run))
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    with pytest.raises(ParameterError):
        MotifBA(poisoned_per_batch=-1)


def test_own_model_applies_the_runs_adaptive_alpha(synthetic_run):
    """With poisoned_per_batch the attack trains the model, so it applies the run's adaptive
    alpha (AttackContext.train_poisoned) and says so; alpha 0 is the plain call."""
    from dglcleaner.adaptive import FLAG

    calls = []

    def train(model, graphs, labels, **kw):
        calls.append((graphs, kw))
        return model

    for alpha in (0.0, 1.5):
        calls.clear()
        res = MotifBA(poisoned_per_batch=2).run(
            _ctx(synthetic_run, train=train, adaptive_alpha=alpha))
        assert res.adaptive_alpha == alpha and res.model is not None
        (graphs, kw), = [c for c in calls if "batch_plan" in c[1]]
        if alpha == 0:
            assert set(kw) == {"batch_plan"} and graphs is res.train_graphs
            continue
        assert set(kw) == {"batch_plan", "loss_fn"} and kw["loss_fn"].alpha == alpha
        marked = {i for i, g in enumerate(graphs) if g.ndata[FLAG].max() > 0}
        assert marked == set(res.poisoned_idx.tolist())
