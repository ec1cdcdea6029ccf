import math

import torch

from dglcleaner import metrics


def test_asr_variants():
    labels = torch.tensor([0, 0, 1, 1, 2])
    trig = torch.tensor([1, 0, 1, 1, 1])
    clean = torch.tensor([0, 1, 1, 1, 2])
    assert metrics.asr(trig, labels, 1) == 100 * 2 / 3
    assert metrics.asr_all(trig, 1) == 80.0
    assert metrics.asr_conditional(trig, labels, 1, clean) == 100.0  # graphs 0 and 4
    assert math.isnan(metrics.asr(trig, torch.ones(5, dtype=torch.long), 1))


def test_detection_and_mean_std():
    d = metrics.detection_scores([1, 2, 3, 4], [2, 3, 9])
    assert d["precision"] == 50.0 and abs(d["recall"] - 200 / 3) < 1e-9
    ms = metrics.mean_std([1.0, 3.0, float("nan")])
    assert ms == {"mean": 2.0, "std": 1.0}


def test_balanced_accuracy_sees_through_a_constant_model():
    labels = torch.tensor([0] * 7 + [1] * 3)
    constant = torch.zeros(10, dtype=torch.long)
    assert metrics.accuracy(constant, labels) == 70.0
    assert metrics.balanced_accuracy(constant, labels) == 50.0
    pred = torch.tensor([0] * 6 + [1] + [1, 1, 0])  # recalls 6/7 and 2/3
    assert abs(metrics.balanced_accuracy(pred, labels) - 100 * (6 / 7 + 2 / 3) / 2) < 1e-9
    assert metrics.balanced_accuracy(labels, labels) == 100.0
    assert math.isnan(metrics.balanced_accuracy(constant[:0], labels[:0]))
