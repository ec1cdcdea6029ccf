"""The defend pipeline end to end on the embedded synthetic data."""
import pytest
import torch

from dglcleaner.api import ThreatModel
from dglcleaner.errors import ParameterError, UnknownNameError
from dglcleaner.runner import DefendConfig, defense_context, run_defend
from dglcleaner.training import TrainConfig


def _cfg(**over):
    kw = dict(dataset="synthetic", attack="sub-ba", defense="none", device="cpu",
              train=TrainConfig(epochs=15))
    kw.update(over)
    return DefendConfig(**kw)


def test_backdoor_is_learned_and_control_is_low(synthetic_run):
    clean = synthetic_run.evaluate(synthetic_run.clean_model)
    bd = synthetic_run.evaluate(synthetic_run.backdoored_model)
    assert clean["acc"] >= 85.0
    assert bd["acc"] >= clean["acc"] - 10
    assert bd["asr"] >= 70.0, bd
    assert clean["asr"] < bd["asr"] - 30  # the trigger is a backdoor, not an adversarial input


def test_same_seed_same_numbers():
    a = run_defend(_cfg(train=TrainConfig(epochs=3), defense="finetune"))
    b = run_defend(_cfg(train=TrainConfig(epochs=3), defense="finetune"))
    for group in ("clean", "backdoored", "defended"):
        assert a["runs"][0][group] == b["runs"][0][group]


def test_json_document_schema():
    doc = run_defend(_cfg(train=TrainConfig(epochs=2), seeds=2))
    assert doc["schema"] == "dglcleaner.defend/1"
    for path in ("clean.acc", "backdoored.asr", "backdoored.acc", "defended.asr",
                 "defended.acc"):
        group, metric = path.split(".")
        assert set(doc["summary"][group][metric]) == {"mean", "std"}
    assert [r["seed"] for r in doc["runs"]] == [0, 1]
    assert doc["config"]["attack"] == "sub-ba" and "torch" in doc["versions"]
    assert {"train clean model", "attack", "defense"} <= set(doc["runs"][0]["timings"])


class _FakeDefense:
    name = "fake"

    def __init__(self, tm):
        self.threat_model = tm


@pytest.mark.parametrize("tm", list(ThreatModel))
def test_defense_gets_only_its_threat_model(synthetic_run, tm):
    ctx = defense_context(synthetic_run, _FakeDefense(tm))
    if tm is ThreatModel.POST_TRAINING:
        assert ctx.model is not None and ctx.clean_graphs is not None
        assert ctx.train_graphs is None and ctx.train_labels is None
        assert len(ctx.clean_graphs) == len(synthetic_run.data["holding"][0])
    else:
        assert ctx.model is None and ctx.clean_graphs is None
        assert len(ctx.train_graphs) == len(synthetic_run.data["train"][0])
        # the poisoned training set, never the clean one
        assert torch.equal(ctx.train_labels, synthetic_run.attack_result.train_labels)
    assert ctx.oracle_trigger is None


@pytest.mark.parametrize("tm", list(ThreatModel))
def test_check_context_holds_no_model_and_no_poisoned_set(tm):
    from dglcleaner.runner import SeedRun

    run = SeedRun(_cfg(), 0)
    ctx = defense_context(run, _FakeDefense(tm), check=True)
    assert ctx.model is None and ctx.train_graphs is None and ctx.oracle_trigger is None
    if tm is ThreatModel.POST_TRAINING:
        assert len(ctx.clean_graphs) == len(run.data["holding"][0])
    # nothing was trained or attacked to build it
    assert run.cached("clean_model") is None and run.cached("attack_result") is None


def test_check_hooks_are_optional_and_run_before_training():
    from dglcleaner.runner import SeedRun

    seen = []

    class Checked(_FakeDefense):
        def check(self, ctx):
            seen.append(ctx.clean_graphs is not None)

    run = SeedRun(_cfg(), 0)
    run.check(_FakeDefense(ThreatModel.POST_TRAINING))  # a plugin without the hook
    run.check(Checked(ThreatModel.POST_TRAINING))
    assert seen == [True] and run.cached("clean_model") is None
    bad = SeedRun(_cfg(trigger_size=10_000), 0)
    with pytest.raises(ParameterError, match="trigger size"):
        bad.check()
    assert bad.cached("clean_model") is None


def test_holding_set_disjoint_from_eval(synthetic_run):
    split = synthetic_run.data["split"]
    hold, ev = set(split.holding_idx.tolist()), set(split.eval_idx.tolist())
    assert hold and not hold & ev and not hold & set(split.train_idx.tolist())


def test_bad_names_fail_fast():
    with pytest.raises(UnknownNameError, match="Did you mean 'sub-ba'"):
        run_defend(_cfg(attack="sub_bb"))
    with pytest.raises(UnknownNameError):
        run_defend(_cfg(defense="nope"))
    with pytest.raises(ParameterError):
        run_defend(_cfg(injection_ratio=1.5))


def test_shared_clean_model_keeps_per_attack_control(synthetic_run):
    """Sharing the attack-free stages reuses the clean model but not the clean-model ASR,
    which depends on the attack's trigger."""
    from dataclasses import replace

    from dglcleaner.runner import SeedRun

    base = SeedRun(synthetic_run.cfg, synthetic_run.seed)
    rec_a = base.record("none")
    cfg_b = replace(synthetic_run.cfg, attack_params={"density": 1.0})
    other = SeedRun(cfg_b, synthetic_run.seed).share_stages(base)
    rec_b = other.record("none")
    assert other.cached("clean_model") is base.cached("clean_model")
    assert "train clean model" not in other.timings
    assert rec_b["clean"]["acc"] == rec_a["clean"]["acc"]
    alone = SeedRun(cfg_b, synthetic_run.seed).record("none")
    assert rec_b["clean"]["asr"] == alone["clean"]["asr"]
    # the complete-graph trigger fools the clean model more often than the default one
    assert rec_b["clean"]["asr"] != rec_a["clean"]["asr"]
