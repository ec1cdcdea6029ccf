"""GCleaner stage B: trigger unlearning by distillation (paper Sec. 4.4, Eqs. 9-14; spec 6.15).

Student = a copy of the suspicious model; teacher = a frozen copy (fine-tuned on the clean set
by default). For each clean graph ``G`` and its triggered twin ``G'`` (same node ids):

``L = mean_i ||z_s(G'_i) - sg(z_s(G_i))||  +  mean_i ||z_s(G_i) - z_t(G_i)||
      + lambda * sum_l mean_i ||H_l(G'_i) - H_l(G_i)||``

with ``sg`` a stop-gradient when ``l1_detach_clean`` (ours; the paper's L1 is symmetric and can
be lowered by moving clean outputs to the backdoor class) and ``H_l`` the per-graph Grad-CAM
heat map of conv layer ``l`` for the graph's label (see :mod:`.gradcam_loss`). Each term can
be switched off (Table 9). The ``official`` distance is the released code's: one Frobenius norm
over the whole batch, on log-softmax outputs.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dglcleaner._dgl import dgl

from .gradcam_loss import gradcam_maps, per_graph_l2


@dataclass(frozen=True)
class UnlearnConfig:
    """Settings of the unlearning loop (defaults: paper Sec. 5.1)."""

    epochs: int = 30
    lr: float = 1e-3
    optimizer: str = "sgd"
    momentum: float = 0.0
    batch_size: int = 64
    step_size: int = 0          # StepLR step (0 = constant learning rate)
    gamma: float = 0.1
    lam: float = 0.5
    use_l1: bool = True
    use_l2: bool = True
    use_explain: bool = True
    distance: str = "l2"        # "l2" per graph, or "frobenius" over the batch (official)
    logit_space: str = "logits"  # or "log_softmax" (official)
    heatmap: str = "gradcam"    # gradcam | none | an explainer plugin name
    heat_layers: str = "all"    # all | last
    heat_grad: str = "full"     # full | detach-alpha | none
    heat_norm: str = "none"     # none | minmax
    student_mode: str = "eval"  # eval (BatchNorm frozen, no dropout) | train
    clip_norm: float = 0.0      # max gradient norm (0 = no clipping)
    guard_drop: float = 0.05    # max clean-accuracy drop on the clean set before rollback (<0: off)
    l1_detach_clean: bool = False  # stop-gradient on z_s(G) in L1 (only G' moves)


def _space(z: torch.Tensor, cfg: UnlearnConfig) -> torch.Tensor:
    return F.log_softmax(z, dim=1) if cfg.logit_space == "log_softmax" else z


def _dist(a: torch.Tensor, b: torch.Tensor, cfg: UnlearnConfig) -> torch.Tensor:
    d = _space(a, cfg) - _space(b, cfg)
    if cfg.distance == "frobenius":
        return torch.sqrt((d ** 2).sum() + 1e-12)
    return torch.sqrt((d ** 2).sum(1) + 1e-12).mean()


def unlearn(student: nn.Module, teacher: Optional[nn.Module], clean: Sequence,
            triggered: Sequence, labels: torch.Tensor, cfg: UnlearnConfig, *,
            device: torch.device, seed: int = 0, explainer: Any = None,
            progress: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    """Train ``student`` in place; return per-term losses of the last epoch and the time.

    ``clean[i]`` and ``triggered[i]`` must have the same nodes. ``explainer`` is used when
    ``cfg.heatmap`` names an explainer plugin instead of the built-in Grad-CAM.
    """
    start = time.perf_counter()
    student.to(device)
    if teacher is not None:
        teacher.to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    params = [p for p in student.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum)
    else:
        opt = torch.optim.Adam(params, lr=cfg.lr)
    sched = (torch.optim.lr_scheduler.StepLR(opt, cfg.step_size, cfg.gamma)
             if cfg.step_size > 0 else None)
    gen = torch.Generator().manual_seed(int(seed))
    labels = torch.as_tensor(labels, dtype=torch.long)
    n = len(clean)
    explain_on = cfg.use_explain and cfg.heatmap != "none" and cfg.lam > 0
    terms: Dict[str, float] = {}
    differentiable = None
    # Collapse guard (defender-side, clean data only): remember the last epoch whose accuracy
    # on the clean set stays within guard_drop of the starting accuracy, and roll back to it if
    # a later epoch collapses (e.g. predicts one class for everything, which zeroes L1).
    floor = _clean_acc(student, clean, labels, device) - cfg.guard_drop
    good_state = ({k: v.detach().clone() for k, v in student.state_dict().items()}
                  if cfg.guard_drop >= 0 else None)
    good_epoch = 0
    diverged = False
    for epoch in range(cfg.epochs):
        if diverged:
            break
        student.train(cfg.student_mode == "train")
        sums = {"l1": 0.0, "l2": 0.0, "explain": 0.0, "total": 0.0}
        batches_seen = 0
        order = torch.randperm(n, generator=gen)
        for s in range(0, n, cfg.batch_size):
            idx = order[s:s + cfg.batch_size].tolist()
            if cfg.student_mode == "train" and len(idx) < 2:
                continue  # BatchNorm cannot train on one graph
            bg = dgl.batch([clean[i] for i in idx]).to(device)
            bt = dgl.batch([triggered[i] for i in idx]).to(device)
            y = labels[idx].to(device)
            out_c = student.forward_full(bg, bg.ndata["feat"])
            out_t = student.forward_full(bt, bt.ndata["feat"])
            loss = out_c.logits.new_zeros(())
            if cfg.use_l1:
                # l1_detach_clean: G's output is the target G' is pulled to, so L1 cannot be
                # lowered by moving clean outputs toward the backdoor class (collapse).
                ref = out_c.logits.detach() if cfg.l1_detach_clean else out_c.logits
                l1 = _dist(out_t.logits, ref, cfg)
                loss = loss + l1
                sums["l1"] += float(l1.detach())
            if cfg.use_l2 and teacher is not None:
                with torch.no_grad():
                    zt = teacher(bg, bg.ndata["feat"])
                l2 = _dist(out_c.logits, zt, cfg)
                loss = loss + l2
                sums["l2"] += float(l2.detach())
            if explain_on:
                le = _explain_loss(student, out_c, out_t, bg, bt, y, cfg, explainer)
                differentiable = bool(le.requires_grad)
                loss = loss + cfg.lam * le
                sums["explain"] += float(le.detach())
            sums["total"] += float(loss.detach())
            batches_seen += 1
            if loss.requires_grad:
                if not torch.isfinite(loss):
                    if cfg.guard_drop < 0:
                        raise FloatingPointError(
                            f"non-finite GCleaner unlearning loss at epoch {epoch}")
                    diverged = True  # the guard rolls back to the last good epoch
                    break
                opt.zero_grad()
                loss.backward()
                if cfg.clip_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.clip_norm)
                opt.step()
        if sched is not None:
            sched.step()
        terms = {k: v / max(batches_seen, 1) for k, v in sums.items()}
        if cfg.guard_drop >= 0 and not diverged:
            if _clean_acc(student, clean, labels, device) >= floor - 1e-9:
                good_state = {k: v.detach().clone() for k, v in student.state_dict().items()}
                good_epoch = epoch + 1
        if progress is not None:
            progress(f"gcleaner unlearning epoch {epoch + 1}/{cfg.epochs}: loss {terms['total']:.4f}")
    student.eval()
    info: Dict[str, Any] = {f"unlearn_loss_{k}": v for k, v in terms.items()}
    if cfg.guard_drop >= 0:
        if good_state is not None and good_epoch < cfg.epochs:
            student.load_state_dict(good_state)
        info["unlearn_kept_epoch"] = good_epoch
        info["unlearn_diverged"] = diverged
    info["unlearning_s"] = time.perf_counter() - start
    if explain_on:
        info["heatmap_differentiable"] = differentiable
    return info


def _clean_acc(model: nn.Module, graphs: Sequence, labels: torch.Tensor,
               device: torch.device) -> float:
    from dglcleaner.training import predict

    return float((predict(model, list(graphs), device=device) == labels.cpu()).float().mean())


def _explain_loss(student, out_c, out_t, bg, bt, y, cfg: UnlearnConfig, explainer) -> torch.Tensor:
    bnn = bg.batch_num_nodes()
    if cfg.heatmap == "gradcam":
        layers_c, layers_t = out_c.layers, out_t.layers
        if cfg.heat_layers == "last":
            layers_c, layers_t = layers_c[-1:], layers_t[-1:]
        hc = gradcam_maps(out_c.logits, layers_c, bg, y, cfg.heat_grad, cfg.heat_norm)
        ht = gradcam_maps(out_t.logits, layers_t, bt, y, cfg.heat_grad, cfg.heat_norm)
        total = out_c.logits.new_zeros(())
        for a, b in zip(ht, hc):
            d = per_graph_l2(a, b, bnn)
            total = total + (torch.sqrt((d ** 2).sum()) if cfg.distance == "frobenius"
                             else d.mean())
        return total
    # Another explainer as the heat-map source (Table 6): its per-node scores per graph. They
    # train the student only from an explainer whose heat_map keeps the autograd graph
    # (gradient-based: IG, guided backprop); for the others the term is a constant.
    was = student.training
    heat = getattr(explainer, "heat_map", None) or explainer.node_importance
    ic = heat(student, bg, bg.ndata["feat"], y)
    it = heat(student, bt, bt.ndata["feat"], y)
    student.train(was)
    return per_graph_l2(it.to(bnn.device).float(), ic.to(bnn.device).float(), bnn).mean()


def layers_of(model: nn.Module) -> List[nn.Module]:
    """The conv layers Grad-CAM reads (for documentation and tests)."""
    return list(model.conv_layers())
