"""Fine-tuning on the defender's clean holding set.

The simplest post-training baseline, and GCleaner's teacher (backdoor spec, section 6 item 15:
"teacher = deepcopy(backdoored) fine-tuned on the clean set (CE, e.g. 10 epochs Adam 1e-3)").
Fine-tuning alone rarely removes a backdoor: the clean set never shows the trigger.

Threat model: post-training; the defender holds the suspicious model and a small clean set.

Parameters
----------
epochs : int, default 10, in [1, 1000]
lr : float, default 0.001, in (0, 1]
batch_size : int, default 64, in [2, 4096]
optimizer : str, default "adam", one of adam, sgd
"""
from __future__ import annotations

from dglcleaner.api import DefenseContext, DefenseResult, PluginBase, ThreatModel
from dglcleaner.params import Param


class FineTune(PluginBase):
    """Fine-tune a copy of the model on the clean holding set with cross-entropy.

    Example
    -------
    >>> FineTune(epochs=5).epochs
    5
    """

    name = "finetune"
    kind = "defense"
    task = "graph"
    summary = "Fine-tune a copy of the model on the clean holding set."
    paper = "Baseline (Liu et al., Fine-Pruning, RAID 2018, fine-tuning step)"
    threat_model = ThreatModel.POST_TRAINING
    params = (
        Param("epochs", int, 10, "fine-tuning epochs", low=1, high=1000),
        Param("lr", float, 0.001, "learning rate", low=0.0, high=1.0, low_open=True),
        Param("batch_size", int, 64, "batch size", low=2, high=4096),
        Param("optimizer", str, "adam", "optimizer", choices=("adam", "sgd")),
    )

    def run(self, ctx: DefenseContext) -> DefenseResult:
        from dglcleaner.training import clone_model

        model = clone_model(ctx.model)
        ctx.train(model, ctx.clean_graphs, ctx.clean_labels, epochs=self.epochs, lr=self.lr,
                  batch_size=self.batch_size, optimizer=self.optimizer, step_size=10**6)
        return DefenseResult(model=model)
