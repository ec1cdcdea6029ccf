"""Exp-BA on the embedded synthetic data: the trigger lands on the explainer's top-k nodes."""
import pytest
import torch

from dglcleaner._dgl import dgl
from dglcleaner.api import AttackContext
from dglcleaner.errors import ParameterError, UnknownNameError
from dglcleaner.graph_ops import undirected_pairs
from dglcleaner.runner import get_explainer
from dglcleaner_plugins.attacks.exp_ba import ExpBA

K = 4


def _ctx(run, **over):
    g, y = run.data["train"]
    kw = dict(train_graphs=g, train_labels=y, num_classes=run.data["num_classes"],
              featurizer=run.data["featurizer"], target_label=1, injection_ratio=0.1,
              trigger_size=K, seed=3, device=torch.device("cpu"),
              build_model=run.build_model, train=run.train, clean_model=run.clean_model,
              get_explainer=get_explainer)
    kw.update(over)
    return AttackContext(**kw)


def _edge_set(g):
    u, v = undirected_pairs(g)
    return set(zip(u.tolist(), v.tolist()))


def _scores(model, graphs):
    """Grad-CAM node scores under ``model``, per graph."""
    bg = dgl.batch(graphs)
    s = get_explainer("gradcam").node_importance(model, bg, bg.ndata["feat"])
    return list(torch.split(s, bg.batch_num_nodes().tolist()))


def _is_top_k(scores, nodes, most=True):
    """``nodes`` are K nodes with the highest (lowest) scores; ties may go either way."""
    rest = [j for j in range(len(scores)) if j not in set(nodes)]
    if most:
        return (len(set(nodes)) == K
                and float(scores[nodes].min()) >= float(scores[rest].max()) - 1e-6)
    return len(set(nodes)) == K and float(scores[nodes].max()) <= float(scores[rest].min()) + 1e-6


def _trigger_edges_on(nodes, trig):
    return {(min(nodes[a], nodes[b]), max(nodes[a], nodes[b])) for a, b in trig}


@pytest.mark.parametrize("least", [False, True])
def test_trigger_on_explainer_ranked_nodes(synthetic_run, least):
    ctx = _ctx(synthetic_run)
    before = [_edge_set(g) for g in ctx.train_graphs]
    res = ExpBA(explainer="gradcam", least=least).run(ctx)
    idx = res.poisoned_idx.tolist()
    n = len(ctx.train_graphs)
    assert len(idx) == round(0.1 * n)
    assert all(int(ctx.train_labels[i]) != 1 and int(res.train_labels[i]) == 1 for i in idx)
    rest = [i for i in range(n) if i not in set(idx)]
    assert torch.equal(res.train_labels[rest], ctx.train_labels[rest])
    assert all(res.train_graphs[i] is ctx.train_graphs[i] for i in rest)
    scores = _scores(synthetic_run.clean_model, [ctx.train_graphs[i] for i in idx])
    trig = {tuple(e) for e in res.trigger["edges"]}
    for i, sc in zip(idx, scores):
        nodes = res.trigger["train_positions"][str(i)]
        assert _is_top_k(sc, nodes, most=not least), (sc, nodes)
        new = res.train_graphs[i]
        assert new.num_nodes() == ctx.train_graphs[i].num_nodes()
        inside = {(a, b) for a, b in _edge_set(new) if a in nodes and b in nodes}
        assert inside == _trigger_edges_on(nodes, trig)  # exactly the trigger's edges
        outside = {e for e in _edge_set(new) if not (e[0] in nodes and e[1] in nodes)}
        old_out = {e for e in before[i] if not (e[0] in nodes and e[1] in nodes)}
        assert outside == old_out  # nothing else changed
        assert torch.equal(new.ndata["feat"], ctx.featurizer(new))
    assert [_edge_set(g) for g in ctx.train_graphs] == before  # caller's graphs untouched


def test_most_and_least_positions_differ(synthetic_run):
    ctx = _ctx(synthetic_run)
    most = ExpBA(explainer="gradcam").run(ctx).trigger["train_positions"]
    least = ExpBA(explainer="gradcam", least=True).run(ctx).trigger["train_positions"]
    assert most.keys() == least.keys()
    assert all(not set(most[i]) & set(least[i]) for i in most)


def test_test_positions_follow_the_rule_and_official_is_random(synthetic_run):
    ctx = _ctx(synthetic_run)
    eval_g = synthetic_run.data["eval"][0][:12]
    scores = _scores(synthetic_run.clean_model, eval_g)
    res = ExpBA(explainer="gradcam").run(ctx)

    def touched(g_old, g_new):
        return sorted({x for e in _edge_set(g_old) ^ _edge_set(g_new) for x in e})

    for g_old, g_new, sc in zip(eval_g, res.apply_trigger(eval_g, 5), scores):
        nodes = touched(g_old, g_new)
        assert len(nodes) <= K
        # every changed pair lies among K top-scored nodes
        top = torch.argsort(sc, descending=True)[:K].tolist()
        assert all(float(sc[j]) >= float(sc[top[-1]]) - 1e-6 for j in nodes)
    official = ExpBA(explainer="gradcam", preset="official").run(ctx)
    assert official.trigger["test_positions"] == "random"
    on_top = [all(float(sc[j]) >= float(torch.sort(sc, descending=True).values[K - 1]) - 1e-6
                  for j in touched(g_old, g_new))
              for g_old, g_new, sc in zip(eval_g, official.apply_trigger(eval_g, 5), scores)]
    assert not all(on_top)  # random positions are not the explainer's
    # official poisons the first eligible graphs
    labels = ctx.train_labels
    first = [i for i in range(len(labels)) if int(labels[i]) != 1][:len(official.poisoned_idx)]
    assert official.poisoned_idx.tolist() == first


def test_same_seed_same_result(synthetic_run):
    ctx = _ctx(synthetic_run)
    a = ExpBA(explainer="random").run(ctx)
    b = ExpBA(explainer="random").run(ctx)
    assert a.trigger == b.trigger
    assert torch.equal(a.poisoned_idx, b.poisoned_idx)
    for i in a.poisoned_idx.tolist():
        assert _edge_set(a.train_graphs[i]) == _edge_set(b.train_graphs[i])
    c = ExpBA(explainer="random").run(_ctx(synthetic_run, seed=4))
    assert c.trigger["train_positions"] != a.trigger["train_positions"]


def test_bad_input_one_line_errors(synthetic_run):
    with pytest.raises(UnknownNameError) as err:
        ExpBA(explainer="gnn-explainer")
    assert "\n" not in str(err.value) and "gnnexplainer" in str(err.value)
    with pytest.raises(ParameterError):
        ExpBA(test_positions="nowhere")
    with pytest.raises(ParameterError):
        ExpBA(explainer="gradcam").run(_ctx(synthetic_run, injection_ratio=1.5))
    with pytest.raises(ParameterError):
        ExpBA(explainer="gradcam").run(_ctx(synthetic_run, trigger_size=500))


@pytest.mark.slow
def test_backdoor_works_end_to_end():
    """Through the runner with the default explainer: the backdoor is learned (measured on
    synthetic, 15 epochs, seed 0: ASR 36.5 % vs 0 % on the clean model; Grad-CAM positions
    82.7 %, least-important GNNExplainer positions 94.2 %, Sub-BA 71.2 %)."""
    from dglcleaner.runner import DefendConfig, SeedRun
    from dglcleaner.training import TrainConfig

    run = SeedRun(DefendConfig(dataset="synthetic", attack="exp-ba", defense="none",
                               device="cpu", train=TrainConfig(epochs=15)), seed=0)
    clean = run.evaluate(run.clean_model)
    bd = run.evaluate(run.backdoored_model)
    assert bd["asr"] >= clean["asr"] + 25, (bd, clean)  # the trigger alone does not do it
    assert bd["acc"] >= clean["acc"] - 10, (bd, clean)
