"""Full-batch training with the reference's early stopping and model selection (spec 2.3).

Adam(lr, weight_decay); cross-entropy on the fit nodes' (possibly poisoned) labels; at most
``epochs`` epochs; after epoch ``patience`` stop when the current validation accuracy falls
below the mean of the previous ``patience`` ones. The reported test accuracy is the one at the
first epoch reaching the best (strictly greater) validation accuracy.
"""
from __future__ import annotations

import random
from typing import Any, Dict

import numpy as np
import torch
import torch.nn.functional as F


def reset_seed(seed: int = 0) -> None:
    """Seed python, numpy, torch and DGL (the reference resets all of them to 0)."""
    from .._dgl import dgl

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    dgl.seed(seed)


def train_eval(
    model: torch.nn.Module,
    g: Any,
    x: torch.Tensor,
    y_fit: torch.Tensor,
    fit_idx: torch.Tensor,
    y_val: torch.Tensor,
    val_idx: torch.Tensor,
    y_test: torch.Tensor,
    test_idx: torch.Tensor,
    lr: float = 0.01,
    weight_decay: float = 5e-4,
    epochs: int = 1000,
    patience: int = 100,
) -> Dict[str, float]:
    """Train ``model`` in place; ``y_*`` are full-length label vectors (val may be poisoned,
    test must be clean). Returns ``{"val_acc", "test_acc", "epoch", "epochs_run"}``."""
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    yf, yv, yt = y_fit[fit_idx], y_val[val_idx], y_test[test_idx]
    aux = getattr(model, "aux_loss", None)
    best_val, best_test, best_epoch = -1.0, 0.0, 0
    history = []
    epoch = 0
    for epoch in range(epochs):
        model.train()
        opt.zero_grad()
        out = model(g, x)
        loss = F.cross_entropy(out[fit_idx], yf)
        if aux is not None:
            loss = loss + aux()
        loss.backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            pred = model(g, x).argmax(1)
        val = (pred[val_idx] == yv).float().mean().item()
        if val > best_val:
            best_val, best_epoch = val, epoch
            best_test = (pred[test_idx] == yt).float().mean().item()
        if epoch > patience and val < float(np.mean(history[-patience:])):
            break
        history.append(val)
    return {"val_acc": best_val, "test_acc": best_test, "epoch": best_epoch, "epochs_run": epoch + 1}
