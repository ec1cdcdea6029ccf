"""Sub-BA on the embedded synthetic data: the trigger lands where the rule says."""
import pytest
import torch

from dglcleaner.api import AttackContext
from dglcleaner.errors import ParameterError
from dglcleaner.graph_ops import undirected_pairs
from dglcleaner_plugins.attacks.sub_ba import SubBA


def _ctx(run, **over):
    g, y = run.data["train"]
    kw = dict(train_graphs=g, train_labels=y, num_classes=run.data["num_classes"],
              featurizer=run.data["featurizer"], target_label=1, injection_ratio=0.1,
              trigger_size=4, seed=3, device=torch.device("cpu"),
              build_model=run.build_model, train=run.train)
    kw.update(over)
    return AttackContext(**kw)


def _edge_set(g):
    u, v = undirected_pairs(g)
    return set(zip(u.tolist(), v.tolist()))


def test_poisoned_fraction_labels_and_trigger_edges(synthetic_run):
    ctx = _ctx(synthetic_run)
    before = [(g.num_nodes(), _edge_set(g)) for g in ctx.train_graphs]
    res = SubBA().run(ctx)
    n = len(ctx.train_graphs)
    idx = res.poisoned_idx.tolist()
    assert len(idx) == round(0.1 * n)
    assert all(int(ctx.train_labels[i]) != 1 for i in idx)  # drawn from non-target graphs
    assert all(int(res.train_labels[i]) == 1 for i in idx)
    untouched = [i for i in range(n) if i not in set(idx)]
    assert torch.equal(res.train_labels[untouched], ctx.train_labels[untouched])
    trig = {tuple(e) for e in res.trigger["edges"]}
    for i in idx:
        g_old, g_new = ctx.train_graphs[i], res.train_graphs[i]
        assert g_new.num_nodes() == g_old.num_nodes()
        added = _edge_set(g_new) - _edge_set(g_old)
        removed = _edge_set(g_old) - _edge_set(g_new)
        touched = {x for e in added | removed for x in e}
        assert len(touched) <= 4  # every change sits on the k chosen nodes
        assert len(_edge_set(g_new)) - len(added) + len(removed) == len(_edge_set(g_old))
        assert g_new.ndata["feat"].shape[1] == ctx.featurizer.dim
    # input graphs were not mutated
    assert [(g.num_nodes(), _edge_set(g)) for g in ctx.train_graphs] == before
    assert len(trig) > 0


def test_test_time_trigger_is_the_trigger_graph(synthetic_run):
    """On edgeless graphs the planted edges are exactly the trigger's, on k distinct nodes."""
    from dglcleaner._dgl import dgl

    ctx = _ctx(synthetic_run)
    res = SubBA().run(ctx)
    empty = ctx.featurizer.apply([dgl.graph(([], []), num_nodes=12) for _ in range(5)])
    out = res.apply_trigger(empty, 0)
    degree_seq = sorted(sum(1 for e in res.trigger["edges"] if x in e) for x in range(4))
    for g in out:
        edges = _edge_set(g)
        assert len(edges) == len(res.trigger["edges"])
        touched = {x for e in edges for x in e}
        assert len(touched) <= 4
        assert sorted(int(d) for d in g.in_degrees()[sorted(touched)]) == \
            [d for d in degree_seq if d > 0]
        assert g.num_nodes() == 12


def test_same_seed_same_result(synthetic_run):
    a = SubBA().run(_ctx(synthetic_run))
    b = SubBA().run(_ctx(synthetic_run))
    assert torch.equal(a.poisoned_idx, b.poisoned_idx) and a.trigger == b.trigger
    for ga, gb in zip(a.train_graphs, b.train_graphs):
        assert _edge_set(ga) == _edge_set(gb)
    c = SubBA().run(_ctx(synthetic_run, seed=4))
    assert c.trigger != a.trigger or not torch.equal(c.poisoned_idx, a.poisoned_idx)


def test_official_preset_fixed_positions(synthetic_run):
    res = SubBA(preset="official").run(_ctx(synthetic_run))
    graphs = [g for g in synthetic_run.data["eval"][0] if g.num_nodes() >= 25][:5]
    outs = res.apply_trigger(graphs, 0)
    touched = []
    for g_old, g_new in zip(graphs, outs):
        diff = _edge_set(g_new) ^ _edge_set(g_old)
        touched.append({x for e in diff for x in e})
    nonempty = [t for t in touched if t]
    assert nonempty and all(t <= nonempty[0] | t for t in nonempty)
    union = set().union(*nonempty)
    assert len(union) <= 4  # the same indices in every graph


@pytest.mark.parametrize("over,match", [({"trigger_size": 10_000}, "trigger size"),
                                         ({"injection_ratio": 1.5}, "injection ratio"),
                                         ({"target_label": 7}, "target label")])
def test_bad_settings_one_line(synthetic_run, over, match):
    with pytest.raises(ParameterError, match=match) as exc:
        SubBA().run(_ctx(synthetic_run, **over))
    assert "\n" not in str(exc.value)


def test_all_target_class_refused(synthetic_run):
    g, y = synthetic_run.data["train"]
    with pytest.raises(ParameterError, match="every training graph"):
        SubBA().run(_ctx(synthetic_run, train_labels=torch.ones_like(y)))


def test_trigger_seed_pins_the_trigger_graph(synthetic_run):
    """``trigger_seed`` fixes the trigger across run seeds; the default follows the run seed;
    the ``official`` preset uses the released code's draw, ``erdos_renyi_graph(k, .8, seed=10)``."""
    import networkx as nx

    pinned = [SubBA(trigger_seed=10).run(_ctx(synthetic_run, seed=s)).trigger["edges"]
              for s in (3, 4, 5)]
    assert pinned[0] == pinned[1] == pinned[2]
    assert pinned[0] == [list(e) for e in sorted(nx.erdos_renyi_graph(4, 0.8, seed=10).edges())]
    drawn = {str(SubBA().run(_ctx(synthetic_run, seed=s)).trigger["edges"]) for s in range(6)}
    assert len(drawn) > 1
    assert SubBA(preset="official").trigger_seed == 10
    with pytest.raises(ParameterError, match="trigger_seed"):
        SubBA(trigger_seed=-1)
