"""The retrain control: trains one new model on exactly the kept graphs; random drops are seeded."""
import pytest
import torch

from dglcleaner.api import DefenseContext, ThreatModel
from dglcleaner.errors import UserError
from dglcleaner_plugins.defenses.retrain import Retrain


class _Recorder:
    """A ``train`` function that records what it was given instead of training."""

    def __init__(self):
        self.calls = []

    def __call__(self, model, graphs, labels, **kw):
        self.calls.append((model, list(graphs), labels.clone()))
        return model


def _ctx(synthetic_run, seed=0):
    res = synthetic_run.attack_result
    rec = _Recorder()
    ctx = DefenseContext(
        threat_model=ThreatModel.TRAINING_SET, featurizer=synthetic_run.data["featurizer"],
        num_classes=synthetic_run.data["num_classes"], seed=seed, device=torch.device("cpu"),
        build_model=synthetic_run.build_model, train=rec,
        train_graphs=res.train_graphs, train_labels=res.train_labels)
    return ctx, rec


def test_default_retrains_a_new_model_on_every_graph(synthetic_run):
    ctx, rec = _ctx(synthetic_run)
    out = Retrain().run(ctx)
    assert len(rec.calls) == 1
    model, graphs, labels = rec.calls[0]
    assert out.model is model and model is not synthetic_run.backdoored_model
    assert len(graphs) == len(ctx.train_graphs)
    assert all(a is b for a, b in zip(graphs, ctx.train_graphs))
    assert torch.equal(labels, ctx.train_labels)
    assert out.flagged == [] and out.info == {"dropped": 0, "kept": len(ctx.train_graphs)}


def test_random_drop_removes_exactly_the_flagged_graphs(synthetic_run):
    ctx, rec = _ctx(synthetic_run, seed=5)
    n = len(ctx.train_graphs)
    out = Retrain(drop_fraction=0.2).run(ctx)
    flagged = out.flagged
    assert len(flagged) == round(0.2 * n) == len(set(flagged))
    assert all(0 <= i < n for i in flagged)
    _, graphs, labels = rec.calls[0]
    kept = [i for i in range(n) if i not in set(flagged)]
    assert len(graphs) == len(kept) and all(graphs[j] is ctx.train_graphs[i]
                                             for j, i in enumerate(kept))
    assert torch.equal(labels, ctx.train_labels[kept])
    # seeded by the defense seed: the same seed draws the same graphs, another seed others
    again, _ = _ctx(synthetic_run, seed=5)
    other, _ = _ctx(synthetic_run, seed=6)
    assert Retrain(drop_fraction=0.2).run(again).flagged == flagged
    assert Retrain(drop_fraction=0.2).run(other).flagged != flagged


@pytest.mark.parametrize("bad", [-0.1, 0.95, 1.0])
def test_drop_fraction_out_of_range(bad):
    with pytest.raises(UserError, match="drop_fraction"):
        Retrain(drop_fraction=bad)
