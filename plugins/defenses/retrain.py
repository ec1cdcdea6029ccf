"""Retrain from scratch: the control for the detectors that remove graphs and retrain (ED, XGBD).

Not a paper's defense: a comparator. ED and XGBD are scored on a model trained anew without the
graphs they flag, so their ASR mixes two effects: the removal and the spread between training
runs of one poisoned set (large for weak backdoors: Sub-BA's ASR on AIDS moves by tens of points
with the initialisation alone). This defense retrains a fresh model the same way without looking
at any graph, so a detector's ASR can be read against it:

* ``drop_fraction = 0`` (default): the whole training set, a new initialisation and batch
  order. A detector whose ASR is not below this one removed too little to matter.
* ``drop_fraction > 0``: a uniformly random ``round(drop_fraction * N)`` training graphs are
  removed first and returned as ``flagged``, so the evaluator reports the precision and recall
  that chance achieves (precision near the injection ratio) next to the detectors'.

Threat model: training set (the possibly poisoned training set; no model, no clean data).

Parameters
----------
drop_fraction : float, default 0.0, in [0, 0.9]
    Fraction of the training graphs removed at random before retraining.

Known deviations: none (no paper). The retrained model's initialisation comes from the run's
defense seed, so it differs from the backdoored model's and from each detector's retraining.
"""
from __future__ import annotations

from dglcleaner.api import DefenseContext, DefenseResult, PluginBase, ThreatModel
from dglcleaner.params import Param


class Retrain(PluginBase):
    """Train a new model from scratch on the training set, optionally minus random graphs.

    Example
    -------
    >>> Retrain(drop_fraction=0.05).drop_fraction
    0.05
    >>> Retrain().threat_model.value
    'training-set'
    """

    name = "retrain"
    kind = "defense"
    task = "graph"
    summary = "Control: retrain from scratch (optionally without random graphs); compare ED/XGBD."
    paper = "- (control for ED/XGBD's remove-and-retrain)"
    threat_model = ThreatModel.TRAINING_SET
    params = (
        Param("drop_fraction", float, 0.0, "fraction of training graphs removed at random",
              low=0.0, high=0.9),
    )

    def run(self, ctx: DefenseContext) -> DefenseResult:
        import numpy as np

        from .ed import retrain_without

        n = len(ctx.train_graphs)
        count = int(round(self.drop_fraction * n))
        rng = np.random.default_rng(ctx.seed)
        flagged = sorted(rng.choice(n, size=count, replace=False).tolist()) if count else []
        model = retrain_without(ctx, flagged)
        return DefenseResult(model=model, flagged=flagged,
                             info={"dropped": len(flagged), "kept": n - len(flagged)})
