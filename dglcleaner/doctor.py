"""Environment report for ``dglcleaner doctor``."""
from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any, Dict


def data_dir_text() -> str:
    """Where datasets are looked for, in order."""
    env = os.environ.get("DGLCLEANER_DATA_DIR")
    cache = os.environ.get("DGLCLEANER_CACHE") or str(Path.home() / ".cache" / "dglcleaner")
    first = f"$DGLCLEANER_DATA_DIR={env}" if env else "$DGLCLEANER_DATA_DIR unset"
    return f"{first}; cache {cache}"


def collect() -> Dict[str, Any]:
    """Python, torch (CUDA), DGL, native libraries, loader state, data dir, plugins."""
    from . import __version__, registry

    info: Dict[str, Any] = {"dglcleaner": __version__, "python": platform.python_version(),
                            "platform": platform.platform()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = (f"available ({torch.version.cuda}, {torch.cuda.get_device_name(0)})"
                        if torch.cuda.is_available() else
                        f"not available (torch built with CUDA {torch.version.cuda})")
    except ImportError as exc:
        info["torch"] = f"missing ({exc})"
    else:
        from .machine import numerics

        facts = numerics()
        info["cpu"] = facts["cpu"]
        info["numerics"] = (f"torch kernels {facts['cpu_capability']}, MKL_CBWR "
                            f"{facts['mkl_cbwr']} (numbers are reproducible on one machine; "
                            f"MKL_CBWR=COMPATIBLE makes MKL's kernels the same on every CPU)")
    from ._dgl import STATE, native_libraries
    try:
        from ._dgl import dgl

        info["dgl"] = dgl.__version__
    except ImportError as exc:
        info["dgl"] = f"cannot import: {exc}"
    libs = native_libraries()
    info["dgl native libraries"] = "; ".join(
        f"{k}: {', '.join(v) if v else 'none'}" for k, v in libs.items()) or "DGL not found"
    info["dgl loader"] = (f"stepped in: {STATE['reason']} (dgl.graphbolt replaced by a "
                          f"placeholder; dglcleaner does not use it)"
                          if STATE.get("stepped_in") else "not needed (DGL imports normally)")
    info["data directory"] = data_dir_text()
    info["plugins"] = [s.to_dict() for s in registry.discover()]
    return info
