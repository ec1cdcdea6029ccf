"""Explainer plugins: protocol, determinism, model left untouched, agreement with DGL's
explainers, and a sanity check on a model whose prediction depends on a planted clique."""
import numpy as np
import pytest
import torch

from dglcleaner._dgl import dgl
from dglcleaner.errors import DataError, ParameterError, UnknownNameError
from dglcleaner.graph_ops import replace_subgraph
from dglcleaner.models import build_model
from dglcleaner.runner import get_explainer
from dglcleaner.training import TrainConfig, train_model

# Small settings so that every explainer runs in well under a second on a few graphs.
FAST = {
    "random": {},
    "gnnexplainer": {"epochs": 20},
    "pgexplainer": {"epochs": 5},
    "subgraphx": {"num_rollouts": 1, "shapley_steps": 4, "num_child": 3},
    "gradcam": {},
    "ig": {"steps": 8},
    "guided-bp": {},
}
PER_GRAPH = ["random", "gnnexplainer", "subgraphx", "gradcam", "ig", "guided-bp"]
MAX_DEG = 12
K = 4  # planted clique size


def _tree(n, rng):
    src = [int(rng.integers(i)) for i in range(1, n)]
    u = np.array(src + list(range(1, n)))
    v = np.array(list(range(1, n)) + src)
    return dgl.graph((torch.as_tensor(u), torch.as_tensor(v)), num_nodes=n)


def _featurize(g):
    g.ndata["feat"] = torch.nn.functional.one_hot(
        g.in_degrees().clamp(max=MAX_DEG), MAX_DEG + 1).float()
    return g


def _make(num, seed):
    """Random trees; odd-indexed ones get a K4 clique on K random nodes (label 1)."""
    rng = np.random.default_rng(seed)
    graphs, labels, planted = [], [], []
    clique = [(a, b) for a in range(K) for b in range(a + 1, K)]
    for i in range(num):
        g = _tree(int(rng.integers(12, 21)), rng)
        nodes = None
        if i % 2:
            nodes = np.sort(rng.choice(g.num_nodes(), K, replace=False))
            g = replace_subgraph(g, nodes, clique)
        graphs.append(_featurize(g))
        labels.append(i % 2)
        planted.append(nodes)
    return graphs, torch.tensor(labels), planted


@pytest.fixture(scope="module")
def planted():
    """A GIN trained to detect the clique, and held-out graphs that carry one."""
    torch.manual_seed(0)
    graphs, labels, _ = _make(200, 0)
    model = build_model("gin", MAX_DEG + 1, 2, hidden=32, num_layers=3)
    train_model(model, graphs, labels, TrainConfig(epochs=25, batch_size=32), seed=0)
    test_g, test_y, test_nodes = _make(40, 1)
    bg = dgl.batch(test_g)
    with torch.no_grad():
        acc = float((model(bg, bg.ndata["feat"]).argmax(1) == test_y).float().mean())
    assert acc > 0.9, f"the planted-clique model did not learn (acc {acc:.2f})"
    trig = [(g, n) for g, n in zip(test_g, test_nodes) if n is not None]
    return model.eval(), trig


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(1)
    graphs, _, _ = _make(3, 5)
    model = build_model("gin", MAX_DEG + 1, 2, hidden=16, num_layers=3).eval()
    return model, graphs


def _scores(name, model, graphs, **kw):
    bg = dgl.batch(graphs)
    params = dict(FAST[name], **kw)
    return get_explainer(name, **params).node_importance(model, bg, bg.ndata["feat"])


@pytest.mark.parametrize("name", sorted(FAST))
def test_shape_sign_determinism_and_model_untouched(name, small):
    model, graphs = small
    model.train()  # the caller's mode must come back
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a = _scores(name, model, graphs)
    b = _scores(name, model, graphs)
    assert a.shape == (sum(g.num_nodes() for g in graphs),)
    assert a.dtype == torch.float32
    assert bool((a >= 0).all()) and bool(torch.isfinite(a).all())
    assert torch.equal(a, b), "same seed must give the same scores"
    assert a.max() > 0
    assert model.training
    assert all(p.requires_grad and p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"{name} changed {k}"
    model.eval()


@pytest.mark.parametrize("name", PER_GRAPH)
def test_per_graph_explainers_do_not_depend_on_the_batch(name, small):
    model, graphs = small
    together = _scores(name, model, graphs)
    alone = torch.cat([_scores(name, model, [g]) for g in graphs])
    assert torch.allclose(together, alone, atol=1e-5)


@pytest.mark.parametrize("name", ["random", "gnnexplainer", "pgexplainer"])
def test_seed_changes_seeded_explainers(name, small):
    model, graphs = small
    assert not torch.equal(_scores(name, model, graphs, seed=0),
                           _scores(name, model, graphs, seed=1))


def test_gnnexplainer_batched_engine_matches_dgl(small):
    model, graphs = small
    ours = _scores("gnnexplainer", model, graphs, engine="batched")
    dgls = _scores("gnnexplainer", model, graphs, engine="dgl")
    assert torch.allclose(ours, dgls, atol=1e-4)


def test_gnnexplainer_dgl_engine_refuses_other_targets(small):
    model, graphs = small
    bg = dgl.batch(graphs)
    with torch.no_grad():
        other = 1 - model(bg, bg.ndata["feat"]).argmax(1)
    exp = get_explainer("gnnexplainer", epochs=2, engine="dgl")
    with pytest.raises(ParameterError):
        exp.node_importance(model, bg, bg.ndata["feat"], target=other)
    # the batched engine explains any class, and the class matters
    batched = get_explainer("gnnexplainer", epochs=20)
    assert not torch.equal(batched.node_importance(model, bg, bg.ndata["feat"], target=other),
                           batched.node_importance(model, bg, bg.ndata["feat"]))


def test_subgraphx_batched_shapley_matches_dgl(small):
    from dgl.nn.pytorch.explain import SubgraphX

    from dglcleaner_plugins.explainers.subgraphx import _subgraphx_class

    model, graphs = small
    g = graphs[0]
    values = []
    for cls in (SubgraphX, _subgraphx_class()):
        exp = cls(model, num_hops=3, shapley_steps=15)
        exp.graph, exp.feat, exp.target_class, exp.kwargs = g, g.ndata["feat"], 1, {}
        np.random.seed(7)
        values.append(exp.shapley(torch.tensor([0, 1, 2])))
    assert values[0] == pytest.approx(values[1], abs=1e-5)
    assert values[0] != 0


def test_subgraphx_marks_node_min_nodes(small):
    model, graphs = small
    s = _scores("subgraphx", model, graphs[:1])
    assert 1 <= int((s == 1).sum()) <= 3 and set(s.tolist()) <= {0.0, 1.0}


def test_pgexplainer_refuses_one_way_edges(small):
    model, _ = small
    g = _featurize(dgl.graph(([0, 1, 2], [1, 2, 3]), num_nodes=4))
    with pytest.raises(DataError, match="reverse"):
        get_explainer("pgexplainer", epochs=1).node_importance(model, g, g.ndata["feat"])


def test_bad_inputs_are_one_line_errors(small):
    model, graphs = small
    bg = dgl.batch(graphs)
    with pytest.raises(UnknownNameError) as err:
        get_explainer("gnnexplaner")
    assert "\n" not in str(err.value) and "gnnexplainer" in str(err.value)
    with pytest.raises(ParameterError):
        get_explainer("gradcam", layer="middle")
    with pytest.raises(ParameterError):
        get_explainer("gradcam", layer="7").node_importance(model, bg, bg.ndata["feat"])
    with pytest.raises(ParameterError):
        get_explainer("ig").node_importance(model, bg, bg.ndata["feat"], target=[0, 1])
    with pytest.raises(ParameterError):
        get_explainer("ig").node_importance(model, bg, bg.ndata["feat"][:3])


def test_entry_point_names_match_classes():
    from dglcleaner.registry import find, load_spec

    for name in FAST:
        assert load_spec(find("explainer", name)).name == name


def test_gradcam_layers(small):
    model, graphs = small
    last = _scores("gradcam", model, graphs)
    assert torch.allclose(last, _scores("gradcam", model, graphs, layer="-1"))
    assert not torch.allclose(last, _scores("gradcam", model, graphs, layer="all"))


def test_guided_backprop_differs_from_plain_gradient(small):
    from dglcleaner_plugins.explainers.guided_backprop import guided_gradients

    model, graphs = small
    bg = dgl.batch(graphs)
    x = bg.ndata["feat"].clone().requires_grad_(True)
    target = torch.zeros(bg.batch_size, dtype=torch.long)
    plain = torch.autograd.grad(model(bg, x)[:, 0].sum(), x)[0]
    guided = guided_gradients(model, bg, bg.ndata["feat"], target)
    assert not torch.allclose(plain, guided)
    with torch.no_grad():  # the forward pass itself is unchanged by the guided mode
        from dglcleaner_plugins.explainers.guided_backprop import _GuidedMode

        with _GuidedMode():
            out = model(bg, bg.ndata["feat"])
        assert torch.allclose(out, model(bg, bg.ndata["feat"]))


def _precision_at_k(name, model, trig, **kw):
    """Mean fraction of the K top-scored nodes that belong to the planted clique."""
    bg = dgl.batch([g for g, _ in trig])
    s = get_explainer(name, **dict(FAST[name], **kw)).node_importance(
        model, bg, bg.ndata["feat"], target=1)
    hits = [len(set(torch.topk(part, K).indices.tolist()) & set(nodes.tolist())) / K
            for part, (_, nodes) in zip(torch.split(s, bg.batch_num_nodes().tolist()), trig)]
    return float(np.mean(hits))


@pytest.mark.parametrize("name,kw", [
    ("gradcam", {}), ("gradcam", {"layer": "all"}), ("ig", {"steps": 20}), ("guided-bp", {}),
    ("gnnexplainer", {"epochs": 100}), ("pgexplainer", {"epochs": 30}),
    pytest.param("subgraphx", {"num_rollouts": 10, "shapley_steps": 20, "num_child": 6,
                               "node_min": 4}, marks=pytest.mark.slow)])
def test_planted_clique_nodes_rank_high(name, kw, planted):
    model, trig = planted
    chance = _precision_at_k("random", model, trig)
    prec = _precision_at_k(name, model, trig, **kw)
    assert prec >= 0.6 and prec > chance + 0.25, (name, prec, chance)


@pytest.mark.parametrize("name", sorted(FAST))
def test_heat_map_trains_the_model_only_for_gradient_explainers(name, small):
    """heat_map (GCleaner's Table 6 loss source): IG and guided backprop keep the autograd
    graph to the parameters and equal node_importance in value; the others are constants."""
    model, graphs = small
    bg = dgl.batch(graphs)
    exp = get_explainer(name, **FAST[name])
    target = torch.tensor([0, 1, 1])
    flags = [p.requires_grad for p in model.parameters()]
    heat = exp.heat_map(model, bg, bg.ndata["feat"], target)
    assert [p.requires_grad for p in model.parameters()] == flags and not model.training
    assert heat.shape == (bg.num_nodes(),)
    if name not in ("ig", "guided-bp"):
        assert not exp.differentiable and not heat.requires_grad
        return
    assert exp.differentiable and heat.requires_grad
    ref = exp.node_importance(model, bg, bg.ndata["feat"], target)
    assert torch.allclose(heat.detach(), ref, atol=1e-5)
    model.zero_grad()
    (heat ** 2).sum().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    assert all(torch.isfinite(g).all() for g in grads)
    model.zero_grad()


def _ig_loop(model, graph, feat, target, steps):
    """IG as one forward/backward per interpolation step (the definition)."""
    rows = torch.arange(graph.batch_size)
    total = torch.zeros_like(feat)
    for i in range(steps):
        x = (feat * ((i + 0.5) / steps)).requires_grad_(True)
        total = total + torch.autograd.grad(model(graph, x)[rows, target].sum(), x)[0]
    return feat * total / steps


@pytest.mark.parametrize("training", [False, True])
def test_ig_batched_steps_equal_one_pass_per_step(training, small, monkeypatch):
    """Eval mode: the steps run as copies in one batch (and in chunks of it); train mode keeps
    one pass per step, as BatchNorm's batch statistics would otherwise mix the copies."""
    from dglcleaner_plugins.explainers import integrated_gradients as ig

    import copy

    model, graphs = small
    model = copy.deepcopy(model).train(training)  # train mode moves BatchNorm's running stats
    bg = dgl.batch(graphs)
    feat, target = bg.ndata["feat"], torch.tensor([0, 1, 1])
    torch.manual_seed(0)
    ref = _ig_loop(model, bg, feat, target, 7)
    size = bg.num_nodes() * max(feat.shape[1], 64)
    for cap in (ig.MAX_VALUES_PER_PASS, 3 * size):  # all steps, chunks of 3
        monkeypatch.setattr(ig, "MAX_VALUES_PER_PASS", cap)
        torch.manual_seed(0)
        out = ig.integrated_gradients(model, bg, feat, target, 7)
        assert torch.allclose(out, ref, atol=1e-6)
