"""XGBD flags mostly poisoned graphs when its premise holds, removes them, and is deterministic.

The explainer is Grad-CAM (fast on CPU); the default GNNExplainer is exercised in the benchmark.
XGBD's premise: a clean graph's explanatory subgraph does not reproduce its label with a very
low loss, a trigger's does. On the embedded synthetic data that premise fails for the real
labels (any subtree of a tree is classified as a tree with loss ~1e-8, see docs/defenses.md),
so the main test gives the clean graphs seeded random labels (the trigger is the only
learnable signal, as in the ABL test); the real-label run is kept as a documented xfail.
"""
import numpy as np
import pytest
import torch

from dglcleaner.api import DefenseContext, ThreatModel
from dglcleaner.errors import UserError
from dglcleaner.metrics import detection_scores
from dglcleaner_plugins.defenses.xgbd import XGBD, neg_log_ce


def _run(**kw):
    from dglcleaner.runner import DefendConfig, SeedRun
    from dglcleaner.training import TrainConfig

    return SeedRun(DefendConfig(dataset="synthetic", attack="sub-ba", device="cpu",
                                trigger_size=6, injection_ratio=0.1,
                                train=TrainConfig(epochs=20), **kw), seed=0)


@pytest.fixture(scope="module")
def premise_ctx():
    """Poisoned training set whose clean graphs carry seeded random labels."""
    from dglcleaner.runner import get_explainer

    run = _run()
    res, d = run.attack_result, run.data
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, d["num_classes"], (len(res.train_graphs),), generator=gen)
    labels[res.poisoned_idx] = res.train_labels[res.poisoned_idx]
    ctx = DefenseContext(
        threat_model=ThreatModel.TRAINING_SET, featurizer=d["featurizer"],
        num_classes=d["num_classes"], seed=3, device=torch.device("cpu"),
        build_model=run.build_model, train=run.train, get_explainer=get_explainer,
        train_graphs=res.train_graphs, train_labels=labels)
    return ctx, set(res.poisoned_idx.tolist())


def test_flags_mostly_poisoned_graphs(premise_ctx):
    ctx, poisoned = premise_ctx
    plugin = XGBD(explainer="gradcam")
    torch.manual_seed(0)
    res = plugin.run(ctx)
    det = detection_scores(res.flagged, poisoned)  # the evaluator's precision/recall (%)
    # random flags would have ~10 % precision (the poisoned share); measured 76 % (45
    # flagged) with MKL_CBWR=COMPATIBLE on an AVX-512 Xeon, >= 80 % with its default kernels
    # and on AMD: the model's last bits follow the CPU's kernels and the flags follow them
    assert det["flagged"] > 0 and det["precision"] >= 65 and det["recall"] >= 50, det
    assert res.info["k"] == max(2, int(0.2 * np.mean([g.num_nodes() for g in ctx.train_graphs])))
    assert res.info["threshold"] >= -np.log(0.01)
    # deterministic: the same scores again (on the retrained model: no extra training)
    s1, _ = plugin.scores(ctx, res.model)
    s2, _ = plugin.scores(ctx, res.model)
    assert np.array_equal(s1, s2)


def test_neg_log_ce_keeps_tiny_losses_ordered():
    logits = torch.tensor([[0.0, 0.0], [40.0, 0.0], [800.0, 0.0], [900.0, 0.0]])
    s = neg_log_ce(logits, torch.zeros(4, dtype=torch.long))
    assert abs(s[0] - (-np.log(np.log(2)))) < 1e-9
    assert s[1] < s[2] < s[3]  # float32 CE would be 0 for the last three
    assert abs(s[3] - 900.0) < 1e-6


@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason=(
    "XGBD's premise fails on the synthetic data with real labels: the helper classifies the "
    "explanatory subgraph of a clean tree (class 0) as a tree with loss ~1e-8, as low as a "
    "trigger's (poisoned median ~1e-10.5; AUC 0.82), so the low-loss outliers are clean trees "
    "as often as poisoned graphs (measured without the loss ceiling: 2 flagged, 0 poisoned; "
    "see docs/defenses.md)"))
def test_real_labels_flags_mostly_poisoned_graphs():
    run = _run()
    poisoned = set(run.attack_result.poisoned_idx.tolist())
    plugin = XGBD(explainer="gradcam")
    ctx = run.defense_context(plugin)
    assert ctx.model is None and ctx.clean_graphs is None  # training-set threat model only
    torch.manual_seed(0)
    res = plugin.run(ctx)
    det = detection_scores(res.flagged, poisoned)  # the evaluator's precision/recall (%)
    # random flags would have ~10 % precision (the poisoned share); measured 76 % (45
    # flagged) with MKL_CBWR=COMPATIBLE on an AVX-512 Xeon, >= 80 % with its default kernels
    # and on AMD: the model's last bits follow the CPU's kernels and the flags follow them
    assert det["flagged"] > 0 and det["precision"] >= 65 and det["recall"] >= 50, det


def test_missing_explainer_is_one_line_error(premise_ctx):
    ctx, _ = premise_ctx
    ctx = DefenseContext(**{**ctx.__dict__, "get_explainer": None})
    with pytest.raises(UserError) as err:
        XGBD().scores(ctx, ctx.build_model())
    assert "\n" not in str(err.value)


def test_bad_param_is_user_error():
    with pytest.raises(UserError):
        XGBD(max_loss=0.0)
