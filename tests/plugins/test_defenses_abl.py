"""ABL isolates the poisoned graphs when the backdoor is learned faster than the clean task."""
import pytest
import torch

from dglcleaner.api import DefenseContext, ThreatModel
from dglcleaner_plugins.defenses.abl import ABL, lga_loss


@pytest.fixture(scope="module")
def easy_ctx():
    """Poisoned training set in which the trigger is the only learnable signal: the clean
    graphs get random labels (seeded), the poisoned ones the target, so the backdoor is learned
    first, the premise of ABL's isolation phase."""
    from dglcleaner.runner import DefendConfig, SeedRun
    from dglcleaner.training import TrainConfig

    run = SeedRun(DefendConfig(dataset="synthetic", attack="sub-ba", device="cpu",
                               trigger_size=8, injection_ratio=0.1,
                               train=TrainConfig(epochs=10)), seed=0)
    res = run.attack_result
    d = run.data
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, d["num_classes"], (len(res.train_graphs),), generator=gen)
    labels[res.poisoned_idx] = res.train_labels[res.poisoned_idx]
    ctx = DefenseContext(
        threat_model=ThreatModel.TRAINING_SET, featurizer=d["featurizer"],
        num_classes=d["num_classes"], seed=3, device=torch.device("cpu"),
        build_model=run.build_model, train=run.train,
        train_graphs=res.train_graphs, train_labels=labels)
    return ctx, set(res.poisoned_idx.tolist())


def test_lga_ascends_below_gamma():
    logits = torch.tensor([[5.0, -5.0]], requires_grad=True)
    y = torch.tensor([0])
    lga_loss(0.5)(logits, y).backward()
    assert logits.grad[0, 0] > 0  # loss < gamma: gradient ascent pushes the logit down


def test_isolates_mostly_poisoned_and_is_deterministic(easy_ctx):
    ctx, poisoned = easy_ctx
    n_iso = len(poisoned) // 2
    ratio = n_iso / len(ctx.train_graphs)
    abl = ABL(isolation_ratio=ratio, isolation_epochs=10, finetune_epochs=1, unlearning_epochs=2)
    torch.manual_seed(0)
    r1 = abl.run(ctx)
    hits = len(set(r1.flagged) & poisoned)
    assert len(r1.flagged) == n_iso
    assert hits >= 0.8 * n_iso, (hits, n_iso)
    assert len(r1.info["unlearning_ce"]) == 2 and "unlearning_stopped" not in r1.info
    torch.manual_seed(0)
    r2 = abl.run(ctx)
    assert r1.flagged == r2.flagged
    for p, q in zip(r1.model.parameters(), r2.model.parameters()):
        assert torch.equal(p, q)


class _BlowsUp(torch.nn.Module):
    """Logits ``w`` for every graph; the ``fail_at``-th forward returns inf instead."""

    def __init__(self, fail_at: int):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([2.0, -2.0]))
        self.fail_at, self.calls, self.seen = fail_at, 0, []

    def forward(self, g, feat):
        self.seen.append(self.w.detach().clone())
        self.calls += 1
        logits = self.w.expand(g.batch_size, 2) + 0.0 * feat.sum()
        return logits * float("inf") if self.calls - 1 == self.fail_at else logits


def test_diverging_unlearning_keeps_last_finite_model(synthetic_run):
    graphs = synthetic_run.data["train"][0][:8]  # one batch per epoch
    labels = torch.zeros(8, dtype=torch.long)
    model = _BlowsUp(fail_at=3)
    ce, stopped = ABL(unlearning_epochs=10, unlearning_lr=0.1).unlearn(
        model, graphs, labels, seed=0, device=torch.device("cpu"))
    assert len(ce) == 3 and ce[0] < ce[1] < ce[2]  # three ascent steps, loss growing
    assert stopped == "non-finite loss at epoch 3 step 0; kept the model before the previous step"
    # the forward at epoch 2 (after the 2nd step) was the last finite one: its weights are kept
    assert torch.equal(model.w.detach(), model.seen[2])
    assert not torch.equal(model.seen[2], model.seen[3])



def test_non_finite_before_any_step_leaves_model_unchanged(synthetic_run):
    graphs = synthetic_run.data["train"][0][:8]
    model = _BlowsUp(fail_at=0)
    w0 = model.w.detach().clone()
    ce, stopped = ABL(unlearning_epochs=3).unlearn(
        model, graphs, torch.zeros(8, dtype=torch.long), seed=0, device=torch.device("cpu"))
    assert ce == []
    assert stopped == "non-finite loss at epoch 0 step 0, before any step; model unchanged"
    assert torch.equal(model.w.detach(), w0)
