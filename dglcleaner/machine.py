"""Facts about the CPU that decide the last bits of every number.

The same seed gives the same numbers twice on one machine. Across machines it need not: torch's
CPU build dispatches to MKL and to its own vectorised kernels by instruction set, and MKL's
AVX-512 kernels (Intel CPUs) fuse multiply-adds that its compatible kernels (what it runs on AMD
CPUs) round separately. Training amplifies such last-bit differences into different models,
typically within the spread over seeds. ``MKL_CBWR=COMPATIBLE`` (set before the first MKL call)
makes MKL take its compatible kernels everywhere, at a cost in speed (1.5-1.9x on a full
``defend`` run of the embedded data on an AVX-512 Xeon, ``benchmarks/numerics.py``); torch's own
vectorised kernels still follow the CPU. Every result records these facts, so two numbers can
be told apart by the machine that made them.
"""
from __future__ import annotations

import os
from typing import Dict


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``"?"`` where there is none)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def numerics() -> Dict[str, str]:
    """CPU model, the instruction set torch's kernels use, and MKL's reproducibility mode."""
    import torch

    try:
        capability = str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # noqa: BLE001 - older torch builds lack the call
        capability = "?"
    return {"cpu": cpu_model(), "cpu_capability": capability,
            "mkl_cbwr": os.environ.get("MKL_CBWR") or "unset"}


__all__ = ["cpu_model", "numerics"]
