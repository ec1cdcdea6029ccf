"""Repair a model you were handed: ``defend --model-file FILE --clean-data DATA --out FILE``.

The real defender's situation: a suspicious model file, a little clean data, no attack named.
Only defenses whose threat model is post-training can run here (they need nothing but the model
and clean data). The model file format is :mod:`dglcleaner.model_io` (no pickle).

Example
-------
>>> from dglcleaner.repair import parse_clean_data
>>> parse_clean_data("AIDS:60")
('AIDS', 60)
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from .api import DefenseContext, ThreatModel
from .errors import ModelFileError, ParameterError, UserError
from .seeding import derive_seed, resolve_device, seed_everything


def parse_clean_data(spec: str) -> Tuple[str, Optional[int]]:
    """``NAME_OR_PATH[:COUNT]`` -> ``(name_or_path, count or None)``."""
    head, sep, tail = str(spec).rpartition(":")
    if sep and tail.isdigit() and head:
        count = int(tail)
        if count < 2:
            raise ParameterError(f"--clean-data count must be >= 2; got {count}")
        return head, count
    return str(spec), None


def load_clean_data(spec: str, data_dir: Optional[str] = None):
    """A dataset name (looked up like ``--dataset``), a TU raw folder, a TU zip, or a GIN text
    file."""
    from .data import load_dataset, read_gin_text, read_tu_raw, read_tu_zip

    p = Path(spec)
    if p.is_dir():
        return read_tu_raw(p, p.name)
    if p.is_file():
        if p.suffix == ".zip":
            return read_tu_zip(p, p.stem)
        return read_gin_text(p, p.stem)
    return load_dataset(spec, data_dir, download=False)


def repair(model_path: str, clean_data: str, defense: str = "gcleaner",
           params: Optional[Dict[str, Any]] = None, out_path: Optional[str] = None,
           device: str = "cpu", seed: int = 0, preset: Optional[str] = None,
           data_dir: Optional[str] = None, features: Optional[str] = None,
           progress=None) -> Dict[str, Any]:
    """Load ``model_path``, run post-training ``defense`` on ``clean_data``, save to ``out_path``.

    ``clean_data`` is ``NAME_OR_PATH[:COUNT]`` (COUNT graphs drawn with ``seed``; all if
    omitted). Features come from the featurizer stored in the model file, or ``features`` (a
    feature mode fitted on the clean data) when the file has none. Returns a JSON-ready dict:
    accuracy on the clean data before and after, the defense's info, timings, the output path.
    """
    from .model_io import load_model, save_model
    from .models import build_from_config
    from .registry import make_plugin
    from .runner import get_explainer
    from .training import TrainConfig, predict, train_model

    start = time.perf_counter()
    dev = resolve_device(device)
    plugin = make_plugin("defense", defense, params or {}, preset)
    tm = ThreatModel(plugin.threat_model)
    if tm is not ThreatModel.POST_TRAINING:
        raise UserError(
            f"defense {defense!r} has threat model {tm.value} (it needs the training set); "
            f"repairing a model file needs a post-training defense such as gcleaner or finetune")
    if getattr(plugin, "wants_oracle_trigger", False):
        raise UserError(f"defense {defense!r} is set to use the true trigger (oracle), which a "
                        f"model file does not carry; use trigger_source=recover")
    loaded = load_model(model_path, dev)
    model = loaded.model
    name, count = parse_clean_data(clean_data)
    ds = load_clean_data(name, data_dir)
    idx = np.arange(len(ds))
    if count is not None and count < len(ds):
        rng = np.random.default_rng(derive_seed(seed, "repair", "clean"))
        idx = np.sort(rng.choice(len(ds), size=count, replace=False))
    featurizer = loaded.featurizer
    if featurizer is None:
        if features is None:
            raise UserError(f"model file {model_path!r} stores no featurizer; pass the feature "
                            f"mode (degree_onehot, node_label_onehot or attributes)")
        from .data import make_featurizer

        featurizer = make_featurizer(features, ds, idx)
    graphs = featurizer.apply([ds.graphs[i] for i in idx.tolist()])
    labels = ds.labels[torch.as_tensor(idx)].clone()
    width = graphs[0].ndata["feat"].shape[1] if graphs else 0
    if width != model.in_dim:
        raise ModelFileError(f"the clean data gives {width} features per node but the model in "
                             f"{model_path!r} expects {model.in_dim}")
    if int(labels.max()) >= model.num_classes:
        raise ModelFileError(f"the clean data has labels up to {int(labels.max())} but the model in "
                             f"{model_path!r} predicts {model.num_classes} classes")

    def build():
        return build_from_config(model.config()).to(dev)

    def train(m, g, y, **overrides):
        extra = {k: overrides.pop(k) for k in ("loss_fn", "on_epoch") if k in overrides}
        return train_model(m, g, y, TrainConfig().updated(**overrides),
                           seed=derive_seed(seed, "train", len(g)), device=dev, **extra)

    ctx = DefenseContext(threat_model=tm, featurizer=featurizer, num_classes=model.num_classes,
                         seed=derive_seed(seed, "defense"), device=dev, build_model=build,
                         train=train, model=model, clean_graphs=graphs, clean_labels=labels,
                         get_explainer=get_explainer, progress=progress)
    acc_before = float((predict(model, graphs, device=dev) == labels).float().mean())
    seed_everything(derive_seed(seed, "defense", defense))
    t0 = time.perf_counter()
    res = plugin.run(ctx)
    defense_s = time.perf_counter() - t0
    acc_after = float((predict(res.model, graphs, device=dev) == labels).float().mean())
    if out_path:
        meta = dict(loaded.metadata)
        meta.update({"repaired_by": defense, "repair_params": plugin.get_params(),
                     "repair_preset": preset, "repair_seed": seed,
                     "repaired_from": os.path.basename(str(model_path)),
                     "repair_clean_data": clean_data})
        save_model(out_path, res.model, featurizer, meta)
    from .runner import _jsonable

    return {"defense": defense, "params": plugin.get_params(), "preset": preset,
            "clean_graphs": len(graphs), "clean_acc_before": acc_before,
            "clean_acc_after": acc_after, "info": _jsonable(res.info), "defense_s": defense_s,
            "elapsed_s": time.perf_counter() - start, "out": out_path}
