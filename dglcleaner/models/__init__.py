"""Graph classifiers: GIN (default), GCN, GAT, GraphSAGE.

>>> from dglcleaner.models import build_model
>>> build_model("gin", in_dim=8, num_classes=2).arch
'gin'
"""
from __future__ import annotations

from typing import Any, Dict

from ..errors import unknown_name
from .base import GraphClassifier, ModelOutput
from .gat import GAT
from .gcn import GCN
from .gin import GIN
from .sage import GraphSAGE

MODELS = {"gin": GIN, "gcn": GCN, "gat": GAT, "sage": GraphSAGE}
_ALIASES = {"graphsage": "sage"}
MODEL_NAMES = ("gin", "gcn", "gat", "sage")


def model_class(name: str) -> type:
    """The classifier class for ``name`` (case-insensitive; ``graphsage`` = ``sage``)."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in MODELS:
        raise unknown_name("model", name, MODEL_NAMES)
    return MODELS[key]


def build_model(name: str, in_dim: int, num_classes: int, **kwargs: Any) -> GraphClassifier:
    """Instantiate classifier ``name``; kwargs: ``hidden``, ``num_layers``, ``dropout``."""
    return model_class(name)(in_dim=in_dim, num_classes=num_classes, **kwargs)


def build_from_config(config: Dict[str, Any]) -> GraphClassifier:
    """Rebuild a classifier from :meth:`GraphClassifier.config`."""
    cfg = dict(config)
    return build_model(cfg.pop("arch"), **cfg)


__all__ = ["GraphClassifier", "ModelOutput", "GIN", "GCN", "GAT", "GraphSAGE", "MODELS",
           "MODEL_NAMES", "build_model", "build_from_config", "model_class"]
