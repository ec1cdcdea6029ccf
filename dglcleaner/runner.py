"""The ``defend`` pipeline: data -> clean model -> attack -> backdoored model -> defense ->
evaluation, for one seed (:class:`SeedRun`) or several (:func:`run_defend`).

Stages are computed lazily and cached on the :class:`SeedRun`, so an experiment grid that
evaluates several defenses for the same dataset, model, attack and seed trains the clean and
the backdoored models once. The runner hands each defense exactly what its threat model
allows (:func:`defense_context`).
"""
from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from . import __version__, metrics
from ._dgl import dgl
from .api import AttackContext, AttackResult, DefenseContext, DefenseResult, ThreatModel
from .backdoor import default_trigger_size
from .errors import ParameterError, UserError
from .models import build_model, model_class
from .registry import make_plugin
from .seeding import derive_seed, resolve_device, seed_everything
from .training import TrainConfig, predict, train_model

Progress = Callable[[str], None]

#: Version of the JSON written by ``defend --json`` (see docs/results-schema.md).
SCHEMA = "dglcleaner.defend/1"


@dataclass
class DefendConfig:
    """Everything that determines a ``defend`` run (stored with every result)."""

    dataset: str = "synthetic"
    attack: Optional[str] = "sub-ba"
    defense: str = "none"
    model: str = "gin"
    seed: int = 0
    seeds: int = 1
    device: str = "auto"
    data_dir: Optional[str] = None
    features: str = "degree_onehot"
    target_label: int = 1
    injection_ratio: float = 0.05
    trigger_size: Optional[int] = None
    trigger_fraction: float = 0.2
    train_ratio: float = 0.8
    holding_ratio: float = 0.03
    hidden: int = 64
    train: TrainConfig = field(default_factory=TrainConfig)
    attack_params: Dict[str, Any] = field(default_factory=dict)
    defense_params: Dict[str, Any] = field(default_factory=dict)
    attack_preset: Optional[str] = None
    defense_preset: Optional[str] = None
    dataset_options: Dict[str, Any] = field(default_factory=dict)
    #: Adaptive attack of GCleaner's section 5.2.6 (Eq. 16): weight of the term that spreads
    #: triggered graphs' embeddings apart during backdoor training; 0 = ordinary training.
    adaptive_alpha: float = 0.0

    def validate(self) -> None:
        """One-line errors for out-of-range settings, before any work starts."""
        model_class(self.model)
        if self.seeds < 1:
            raise ParameterError(f"--seeds must be >= 1; got {self.seeds}")
        if not 0 < self.injection_ratio < 1:
            raise ParameterError(f"injection ratio must be in (0, 1); got {self.injection_ratio}")
        if not 0 < self.train_ratio < 1:
            raise ParameterError(f"train ratio must be in (0, 1); got {self.train_ratio}")
        if not 0 <= self.holding_ratio < 1:
            raise ParameterError(f"holding ratio must be in [0, 1); got {self.holding_ratio}")
        if self.trigger_size is not None and self.trigger_size < 1:
            raise ParameterError(f"trigger size must be >= 1; got {self.trigger_size}")
        if not 0 < self.trigger_fraction <= 1:
            raise ParameterError(
                f"trigger fraction must be in (0, 1]; got {self.trigger_fraction}")
        if self.adaptive_alpha < 0:
            raise ParameterError(f"adaptive alpha must be >= 0; got {self.adaptive_alpha}")
        if self.target_label < 0:
            raise ParameterError(f"target label must be >= 0; got {self.target_label}")

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["train"] = self.train.to_dict()
        return d


# ---------------------------------------------------------------------------------------------
_DATASETS: Dict[Any, Any] = {}


def load_dataset_cached(name: str, data_dir: Optional[str], **options: Any):
    """Load a dataset once per process (readers are the slow part for COLLAB)."""
    from .data import load_dataset

    key = (name.lower(), data_dir, tuple(sorted(options.items())))
    if key not in _DATASETS:
        _DATASETS[key] = load_dataset(name, data_dir, **options)
    return _DATASETS[key]



class SeedRun:
    """One seed of one (dataset, model, attack) combination; stages are cached.

    Attributes computed on first use: ``data`` (featurised splits), ``clean_model``,
    ``attack_result``, ``backdoored_model``, ``triggered_eval``.
    """

    def __init__(self, cfg: DefendConfig, seed: int, progress: Optional[Progress] = None,
                 dataset: Any = None) -> None:
        self.cfg = cfg
        self.seed = int(seed)
        self.device = resolve_device(cfg.device)
        self.progress = progress or (lambda msg: None)
        self.timings: Dict[str, float] = {}
        self._dataset = dataset
        self._cache: Dict[str, Any] = {}

    #: Stages that depend on the dataset, split, features, model and seed but not on the attack.
    #: (``clean_eval`` is not one: it holds the trigger's ASR on the clean model.)
    ATTACK_FREE_STAGES = ("features", "data", "clean_model", "clean_eval_pred")

    def share_stages(self, source: "SeedRun",
                     stages: Tuple[str, ...] = ATTACK_FREE_STAGES) -> "SeedRun":
        """Reuse ``source``'s already computed ``stages`` (e.g. the split and the clean model
        for another attack on the same dataset, model and seed). The caller vouches that the
        two runs agree on everything those stages depend on."""
        self._dataset = source._dataset
        for key in stages:
            if key in source._cache:
                self._cache[key] = source._cache[key]
        return self

    def cached(self, stage: str) -> Any:
        """A computed stage's value, or ``None`` if it has not been computed."""
        return self._cache.get(stage)

    # --- helpers --------------------------------------------------------------------------
    def _timed(self, stage: str, fn: Callable[[], Any]) -> Any:
        self.progress(stage)
        start = time.perf_counter()
        out = fn()
        self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start
        return out

    def _cached(self, key: str, stage: str, fn: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = self._timed(stage, fn)
        return self._cache[key]

    def build_model(self) -> torch.nn.Module:
        d = self.data
        return build_model(self.cfg.model, d["featurizer"].dim, d["num_classes"],
                           hidden=self.cfg.hidden).to(self.device)

    def train(self, model, graphs, labels, **overrides) -> torch.nn.Module:
        """Train with the run's settings (``overrides`` replace TrainConfig fields; ``loss_fn``,
        ``on_epoch`` and ``batch_plan`` go to :func:`train_model`)."""
        extra = {k: overrides.pop(k) for k in ("loss_fn", "on_epoch", "batch_plan")
                 if k in overrides}
        cfg = self.cfg.train.updated(**overrides) if overrides else self.cfg.train
        seed = derive_seed(self.seed, "train", len(graphs))
        return train_model(model, graphs, labels, cfg, seed=seed, device=self.device, **extra)

    # --- stages ---------------------------------------------------------------------------
    @property
    def dataset(self):
        if self._dataset is None:
            self._dataset = self._timed("load data", lambda: load_dataset_cached(
                self.cfg.dataset, self.cfg.data_dir, **self.cfg.dataset_options))
        return self._dataset

    @property
    def features(self) -> Tuple[Any, List[Any]]:
        """``(featurizer, featurised graphs)``: fitted on the train split, which does not
        depend on the holding ratio, so runs that differ only in it (or in the trigger size)
        can share this stage and hold the featurised graphs once."""
        return self._cached("features", "featurise data", self._featurise)

    def _split(self):
        from .data import split_dataset

        return split_dataset(len(self.dataset), train_ratio=self.cfg.train_ratio,
                             holding_ratio=self.cfg.holding_ratio,
                             seed=derive_seed(self.seed, "split"))

    def _featurise(self) -> Tuple[Any, List[Any]]:
        from .data import make_featurizer

        ds = self.dataset
        featurizer = make_featurizer(self.cfg.features, ds, self._split().train_idx)
        return featurizer, featurizer.apply(ds.graphs)

    @property
    def data(self) -> Dict[str, Any]:
        if "data" not in self._cache:
            self.features  # noqa: B018 - timed as its own stage, before the split is picked
        return self._cached("data", "prepare data", self._prepare)

    def _prepare(self) -> Dict[str, Any]:
        ds = self.dataset
        split = self._split()
        featurizer, graphs = self.features

        def pick(idx):
            idx = idx.tolist()
            return [graphs[i] for i in idx], ds.labels[idx].clone()

        train_g, train_y = pick(split.train_idx)
        hold_g, hold_y = pick(split.holding_idx)
        eval_g, eval_y = pick(split.eval_idx)
        k = self.cfg.trigger_size or default_trigger_size(ds.avg_nodes, self.cfg.trigger_fraction)
        if self.cfg.target_label >= ds.num_classes:
            raise ParameterError(
                f"target label must be in [0, {ds.num_classes - 1}] for {ds.name}; "
                f"got {self.cfg.target_label}")
        return {"featurizer": featurizer, "num_classes": ds.num_classes, "split": split,
                "train": (train_g, train_y), "holding": (hold_g, hold_y),
                "eval": (eval_g, eval_y), "trigger_size": k}

    @property
    def clean_model(self) -> torch.nn.Module:
        def fit():
            seed_everything(derive_seed(self.seed, "clean-model"))
            g, y = self.data["train"]
            return self.train(self.build_model(), g, y)
        return self._cached("clean_model", "train clean model", fit)

    @property
    def attack(self):
        return self._cached("attack_plugin", "load attack", lambda: make_plugin(
            "attack", self.cfg.attack, self.cfg.attack_params, self.cfg.attack_preset))

    @property
    def attack_result(self) -> AttackResult:
        def run() -> AttackResult:
            plugin = self.attack
            if plugin.task != "graph":
                raise UserError(
                    f"attack {plugin.name!r} is a {plugin.task}-classification attack; "
                    f"defend runs graph-classification backdoors (use `dglcleaner attack "
                    f"--task node` for it)")
            clean_model = self.clean_model  # trained (or cached) before the attack's seeding
            seed_everything(derive_seed(self.seed, "attack"))
            return plugin.run(self.attack_context(clean_model))
        return self._cached("attack_result", "attack", run)

    def attack_context(self, clean_model: Optional[torch.nn.Module]) -> AttackContext:
        """The attack's view of this run (``clean_model`` ``None`` for a check)."""
        g, y = self.data["train"]
        return AttackContext(
            train_graphs=g, train_labels=y, num_classes=self.data["num_classes"],
            featurizer=self.data["featurizer"], target_label=self.cfg.target_label,
            injection_ratio=self.cfg.injection_ratio,
            trigger_size=self.data["trigger_size"], seed=derive_seed(self.seed, "attack"),
            device=self.device, build_model=self.build_model, train=self.train,
            clean_model=clean_model, get_explainer=get_explainer,
            progress=self.progress, adaptive_alpha=self.cfg.adaptive_alpha)

    def check(self, defense: Any = None) -> None:
        """Run the attack's and ``defense``'s (a plugin instance) optional ``check`` hooks on
        this run's data before any model is trained (see :class:`~dglcleaner.api.Attack`)."""
        if self.cfg.attack and callable(getattr(self.attack, "check", None)):
            self.attack.check(self.attack_context(None))
        if defense is not None:
            self.check_defense(defense)

    def check_defense(self, defense: Any) -> None:
        """Only ``defense``'s check (its context's own checks too: a post-training defense
        with an empty holding set is refused here)."""
        ctx = defense_context(self, defense, check=True)
        if callable(getattr(defense, "check", None)):
            defense.check(ctx)

    @property
    def backdoored_model(self) -> torch.nn.Module:
        def fit():
            res = self.attack_result
            if res.model is not None:
                alpha = self.cfg.adaptive_alpha
                if alpha > 0 and res.adaptive_alpha != alpha:
                    raise ParameterError(
                        f"adaptive_alpha={alpha} has no effect on attack {self.cfg.attack!r}: "
                        f"it trains its own backdoored model without the adaptive loss; use "
                        f"adaptive_alpha=0 for it")
                return res.model
            seed_everything(derive_seed(self.seed, "backdoored-model"))
            if self.cfg.adaptive_alpha > 0:
                from .adaptive import train_adaptive

                return train_adaptive(self.train, self.build_model(), res.train_graphs,
                                      res.train_labels, res.poisoned_idx, self.cfg.adaptive_alpha)
            return self.train(self.build_model(), res.train_graphs, res.train_labels)
        return self._cached("backdoored_model", "train backdoored model", fit)

    @property
    def triggered_eval(self):
        g, _ = self.data["eval"]
        return self._cached("triggered_eval", "trigger eval set", lambda: self.attack_result
                            .apply_trigger(g, derive_seed(self.seed, "eval-trigger")))

    # --- defense --------------------------------------------------------------------------
    def defense_context(self, defense) -> DefenseContext:
        return defense_context(self, defense)

    def run_defense(self, name: str, params: Optional[Dict[str, Any]] = None,
                    preset: Optional[str] = None) -> DefenseResult:
        plugin = make_plugin("defense", name, params or {}, preset)
        if plugin.task != "graph":
            raise UserError(f"defense {name!r} is for {plugin.task} classification")
        ctx = self.defense_context(plugin)
        seed_everything(derive_seed(self.seed, "defense", name))
        return self._timed("defense", lambda: plugin.run(ctx))

    # --- evaluation -----------------------------------------------------------------------
    def evaluate(self, model, result: Optional[DefenseResult] = None,
                 with_trigger: bool = True) -> Dict[str, float]:
        """ACC on the clean evaluation graphs and the ASR variants on their triggered copies."""
        eval_g, eval_y = self.data["eval"]

        def run_predict(graphs):
            if result is not None and result.transform is not None:
                graphs = result.transform(graphs)
            if result is not None and result.predict is not None:
                return torch.as_tensor(result.predict(model, graphs)).cpu()
            return predict(model, graphs, device=self.device)

        clean_out = run_predict(eval_g)
        out = {"acc": metrics.accuracy(clean_out, eval_y),
               "bacc": metrics.balanced_accuracy(clean_out, eval_y)}
        if with_trigger and self.cfg.attack:
            target = self.cfg.target_label
            trig_pred = run_predict(self.triggered_eval)
            if "clean_eval_pred" not in self._cache:
                self._cache["clean_eval_pred"] = predict(self.clean_model, eval_g,
                                                         device=self.device)
            clean_pred = self._cache["clean_eval_pred"]
            out["asr"] = metrics.asr(trig_pred, eval_y, target)
            out["asr_all"] = metrics.asr_all(trig_pred, target)
            out["asr_conditional"] = metrics.asr_conditional(trig_pred, eval_y, target,
                                                             clean_pred)
        return out

    def record(self, defense: str, params: Optional[Dict[str, Any]] = None,
               preset: Optional[str] = None) -> Dict[str, Any]:
        """Full per-seed record for one defense (the ``runs`` entries of the JSON)."""
        # Build every model first so that each stage's time is counted under its own name.
        models = [self.clean_model]
        if self.cfg.attack:
            self.attack_result  # noqa: B018 - each stage computed (and timed) in pipeline order
            models.append(self.backdoored_model)
            self.triggered_eval  # noqa: B018
        clean = dict(self._cached("clean_eval", "evaluate", lambda: self.evaluate(models[0])))
        rec: Dict[str, Any] = {"seed": self.seed, "clean": clean}
        if self.cfg.attack:
            res = self.attack_result
            rec["backdoored"] = dict(self._cached("backdoored_eval", "evaluate",
                                                  lambda: self.evaluate(models[1])))
            rec["attack"] = {"poisoned": int(len(res.poisoned_idx)),
                             "trigger_size": self.data["trigger_size"],
                             "trigger": res.trigger}
        dres = self.run_defense(defense, params, preset)
        rec["defended"] = self._timed("evaluate", lambda: self.evaluate(dres.model, dres))
        if dres.flagged is not None and self.cfg.attack:
            rec["detection"] = metrics.detection_scores(dres.flagged,
                                                        self.attack_result.poisoned_idx.tolist())
        if dres.info:
            rec["defense_info"] = _jsonable(dres.info)
        rec["timings"] = {k: round(v, 4) for k, v in self.timings.items()}
        d = self.data
        rec["sizes"] = {"train": len(d["train"][0]), "holding": len(d["holding"][0]),
                        "eval": len(d["eval"][0])}
        return rec


def defense_context(run: SeedRun, defense, check: bool = False) -> DefenseContext:
    """What ``defense`` may see under its threat model, and nothing more. With ``check``,
    nothing that needs a trained model or the attack: the context for ``defense.check``."""
    tm = ThreatModel(defense.threat_model)
    d = run.data
    ctx = DefenseContext(threat_model=tm, featurizer=d["featurizer"],
                         num_classes=d["num_classes"], seed=derive_seed(run.seed, "defense"),
                         device=run.device, build_model=run.build_model, train=run.train,
                         get_explainer=get_explainer, progress=run.progress)
    if tm is ThreatModel.POST_TRAINING:
        ctx.clean_graphs, ctx.clean_labels = d["holding"]
        if len(ctx.clean_graphs) == 0:
            raise ParameterError(
                f"defense {defense.name!r} needs clean holding data but the holding set is empty;"
                f" raise --holding-ratio (now {run.cfg.holding_ratio})")
        if not check:
            ctx.model = run.backdoored_model if run.cfg.attack else run.clean_model
    elif not check:
        if run.cfg.attack:
            res = run.attack_result
            ctx.train_graphs, ctx.train_labels = res.train_graphs, res.train_labels
        else:
            ctx.train_graphs, ctx.train_labels = d["train"]
    if getattr(defense, "wants_oracle_trigger", False) and run.cfg.attack and not check:
        ctx.oracle_trigger = run.attack_result.apply_trigger
    return ctx


def get_explainer(name: str, **params: Any):
    """Instantiate explainer plugin ``name`` (for attacks and defenses that swap them)."""
    return make_plugin("explainer", name, params, None)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, (int, float, str, bool)) or obj is None:
        return obj
    return str(obj)


def versions() -> Dict[str, str]:
    """Versions and machine facts recorded with every result."""
    import numpy

    from ._dgl import STATE
    from .machine import numerics

    return {
        "dglcleaner": __version__, "torch": torch.__version__, "dgl": dgl.__version__,
        "numpy": numpy.__version__, "python": platform.python_version(),
        "platform": platform.platform(), "machine": platform.machine(),
        "cpu_threads": str(torch.get_num_threads()),
        "dgl_loader_stepped_in": str(STATE.get("stepped_in")),
        **numerics(),
    }


METRIC_GROUPS = ("clean", "backdoored", "defended", "detection")


def summarize(runs: List[Dict[str, Any]]) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """Mean ± std over seeds of every metric in every group (percent)."""
    out: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for group in METRIC_GROUPS:
        keys = sorted({k for r in runs for k in r.get(group, {})})
        if keys:
            out[group] = {k: metrics.mean_std([r[group].get(k) for r in runs if group in r])
                          for k in keys}
    return out


def run_defend(cfg: DefendConfig, progress: Optional[Callable[[int, str], None]] = None,
               save_model: Optional[str] = None) -> Dict[str, Any]:
    """Run ``cfg`` for ``cfg.seeds`` seeds (``seed``, ``seed+1``, ...); return the JSON
    document (schema ``dglcleaner.defend/1``). ``save_model``: write the first seed's
    backdoored model (the clean one without an attack) there, in the safe model format."""
    cfg.validate()
    # Resolve plugin names first: a typo fails in milliseconds, before any training.
    if cfg.attack:
        make_plugin("attack", cfg.attack, cfg.attack_params, cfg.attack_preset)
    defense = make_plugin("defense", cfg.defense, cfg.defense_params, cfg.defense_preset)
    runs = []
    start = time.perf_counter()
    for i in range(cfg.seeds):
        seed = cfg.seed + i
        cb = (lambda msg, _i=i: progress(_i, msg)) if progress else None
        run = SeedRun(cfg, seed, cb)
        # the plugins' own checks on this seed's data: bad settings fail before any training
        run.check(defense)
        runs.append(run.record(cfg.defense, cfg.defense_params, cfg.defense_preset))
        if save_model and i == 0:
            from .model_io import save_model as save

            model = run.backdoored_model if cfg.attack else run.clean_model
            save(save_model, model, run.data["featurizer"],
                 {"dataset": cfg.dataset, "attack": cfg.attack, "seed": seed,
                  "target_label": cfg.target_label if cfg.attack else None})
    return defend_document(cfg, runs, time.perf_counter() - start)


def defend_document(cfg: DefendConfig, runs: List[Dict[str, Any]],
                    elapsed_s: float) -> Dict[str, Any]:
    """The JSON document (schema ``dglcleaner.defend/1``) for ``runs`` of ``cfg``."""
    return {
        "schema": SCHEMA,
        "summary": summarize(runs),
        "runs": runs,
        "config": cfg.to_dict(),
        "device": str(resolve_device(cfg.device)),
        "elapsed_s": round(elapsed_s, 3),
        "versions": versions(),
    }
