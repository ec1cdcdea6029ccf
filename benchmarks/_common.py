"""Helpers shared by the benchmark scripts: machine description and Markdown tables."""
from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from typing import Any, Dict, Optional


def machine() -> Dict[str, Any]:
    """What the numbers were measured on (written next to every table)."""
    import torch

    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover
        load = (float("nan"),) * 3
    try:
        # the checkout this script lives in, whatever the working directory
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except Exception:  # noqa: BLE001
        commit = "?"
    from dglcleaner.machine import numerics

    facts = numerics()
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": facts["cpu"], "cpu_kernels": facts["cpu_capability"],
        "mkl_cbwr": facts["mkl_cbwr"], "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(), "torch": torch.__version__,
        "load_average_at_end": " ".join(f"{x:.1f}" for x in load), "commit": commit,
    }


def fmt(ms: Optional[Dict[str, Any]], digits: int = 2) -> str:
    """``mean ± std`` of a ``{"mean", "std"}`` dict, ``-`` when missing."""
    if not ms or ms.get("mean") is None:
        return "-"
    return f"{ms['mean']:.{digits}f} ± {ms['std']:.{digits}f}"


def machine_md(info: Dict[str, Any]) -> str:
    return ("Measured on: " + ", ".join(f"{k} {v}" for k, v in info.items()) + ".")


def scoped_params(specs, flag: str, scope: str) -> Dict[str, Dict[str, str]]:
    """``["gta:iterations=5", ...]`` -> ``{"gta": {"iterations": "5"}}`` (values stay strings;
    the plugin's Params coerce and validate them)."""
    out: Dict[str, Dict[str, str]] = {}
    for spec in specs:
        name, _, kv = spec.partition(":")
        key, sep, value = kv.partition("=")
        if not name or not key or not sep:
            raise SystemExit(f"{flag} expects {scope}:NAME=VALUE; got {spec!r}")
        out.setdefault(name, {})[key] = value
    return out
