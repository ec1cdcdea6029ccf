"""ACC and the ASR variants (conventions in ``specs/README.md``).

All functions take prediction and label tensors and return percentages (0-100) or ``nan``
when the denominator is empty.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence

import torch


def _pct(num: int, den: int) -> float:
    return 100.0 * num / den if den else math.nan


def accuracy(pred: torch.Tensor, labels: torch.Tensor) -> float:
    """Percentage of correct predictions."""
    return _pct(int((pred == labels).sum()), len(labels))


def balanced_accuracy(pred: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over the classes present in ``labels`` of the percentage of that class predicted
    right. A model that always answers one class scores ``100 / #classes``, whatever the
    class balance (plain ACC gives it the majority rate: 72 % on Bitcoin)."""
    classes = torch.unique(labels)
    if len(classes) == 0:
        return math.nan
    recalls = [int((pred[labels == c] == c).sum()) / int((labels == c).sum())
               for c in classes.tolist()]
    return 100.0 * sum(recalls) / len(recalls)


def asr(pred_triggered: torch.Tensor, labels: torch.Tensor, target: int) -> float:
    """Default ASR: among triggered graphs whose true label is not ``target``, the percentage
    predicted as ``target``."""
    mask = labels != target
    return _pct(int((pred_triggered[mask] == target).sum()), int(mask.sum()))


def asr_all(pred_triggered: torch.Tensor, target: int) -> float:
    """GTA's convention: over all triggered graphs, target-class ones included."""
    return _pct(int((pred_triggered == target).sum()), len(pred_triggered))


def asr_conditional(pred_triggered: torch.Tensor, labels: torch.Tensor, target: int,
                    pred_clean_model: torch.Tensor) -> float:
    """Motif-Backdoor's convention: non-target graphs that the clean model classifies
    correctly."""
    mask = (labels != target) & (pred_clean_model == labels)
    return _pct(int((pred_triggered[mask] == target).sum()), int(mask.sum()))


def detection_scores(flagged: Sequence[int], poisoned: Sequence[int]) -> Dict[str, float]:
    """Precision/recall/F1 (percent) of a detector's flagged training indices; evaluator only."""
    flagged_set, poisoned_set = set(map(int, flagged)), set(map(int, poisoned))
    tp = len(flagged_set & poisoned_set)
    precision = _pct(tp, len(flagged_set))
    recall = _pct(tp, len(poisoned_set))
    if math.isnan(precision) or math.isnan(recall) or precision + recall == 0:
        f1 = 0.0 if not math.isnan(recall) else math.nan
    else:
        f1 = 2 * precision * recall / (precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "flagged": len(flagged_set)}


def mean_std(values: Sequence[float]) -> Dict[str, Optional[float]]:
    """``{"mean", "std"}`` over seeds (population std, ddof=0, as PyG's benchmarks print);
    NaNs are ignored, ``None`` when nothing is left."""
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        return {"mean": None, "std": None}
    mean = sum(vals) / len(vals)
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))
    return {"mean": mean, "std": std}


def trigger_similarity(model: torch.nn.Module, recovered: Sequence, true: Sequence,
                       device: Optional[torch.device] = None) -> float:
    """GCleaner's Table 4 "Similarity" (evaluator only): mean cosine between ``model``'s graph
    embeddings of each graph with the recovered and with the true trigger (same graphs, same
    order)."""
    import torch.nn.functional as F

    from .training import batches

    was_training = model.training
    model.eval()
    sims = []
    try:
        with torch.no_grad():
            for (ba, _, _), (bb, _, _) in zip(batches(recovered, None, 256, device=device),
                                              batches(true, None, 256, device=device)):
                sims.append(F.cosine_similarity(model.embed(ba, ba.ndata["feat"]),
                                                model.embed(bb, bb.ndata["feat"]), dim=1).cpu())
    finally:
        model.train(was_training)
    return float(torch.cat(sims).mean()) if sims else float("nan")
