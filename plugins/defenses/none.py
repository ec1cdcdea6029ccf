"""No defense: the suspicious model is evaluated as it is (the "Before" column).

Threat model: post-training (a trained model and clean data; uses neither).
"""
from __future__ import annotations

from dglcleaner.api import DefenseContext, DefenseResult, PluginBase, ThreatModel


class NoDefense(PluginBase):
    """Return the model unchanged.

    Example
    -------
    >>> NoDefense().threat_model.value
    'post-training'
    """

    name = "none"
    kind = "defense"
    task = "graph"
    summary = "No defense: evaluate the model as it is."
    paper = "-"
    threat_model = ThreatModel.POST_TRAINING
    params = ()

    def run(self, ctx: DefenseContext) -> DefenseResult:
        return DefenseResult(model=ctx.model)
