"""Tests of the example plugin: dglcleaner's conformance kit plus what this defense does."""
from __future__ import annotations

import torch

from dglcleaner.testing import get_bench, parametrize_with_checks
from dglcleaner_example_defense import FinePruning


@parametrize_with_checks([FinePruning, FinePruning(prune_ratio=0.5, epochs=0)])
def test_dglcleaner_contract(plugin, check):
    check(plugin)


def test_prunes_the_least_active_channels():
    bench = get_bench()
    ctx = bench.defense_context(FinePruning())
    res = FinePruning(prune_ratio=0.5, epochs=0).run(ctx)
    last = res.model.conv_layers()[-1]
    pruned = res.info["pruned"]
    assert res.info["pruned_channels"] == len(pruned) == res.info["channels"] // 2
    assert last.prune_mask[pruned].abs().sum() == 0
    seen = []
    handle = last.register_forward_hook(lambda m, i, o: seen.append(o))
    bg, _ = bench.eval_batch(3)
    with torch.no_grad():
        res.model.eval()(bg, bg.ndata["feat"])
    handle.remove()
    assert torch.all(seen[0][..., pruned] == 0)
    assert not hasattr(ctx.model.conv_layers()[-1], "prune_mask")  # caller's model untouched


def test_runs_end_to_end_through_the_runner():
    rec = get_bench().run.record("fine-pruning", {"epochs": 1})  # found via its entry point
    assert 0 <= rec["defended"]["acc"] <= 100
    assert rec["defense_info"]["pruned_channels"] > 0
