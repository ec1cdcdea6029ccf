"""Safe model files: weights plus a JSON description, loadable without running any code.

A model file is a zip archive with two members:

``dglcleaner-model.json``
    ``{"format": "dglcleaner-model", "version": 1, "model": GraphClassifier.config(),
    "featurizer": Featurizer.to_dict() or null, "metadata": {...}, "tensors": {name: {dtype,
    shape}}}``.
``weights.npz``
    The state dict as plain numpy arrays, read with ``numpy.load(allow_pickle=False)``.

Loading never unpickles: a pickle or ``torch.save`` file (which can execute code when loaded) is
refused with one line, before anything in it is interpreted.

Example
-------
>>> import tempfile, os
>>> from dglcleaner.models import build_model
>>> m = build_model("gin", in_dim=4, num_classes=2)
>>> path = os.path.join(tempfile.mkdtemp(), "m.dglc")
>>> save_model(path, m, metadata={"note": "demo"})
>>> load_model(path).model.config() == m.config()
True
"""
from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np
import torch

from .errors import ModelFileError
from .io_utils import atomic_write_bytes

FORMAT = "dglcleaner-model"
VERSION = 1
JSON_NAME = "dglcleaner-model.json"
WEIGHTS_NAME = "weights.npz"
_DTYPES = {"float32", "float64", "float16", "int64", "int32", "uint8", "bool"}
_PICKLE_HINT = ("it can run arbitrary code when loaded, so dglcleaner never unpickles; re-save "
                "the model with dglcleaner.model_io.save_model (weights + JSON)")


@dataclass
class LoadedModel:
    """What :func:`load_model` returns: the rebuilt classifier (eval mode), its featurizer
    (or ``None``) and the stored metadata."""

    model: torch.nn.Module
    featurizer: Any = None
    metadata: Dict[str, Any] = field(default_factory=dict)
    description: Dict[str, Any] = field(default_factory=dict)


def save_model(path: Union[str, Path], model: torch.nn.Module, featurizer: Any = None,
               metadata: Optional[Dict[str, Any]] = None) -> None:
    """Write ``model`` (a :class:`~dglcleaner.models.GraphClassifier`) atomically to ``path``."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    arrays = {k: v.numpy() for k, v in state.items()}
    desc = {
        "format": FORMAT, "version": VERSION, "model": model.config(),
        "featurizer": featurizer.to_dict() if featurizer is not None else None,
        "metadata": metadata or {},
        "tensors": {k: {"dtype": str(a.dtype), "shape": list(a.shape)} for k, a in arrays.items()},
    }
    wbuf = io.BytesIO()
    np.savez(wbuf, **arrays)
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(JSON_NAME, json.dumps(desc, indent=2, sort_keys=True))
        zf.writestr(WEIGHTS_NAME, wbuf.getvalue())
    atomic_write_bytes(path, zbuf.getvalue())


def load_model(path: Union[str, Path], device: Optional[torch.device] = None) -> LoadedModel:
    """Rebuild a model saved with :func:`save_model`; refuse anything else with one line."""
    from .models import build_from_config

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {str(path)!r} does not exist")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:1] == b"\x80" or head[:1] in (b"(", b"]", b"}"):
        raise ModelFileError(f"model file {str(path)!r} is a pickle; {_PICKLE_HINT}")
    if head != b"PK\x03\x04":
        raise ModelFileError(
            f"model file {str(path)!r} is not a dglcleaner model file (a zip with "
            f"{JSON_NAME} and {WEIGHTS_NAME}); save models with dglcleaner.model_io.save_model")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if any(n.endswith(".pkl") or n.endswith("/data.pkl") for n in names):
                raise ModelFileError(
                    f"model file {str(path)!r} is a torch.save (pickle) archive; {_PICKLE_HINT}")
            if JSON_NAME not in names or WEIGHTS_NAME not in names:
                raise ModelFileError(
                    f"model file {str(path)!r} lacks {JSON_NAME} or {WEIGHTS_NAME}; save models "
                    f"with dglcleaner.model_io.save_model")
            desc = json.loads(zf.read(JSON_NAME).decode("utf-8"))
            weights = zf.read(WEIGHTS_NAME)
    except zipfile.BadZipFile as exc:
        raise ModelFileError(f"model file {str(path)!r} is a damaged zip archive ({exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"model file {str(path)!r} has an unreadable {JSON_NAME} ({exc})") from None
    if not isinstance(desc, dict) or desc.get("format") != FORMAT:
        raise ModelFileError(f"model file {str(path)!r}: {JSON_NAME} is not a {FORMAT} description")
    if desc.get("version") != VERSION:
        raise ModelFileError(f"model file {str(path)!r} has format version {desc.get('version')!r}; "
                             f"this dglcleaner reads version {VERSION}")
    try:
        npz = np.load(io.BytesIO(weights), allow_pickle=False)
        arrays = {k: npz[k] for k in npz.files}
    except ValueError as exc:  # object arrays would need pickle: refused by allow_pickle=False
        raise ModelFileError(f"model file {str(path)!r}: weights are not plain arrays ({exc})") from None
    bad = [k for k, a in arrays.items() if str(a.dtype) not in _DTYPES]
    if bad:
        raise ModelFileError(f"model file {str(path)!r}: tensor {bad[0]!r} has dtype "
                             f"{arrays[bad[0]].dtype}; valid: {', '.join(sorted(_DTYPES))}")
    try:
        model = build_from_config(desc["model"])
    except (KeyError, TypeError) as exc:
        raise ModelFileError(f"model file {str(path)!r}: bad model description ({exc})") from None
    state = {k: torch.from_numpy(np.array(a)) for k, a in arrays.items()}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise ModelFileError(f"model file {str(path)!r}: weights do not match the described model "
                             f"(missing {missing[:3]}, unexpected {extra[:3]})")
    for k, t in expected.items():
        if tuple(t.shape) != tuple(state[k].shape):
            raise ModelFileError(f"model file {str(path)!r}: weight {k!r} has shape "
                                 f"{tuple(state[k].shape)}, the model needs {tuple(t.shape)}")
    model.load_state_dict(state)
    featurizer = None
    if desc.get("featurizer"):
        from .data.features import Featurizer

        featurizer = Featurizer.from_dict(desc["featurizer"])
        if featurizer.dim != model.in_dim:
            raise ModelFileError(f"model file {str(path)!r}: its featurizer gives {featurizer.dim} "
                                 f"features but the model expects {model.in_dim}")
    if device is not None:
        model.to(device)
    model.eval()
    return LoadedModel(model, featurizer, dict(desc.get("metadata") or {}), desc)
