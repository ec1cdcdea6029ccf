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
