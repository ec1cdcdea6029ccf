"""Every label-poisoning attack on a small CSBM: budget, labeled-only flips, determinism, and
damage to a linear SGC surrogate larger than random flips."""
from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
import torch.nn.functional as F

from dglcleaner.registry import load_plugin
from dglcleaner_plugins.label_poisoning._common import unlabeled
from dglcleaner_plugins.label_poisoning.meta import Meta, log_esp, select_distinct, soft_topk
from dglcleaner_plugins.label_poisoning.sgc import SGCBin, sgc_operator

from .conftest import context

NAMES = ["rnd", "rnd-bin", "deg", "deg-bin", "lp", "lafak", "mg", "meta", "sgc", "sgc-bin", "ntk", "ntk-bin"]
EXACT = {"rnd", "rnd-bin", "deg", "deg-bin", "sgc", "sgc-bin", "ntk", "ntk-bin", "lp", "mg", "meta"}
FAST = {"meta": {"outer_steps": 8, "inner_steps": 5}, "lp": {"steps": 60}}

_cache = {}


def _run(ds, name, seed=0, budget=12):
    key = (name, seed, budget)
    if key not in _cache:
        ctx = context(ds, budget=budget, seed=seed)
        before = ctx.labels.clone()
        res = load_plugin("attack", name)(**FAST.get(name, {})).run(ctx)
        assert torch.equal(ctx.labels, before), "attack mutated ctx.labels"
        _cache[key] = (ctx, res)
    return _cache[key]


def surrogate_acc(ctx, labels):
    """Test accuracy of the closed-form SGC ridge surrogate trained on ``labels``."""
    m = sgc_operator(ctx, 1.0, 2, False)
    yl = F.one_hot(labels[ctx.labeled_idx], ctx.num_classes).double()
    return float(((m @ yl).argmax(1) == ctx.labels[unlabeled(ctx)]).double().mean())


@pytest.mark.parametrize("name", NAMES)
def test_budget_and_labeled_only(csbm, name):
    ctx, res = _run(csbm, name)
    changed = torch.nonzero(res.labels != ctx.labels).flatten()
    assert torch.equal(changed.sort().values, res.flipped_idx.sort().values)
    assert len(changed) <= ctx.budget
    if name in EXACT:
        assert len(changed) == ctx.budget
    assert len(changed) > 0
    assert bool(torch.isin(changed, ctx.labeled_idx).all())
    assert res.labels.shape == ctx.labels.shape and res.labels.dtype == torch.long
    assert int(res.labels.max()) < ctx.num_classes and int(res.labels.min()) >= 0


@pytest.mark.parametrize("name", NAMES)
def test_deterministic(csbm, name):
    ctx, res = _run(csbm, name)
    ctx2 = context(csbm, budget=12, seed=0)
    res2 = load_plugin("attack", name)(**FAST.get(name, {})).run(ctx2)
    assert torch.equal(res.labels, res2.labels)


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("rnd", "rnd-bin")])
def test_stronger_than_random(csbm, name):
    ctx, res = _run(csbm, name)
    _, rnd = _run(csbm, "rnd")
    assert surrogate_acc(ctx, res.labels) < surrogate_acc(ctx, rnd.labels)


def test_binary_variants_swap_the_two_largest_classes(csbm):
    ctx, res = _run(csbm, "sgc-bin")
    counts = torch.bincount(csbm.labels)
    a, b = torch.argsort(-counts, stable=True)[:2].tolist()
    changed = res.flipped_idx
    old, new = ctx.labels[changed], res.labels[changed]
    assert bool((((old == a) & (new == b)) | ((old == b) & (new == a))).all())


def test_sgc_bin_is_the_exact_optimum_of_its_linear_objective(csbm):
    """Brute force over all B-subsets of candidates on a tiny budget equals the top-B rule."""
    ctx = context(csbm, budget=2, n_labeled=14)
    res = SGCBin().run(ctx)
    m = sgc_operator(ctx, 1.0, 2, False)
    yu = F.one_hot(ctx.labels[unlabeled(ctx)], ctx.num_classes).double()

    def objective(labels):
        yl = F.one_hot(labels[ctx.labeled_idx], ctx.num_classes).double()
        return float(((m @ yl) * yu).sum())

    counts = torch.bincount(csbm.labels)
    a, b = torch.argsort(-counts, stable=True)[:2].tolist()
    cand = [int(i) for i in ctx.labeled_idx if int(ctx.labels[i]) in (a, b)]
    best = min(
        objective(torch.where(torch.isin(torch.arange(len(ctx.labels)), torch.tensor(s)),
                              a + b - ctx.labels, ctx.labels))
        for s in itertools.combinations(cand, 2)
    )
    assert objective(res.labels) == pytest.approx(best, rel=1e-9, abs=1e-9)


def test_soft_topk_matches_enumeration():
    w = torch.randn(8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for k in (1, 3, 5):
        mu = soft_topk(w.clone(), k)
        z, marg = 0.0, torch.zeros(8, dtype=torch.float64)
        for s in itertools.combinations(range(8), k):
            p = torch.exp(w[list(s)].sum())
            z = z + p
            marg[list(s)] += p
        assert torch.allclose(mu, marg / z, atol=1e-10)
        assert float(mu.sum()) == pytest.approx(k)
        assert float(log_esp(w, k)) == pytest.approx(float(torch.log(z)))


def test_official_presets_run_and_keep_quirks(csbm):
    ctx = context(csbm, budget=12)
    mg = load_plugin("attack", "mg")(preset="official").run(ctx)
    # official MG flips every selected node to class C-1
    assert bool((mg.labels[mg.flipped_idx] == csbm.num_classes - 1).all())
    assert len(mg.flipped_idx) <= 12


def test_unknown_param_is_a_user_error():
    from dglcleaner.errors import ParameterError

    with pytest.raises(ParameterError):
        Meta(nope=1)
    with pytest.raises(ParameterError):
        SGCBin(lam=-1.0)


@pytest.mark.parametrize("budget", [5, 30, 60])
def test_meta_spends_the_budget_exactly_and_is_seeded(csbm, budget):
    """Exactly B distinct labeled nodes change label (B = |L| included), and a seed fixes them."""
    runs = []
    for _ in range(2):
        ctx = context(csbm, budget=budget, seed=3)
        runs.append((ctx, Meta(outer_steps=6, inner_steps=3, patience=6).run(ctx)))
    (ctx, res), (_, res2) = runs
    changed = torch.nonzero(res.labels != ctx.labels).flatten()
    assert len(changed) == budget == len(res.flipped_idx)
    assert bool(torch.isin(changed, ctx.labeled_idx).all())
    assert torch.equal(res.labels, res2.labels)
    assert res.info["outer_steps_run"] >= 1


def test_select_distinct_is_topk_with_refill():
    """One class per node: equals a greedy pass over all (node, class) scores in decreasing order."""
    gen = torch.Generator().manual_seed(0)
    for trial in range(20):
        s = torch.rand(12, 4, generator=gen, dtype=torch.float64)
        s[trial % 12] += 5  # one node holds several of the top scores
        k = 1 + trial % 12
        rows, cols = select_distinct(s, k)
        seen, want = set(), []
        for flat in torch.argsort(-s.flatten()).tolist():
            r, c = divmod(flat, 4)
            if r not in seen and len(want) < k:
                seen.add(r)
                want.append((r, c))
        assert sorted(zip(rows.tolist(), cols.tolist())) == sorted(want)
        assert len(set(rows.tolist())) == k


def test_memoized_reuses_only_for_the_same_unchanged_objects():
    from dglcleaner_plugins.label_poisoning._common import memoized

    calls = []

    def compute():
        calls.append(1)
        return len(calls)

    x, other = torch.ones(3), torch.ones(3)
    assert memoized("t", (x,), (1,), compute) == 1
    assert memoized("t", (x,), (1,), compute) == 1  # same object, same params: reused
    assert memoized("t", (x,), (2,), compute) == 2  # other params
    assert memoized("t", (other,), (2,), compute) == 3  # equal values, other object
    other.add_(1)
    assert memoized("t", (other,), (2,), compute) == 4  # modified in place


def test_memoized_frees_its_value_when_a_key_object_dies():
    import gc

    from dglcleaner_plugins.label_poisoning import _common

    x = torch.ones(3)
    _common.memoized("t-free", (x,), (), lambda: torch.zeros(4))
    assert "t-free" in _common._MEMO
    del x
    gc.collect()
    assert "t-free" not in _common._MEMO


@pytest.mark.parametrize("name", ["ntk", "ntk-bin", "lp", "mg"])
def test_memoized_kernels_give_the_cold_result(csbm, name):
    from dglcleaner_plugins.label_poisoning import _common

    def run(ctx):
        return load_plugin("attack", name)().run(ctx).labels

    first = context(csbm, seed=0)
    run(first)  # caches the kernel for this graph and these features
    ctx = dataclasses.replace(context(csbm, seed=1), graph=first.graph, features=first.features)
    slot = "gcn-ntk" if name.startswith("ntk") else "rbf"
    cached = _common._MEMO[slot][2]
    warm = run(ctx)  # another split: reuses the kernel
    assert _common._MEMO[slot][2] is cached
    _common._MEMO.clear()
    assert torch.equal(run(ctx), warm)
