"""ED flags mostly poisoned graphs on an easy backdoor, removes them, and is deterministic.

The explainer is Grad-CAM (fast on CPU); the default GNNExplainer is exercised in the benchmark.
"""
import numpy as np
import pytest
import torch

from dglcleaner.errors import UserError
from dglcleaner.metrics import detection_scores
from dglcleaner_plugins.defenses.ed import ED
from dglcleaner_plugins.defenses.ed import flag_outliers


@pytest.fixture(scope="module")
def easy_run():
    from dglcleaner.runner import DefendConfig, SeedRun
    from dglcleaner.training import TrainConfig

    return SeedRun(DefendConfig(dataset="synthetic", attack="sub-ba", device="cpu",
                                injection_ratio=0.1,
                                train=TrainConfig(epochs=20)), seed=0)


def test_flags_mostly_poisoned_graphs(easy_run):
    poisoned = set(easy_run.attack_result.poisoned_idx.tolist())
    plugin = ED(explainer="gradcam")
    ctx = easy_run.defense_context(plugin)
    assert ctx.model is None and ctx.clean_graphs is None  # training-set threat model only
    torch.manual_seed(0)
    res = plugin.run(ctx)
    det = detection_scores(res.flagged, poisoned)  # the evaluator's precision/recall (%)
    # 10 % of the training graphs are poisoned, so a detector flagging at random has ~10 %
    # precision. Measured 97 % (39 flagged) with MKL's compatible kernels (as on AMD CPUs) and
    # 77 % (44 flagged) with its AVX-512 kernels: the 20-epoch model differs in the last bits
    # and the flags follow, so the bar leaves room for both.
    assert det["flagged"] > 0 and det["precision"] >= 65 and det["recall"] >= 50, det
    assert res.info["k"] == max(2, int(0.2 * np.mean([g.num_nodes() for g in ctx.train_graphs])))
    # deterministic: the same scores again (on the retrained model: no extra training, which
    # keeps this file under 60 s)
    s1, _ = plugin.scores(ctx, res.model)
    s2, _ = plugin.scores(ctx, res.model)
    assert np.array_equal(s1, s2)


def test_flag_rules_use_only_scores():
    s = np.r_[np.random.default_rng(0).normal(0, 0.1, 200), np.full(10, 5.0)]
    for rule in ("mad", "kmeans"):
        idx, thr = flag_outliers(s, rule, 3.0, 0.3)
        assert idx == list(range(200, 210)), rule
    idx, _ = flag_outliers(s, "mad", 3.0, 0.02)  # capped at 2 % of 210
    assert len(idx) == 4
    assert flag_outliers(np.zeros(5), "kmeans")[0] == []


def test_missing_explainer_is_one_line_error(easy_run):
    ctx = easy_run.defense_context(ED())
    ctx.get_explainer = None
    with pytest.raises(UserError) as err:
        ED().scores(ctx, ctx.build_model())  # fails before any model is needed
    assert "\n" not in str(err.value)
