"""One seed fixes everything: python, numpy, torch (CPU and CUDA) and DGL."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from ._dgl import dgl


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy, torch and DGL; on CUDA also ask cuDNN for determinism."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():  # pragma: no cover - no GPU in CI
        torch.cuda.manual_seed_all(seed)
        if deterministic:
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    dgl.seed(int(seed) % (2**31 - 1))


def derive_seed(seed: int, *tags: object) -> int:
    """A stable sub-seed for one stage (so stages do not share random streams).

    Uses a fixed hash (not Python's salted ``hash``) so it is identical across processes.
    """
    import hashlib

    text = ":".join([str(seed)] + [str(t) for t in tags]).encode()
    # below 2**31: dgl.seed takes a C int
    return int.from_bytes(hashlib.sha256(text).digest()[:4], "little") % (2**31 - 1)


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``cpu``, ``cuda`` (``cuda:N``) or ``auto`` (CUDA when torch and DGL both support it)."""
    from .errors import UserError

    if isinstance(device, torch.device):
        return device
    name = (device or "auto").lower()
    if name == "auto":
        return torch.device("cuda") if _cuda_usable() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not _cuda_usable():
            raise UserError(
                f"device {device!r} requested but CUDA is not usable here (torch CUDA: "
                f"{torch.cuda.is_available()}, DGL CUDA build: {_dgl_has_cuda()}); use --device cpu"
            )
        return torch.device(name)
    raise UserError(f"unknown device {device!r}; valid devices: cpu, cuda, cuda:N, auto")


def _dgl_has_cuda() -> bool:
    return torch.cuda.is_available() and _dgl_cuda_probe()


def _dgl_cuda_probe() -> bool:
    try:
        g = dgl.graph(([0], [0]))
        g.to(torch.device("cuda"))
        return True
    except Exception:  # noqa: BLE001 - a CPU build of DGL raises on .to(cuda)
        return False


def _cuda_usable() -> bool:
    return torch.cuda.is_available() and _dgl_has_cuda()
