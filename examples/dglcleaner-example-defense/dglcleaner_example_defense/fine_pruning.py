"""Fine-Pruning for graph classifiers: prune the last graph-convolution layer's channels that
stay dormant on clean data, then fine-tune on the clean holding set.

Paper: Liu, Dolan-Gavitt, Garg. "Fine-Pruning: Defending Against Backdooring Attacks on Deep
Neural Networks". RAID 2018. https://arxiv.org/abs/1805.12185

Threat model: post-training. The defender holds the suspicious model and a small clean set
(it never sees the poisoned training set), so it also works on ``dglcleaner defend --model``.

Idea: backdoor behaviour tends to live in neurons that clean inputs rarely activate. Pruning the
least active channels (mean ReLU activation over the clean set's nodes) removes them; a short
fine-tuning recovers the clean accuracy lost by pruning.

Parameters
----------
prune_ratio : float, default 0.3, in [0, 1)
    Fraction of the last conv layer's output channels to prune.
epochs : int, default 5, in [0, 1000]
    Fine-tuning epochs after pruning (0: prune only).
lr : float, default 0.001, in (0, 1]
    Fine-tuning learning rate.

Known deviations from the paper: the paper prunes iteratively until clean accuracy drops by a
threshold; this example prunes a fixed fraction in one step. Pruning is a mask on the layer's
output (a forward hook), not a smaller layer, so any dglcleaner classifier works unchanged.
"""
from __future__ import annotations

from typing import Any, List

import torch

from dglcleaner.api import DefenseContext, DefenseResult, PluginBase, ThreatModel
from dglcleaner.errors import UserError
from dglcleaner.params import Param


def _apply_mask(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
    # Module-level (not a closure) so that copy.deepcopy of the model keeps a working hook
    # that reads the *copy's* mask buffer.
    return output * module.prune_mask


def channel_activity(model: torch.nn.Module, layer: torch.nn.Module, graphs: List[Any],
                     device: torch.device, batch_size: int = 64) -> torch.Tensor:
    """Mean ReLU activation of each output channel of ``layer`` over all nodes of ``graphs``."""
    from dglcleaner.training import batches

    total, count = None, 0
    seen: List[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for bg, _, _ in batches(graphs, None, batch_size, device=device):
                seen.clear()
                model(bg, bg.ndata["feat"])
                out = torch.relu(seen[-1]).reshape(-1, seen[-1].shape[-1])
                total = out.sum(0) if total is None else total + out.sum(0)
                count += out.shape[0]
    finally:
        handle.remove()
        model.train(was_training)
    if total is None:
        raise UserError("fine-pruning needs at least one clean graph; raise --holding-ratio")
    return (total / max(count, 1)).cpu()


class FinePruning(PluginBase):
    """Prune last-layer channels dormant on clean data, then fine-tune on the clean set.

    Example
    -------
    >>> FinePruning(prune_ratio=0.5).prune_ratio
    0.5
    """

    name = "fine-pruning"
    kind = "defense"
    task = "graph"
    summary = "Prune last-layer channels dormant on clean graphs, then fine-tune (Fine-Pruning)."
    paper = ("Liu, Dolan-Gavitt, Garg. Fine-Pruning: Defending Against Backdooring Attacks on "
             "Deep Neural Networks. RAID 2018. https://arxiv.org/abs/1805.12185")
    threat_model = ThreatModel.POST_TRAINING
    params = (
        Param("prune_ratio", float, 0.3, "fraction of last-layer channels to prune",
              low=0.0, high=1.0, high_open=True),
        Param("epochs", int, 5, "fine-tuning epochs after pruning (0: prune only)",
              low=0, high=1000),
        Param("lr", float, 0.001, "fine-tuning learning rate", low=0.0, high=1.0,
              low_open=True),
    )
    #: Settings dglcleaner's conformance kit uses when it is handed the class.
    check_params = {"epochs": 1}

    def run(self, ctx: DefenseContext) -> DefenseResult:
        from dglcleaner.training import clone_model

        model = clone_model(ctx.model)  # never change the caller's model
        convs = model.conv_layers() if callable(getattr(model, "conv_layers", None)) else []
        if not convs:
            raise UserError(f"fine-pruning needs a classifier with conv_layers() (dglcleaner's "
                            f"gin, gcn, gat, sage); got {type(model).__name__}")
        last = convs[-1]
        activity = channel_activity(model, last, ctx.clean_graphs, ctx.device)
        n_prune = int(round(self.prune_ratio * activity.numel()))
        # Least active first; a stable sort keeps ties (e.g. dead channels) deterministic.
        order = torch.sort(activity, stable=True).indices
        mask = torch.ones_like(activity)
        mask[order[:n_prune]] = 0.0
        last.register_buffer("prune_mask", mask.to(ctx.device))
        last.register_forward_hook(_apply_mask)
        if self.epochs > 0:
            ctx.train(model, ctx.clean_graphs, ctx.clean_labels, epochs=self.epochs,
                      lr=self.lr, step_size=10**6)
        return DefenseResult(model=model, info={
            "pruned_channels": n_prune, "channels": int(activity.numel()),
            "pruned": sorted(order[:n_prune].tolist())})
