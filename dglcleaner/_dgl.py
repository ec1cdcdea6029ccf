"""The one place that imports DGL.

DGL 2.1.0 (the newest wheel on PyPI for Linux) imports its ``graphbolt`` sub-package eagerly
(``dgl/__init__ -> dataloading -> distributed -> graphbolt``), and graphbolt loads a native
library built only for torch 2.0.0-2.2.1 and needs ``torchdata.datapipes`` (gone in torchdata
0.10). On any other torch ``import dgl`` fails, although nothing dglcleaner uses lives in
graphbolt. :func:`import_dgl` checks, before the first ``import dgl``, whether graphbolt can load;
if it cannot, it registers a placeholder module as ``dgl.graphbolt`` whose attributes raise a
clear error, then imports the real DGL. When graphbolt's library exists for the running torch
(a matching torch, or a CUDA build of DGL) it does nothing but import DGL.

Every module of dglcleaner and of the built-in plugins gets DGL with::

    from dglcleaner._dgl import dgl
"""
from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path
from typing import Any, Dict, Optional

from .errors import DGLImportError

#: Filled by :func:`import_dgl`: what the loader saw and did (``dglcleaner doctor`` prints it).
STATE: Dict[str, Any] = {"stepped_in": False, "reason": None, "graphbolt_lib": None}

_FIX = (
    "install the pinned versions with `pip install -r requirements/constraints.txt` "
    "(torch==2.13.0 with dgl==2.1.0 works through dglcleaner's loader), "
    "then run `dglcleaner doctor`"
)


def _dgl_dir() -> Optional[Path]:
    spec = importlib.util.find_spec("dgl")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def graphbolt_library(dgl_dir: Path, torch_version: str) -> Path:
    """Path of the graphbolt library DGL would load for ``torch_version``."""
    base = torch_version.split("+", 1)[0]
    return dgl_dir / "graphbolt" / f"libgraphbolt_pytorch_{base}.so"


def native_libraries(dgl_dir: Optional[Path] = None) -> Dict[str, list]:
    """Which of DGL's native libraries exist (for ``doctor``)."""
    dgl_dir = dgl_dir or _dgl_dir()
    if dgl_dir is None:
        return {}
    return {
        "core": sorted(p.name for p in dgl_dir.glob("libdgl.*")),
        "sparse": sorted(
            p.name for p in (dgl_dir / "dgl_sparse").glob("libdgl_sparse_pytorch_*")),
        "graphbolt": sorted(p.name for p in (dgl_dir / "graphbolt").glob("libgraphbolt_*")),
    }


def _torchdata_has_datapipes() -> bool:
    try:
        return importlib.util.find_spec("torchdata.datapipes") is not None
    except (ImportError, ValueError):
        return False


def graphbolt_blocker(dgl_dir: Path, torch_version: str) -> Optional[str]:
    """Why graphbolt cannot import here, or ``None`` if it can."""
    lib = graphbolt_library(dgl_dir, torch_version)
    STATE["graphbolt_lib"] = str(lib)
    if not (dgl_dir / "graphbolt" / "__init__.py").exists():
        return None  # a DGL without graphbolt: nothing to work around
    if not lib.exists():
        return f"DGL ships no graphbolt library for torch {torch_version}"
    if not _torchdata_has_datapipes():
        return "torchdata.datapipes is missing (torchdata >= 0.10)"
    return None


class _Unavailable(types.ModuleType):
    """Placeholder for ``dgl.graphbolt``: any attribute access raises a clear error."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(name)
        self.__dict__["_reason"] = reason
        self.__dict__["__path__"] = []

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        raise RuntimeError(
            f"dgl.graphbolt is not available ({self._reason}); dglcleaner does not use it. "
            "Install torch 2.0-2.2.1 with torchdata<0.10 if you need graphbolt."
        )


def install_placeholder(reason: str) -> None:
    """Register the placeholder ``dgl.graphbolt`` module."""
    sys.modules["dgl.graphbolt"] = _Unavailable("dgl.graphbolt", reason)
    STATE["stepped_in"] = True
    STATE["reason"] = reason


def import_dgl() -> types.ModuleType:
    """Import DGL, stepping in for graphbolt only when it cannot load (see module docstring)."""
    if "dgl" in sys.modules and hasattr(sys.modules["dgl"], "graph"):
        return sys.modules["dgl"]
    os.environ.setdefault("DGLBACKEND", "pytorch")
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DGLImportError(f"PyTorch is not installed ({exc}); {_FIX}") from None
    dgl_dir = _dgl_dir()
    if dgl_dir is None:
        raise DGLImportError(f"DGL is not installed; {_FIX}")
    reason = graphbolt_blocker(dgl_dir, torch.__version__)
    if reason is not None and "dgl.graphbolt" not in sys.modules:
        install_placeholder(reason)
    try:
        import dgl as _dgl
    except Exception as exc:  # noqa: BLE001 - any import failure gets the one message
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DGLImportError(
            f"cannot import DGL with torch {torch.__version__}: {type(exc).__name__}: {first}; "
            f"{_FIX}"
        ) from None
    return _dgl


dgl = import_dgl()
