"""The public plugin API: protocols, metadata, contexts and results.

Three kinds of plugins exist, each found through its own entry-point group:

=================  ===========================  ==========================================
kind               entry-point group            protocol
=================  ===========================  ==========================================
attack             ``dglcleaner.attacks``       :class:`Attack`
defense            ``dglcleaner.defenses``      :class:`Defense`
explainer          ``dglcleaner.explainers``    :class:`Explainer`
=================  ===========================  ==========================================

A plugin is a class. Its metadata are class attributes (so ``list-plugins --details`` can show
them after importing only that plugin); its parameters are declared as
:class:`~dglcleaner.params.Param` objects and passed to ``__init__`` as keyword arguments.
:class:`PluginBase` implements the parameter handling; subclassing it is convenient but not
required: anything that satisfies the protocol works.

This module imports neither torch nor DGL, so the CLI and the registry stay fast.

Example
-------
A minimal third-party defense (see ``examples/`` for a complete package)::

    from dglcleaner.api import PluginBase, DefenseResult, ThreatModel
    from dglcleaner.params import Param

    class Noop(PluginBase):
        name = "noop"
        kind = "defense"
        task = "graph"
        summary = "Return the model unchanged."
        paper = "-"
        threat_model = ThreatModel.POST_TRAINING
        params = (Param("epochs", int, 0, low=0, help="unused"),)

        def run(self, ctx):
            return DefenseResult(model=ctx.model)
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    ClassVar,
    Dict,
    List,
    Mapping,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    runtime_checkable,
)

from .errors import ParameterError, PluginLoadError
from .params import Param, resolve_params

if TYPE_CHECKING:  # pragma: no cover - typing only
    import dgl
    import torch

#: Version of this plugin API. A plugin declares ``api_version``; a different major is refused.
API_VERSION = 1

KINDS = ("attack", "defense", "explainer")
ENTRY_POINT_GROUPS = {
    "attack": "dglcleaner.attacks",
    "defense": "dglcleaner.defenses",
    "explainer": "dglcleaner.explainers",
}


class ThreatModel(str, enum.Enum):
    """What a defense may see. The runner hands each defense exactly this, no more.

    ``POST_TRAINING``
        A trained, possibly backdoored model and a small clean holding set (GCleaner,
        fine-tuning). Works on ``defend --model FILE``.
    ``TRAINING_SET``
        The (possibly poisoned) training set; the defense trains its own model (ABL, ED, XGBD).
    ``TRAINING_CONTROL``
        Like ``TRAINING_SET`` and, in addition, control over test-time inputs (prune,
        randomized smoothing: the transform is applied to every evaluated graph).
    """

    POST_TRAINING = "post-training"
    TRAINING_SET = "training-set"
    TRAINING_CONTROL = "training-control"

    def __str__(self) -> str:
        return self.value


# ---------------------------------------------------------------------------------------------
# Contexts and results (graph classification)
# ---------------------------------------------------------------------------------------------
Graphs = List["dgl.DGLGraph"]
TrainFn = Callable[..., Any]


@dataclass
class AttackContext:
    """Everything a graph-classification backdoor attack may use.

    ``train_graphs`` carry ``ndata['feat']`` built by ``featurizer``; an attack that edits
    structure must recompute features with ``featurizer.refresh(g)`` (returns a new graph).
    ``clean_model`` is a model trained on the clean training set (a shadow/clean model that
    Exp-BA and Motif-BA need); ``build_model()`` makes a fresh untrained classifier of the
    run's architecture and ``train(model, graphs, labels, **overrides)`` trains it with the
    run's training settings. An attack that trains its own backdoored model (GTA) trains it
    with :meth:`train_poisoned`, which applies the run's adaptive attack (``adaptive_alpha``,
    the paper's Eq. 16) and should report it in :attr:`AttackResult.adaptive_alpha`.
    """

    train_graphs: Graphs
    train_labels: "torch.Tensor"
    num_classes: int
    featurizer: Any
    target_label: int
    injection_ratio: float
    trigger_size: int
    seed: int
    device: "torch.device"
    build_model: Callable[[], Any]
    train: TrainFn
    clean_model: Optional[Any] = None
    get_explainer: Optional[Callable[..., Any]] = None
    progress: Optional[Callable[[str], None]] = None
    adaptive_alpha: float = 0.0

    def train_poisoned(self, model: Any, graphs: Graphs, labels: "torch.Tensor",
                       poisoned_idx: Any, **overrides: Any) -> Any:
        """``train(model, graphs, labels, **overrides)`` as the run's attacker trains on a
        poisoned set: with ``adaptive_alpha > 0`` the loss is cross-entropy plus alpha times
        the mean pairwise cosine of the embeddings of the graphs at ``poisoned_idx`` (Eq. 16)."""
        if self.adaptive_alpha <= 0:
            return self.train(model, graphs, labels, **overrides)
        from .adaptive import train_adaptive

        def train_fn(m, g, y, **kw):
            return self.train(m, g, y, **overrides, **kw)

        return train_adaptive(train_fn, model, graphs, labels, poisoned_idx, self.adaptive_alpha)


@dataclass
class AttackResult:
    """What an attack returns.

    Attributes
    ----------
    train_graphs, train_labels:
        The poisoned training set (same length and order as the input; poisoned graphs are
        replaced by triggered copies with the target label).
    poisoned_idx:
        Indices (into the training set) of the poisoned graphs; for the evaluator only.
    apply_trigger:
        ``apply_trigger(graphs, seed) -> graphs``: triggered copies of arbitrary graphs (the
        evaluation set, or a defender-side oracle in the ``official`` GCleaner preset). Never
        mutates its input.
    trigger:
        JSON-serialisable description (kind, size, edges, ...).
    model:
        A backdoored model the attack trained itself (GTA's bi-level loop), or ``None`` to let
        the runner train one on the poisoned training set.
    adaptive_alpha:
        The adaptive-attack alpha the attack applied when it trained ``model`` itself (through
        :meth:`AttackContext.train_poisoned`). The runner refuses a run whose alpha an attack
        with its own model did not apply, instead of storing unadapted numbers.
    """

    train_graphs: Graphs
    train_labels: "torch.Tensor"
    poisoned_idx: "torch.Tensor"
    apply_trigger: Callable[[Graphs, int], Graphs]
    trigger: Dict[str, Any] = field(default_factory=dict)
    model: Optional[Any] = None
    adaptive_alpha: float = 0.0


@dataclass
class DefenseContext:
    """What a defense is handed; fields outside its threat model are ``None``.

    ``POST_TRAINING``: ``model`` (the suspicious model, never modified in place by the runner's
    contract: copy it before changing it), ``clean_graphs``/``clean_labels`` (the holding set).
    ``TRAINING_SET`` / ``TRAINING_CONTROL``: ``train_graphs``/``train_labels`` (poisoned).
    Always: ``featurizer``, ``num_classes``, ``build_model``, ``train``, ``seed``, ``device``,
    ``get_explainer``.
    """

    threat_model: ThreatModel
    featurizer: Any
    num_classes: int
    seed: int
    device: "torch.device"
    build_model: Callable[[], Any]
    train: TrainFn
    model: Optional[Any] = None
    clean_graphs: Optional[Graphs] = None
    clean_labels: Optional["torch.Tensor"] = None
    train_graphs: Optional[Graphs] = None
    train_labels: Optional["torch.Tensor"] = None
    get_explainer: Optional[Callable[..., Any]] = None
    progress: Optional[Callable[[str], None]] = None
    #: Evaluator-only oracle (``official`` presets that use the true trigger); ``None`` unless a
    #: plugin's preset explicitly asks for it and the runner knows the attack.
    oracle_trigger: Optional[Callable[[Graphs, int], Graphs]] = None


@dataclass
class DefenseResult:
    """What a defense returns.

    ``model`` is the defended classifier. ``transform`` (optional) maps evaluation graphs
    before prediction (prune, subsampling); ``predict`` (optional) replaces plain
    ``argmax(model(g))`` prediction, e.g. a majority vote: ``predict(model, graphs) -> labels``.
    ``flagged`` holds the training indices a detector removed (evaluator computes precision and
    recall against the true poison set). ``info`` carries any extra numbers for the report.
    """

    model: Any
    transform: Optional[Callable[[Graphs], Graphs]] = None
    predict: Optional[Callable[[Any, Graphs], "torch.Tensor"]] = None
    flagged: Optional[Sequence[int]] = None
    info: Dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Node classification (label poisoning)
# ---------------------------------------------------------------------------------------------
@dataclass
class NodeAttackContext:
    """Label-poisoning attack input: one graph, the labeled nodes and a flip budget.

    ``labels`` are the clean labels of all nodes; the attacker may flip only ``labeled_idx``
    (train and validation nodes together) and at most ``budget`` of them.
    """

    graph: "dgl.DGLGraph"
    features: "torch.Tensor"
    labels: "torch.Tensor"
    labeled_idx: "torch.Tensor"
    num_classes: int
    budget: int
    seed: int
    device: "torch.device"
    progress: Optional[Callable[[str], None]] = None


@dataclass
class NodeAttackResult:
    """Poisoned labels (same shape as ``labels``) and the flipped node ids."""

    labels: "torch.Tensor"
    flipped_idx: "torch.Tensor"
    info: Dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Protocols
# ---------------------------------------------------------------------------------------------
@runtime_checkable
class PluginMeta(Protocol):
    """Metadata every plugin class carries."""

    name: str
    kind: str
    task: str
    summary: str
    paper: str
    params: Tuple[Param, ...]
    api_version: int


@runtime_checkable
class Attack(PluginMeta, Protocol):
    """A backdoor (``task='graph'``) or label-poisoning (``task='node'``) attack."""

    def run(self, ctx: Any) -> Any:
        """Graph task: ``AttackContext -> AttackResult``; node task: ``NodeAttackContext ->
        NodeAttackResult``.

        Optional (graph task): ``check(ctx)``, called by the runner before any model is
        trained, with the run's ``AttackContext`` minus ``clean_model`` (``None``). It should be
        cheap and raise :class:`~dglcleaner.errors.ParameterError` for settings ``run`` would
        refuse, so bad input fails in seconds instead of after the clean model's training."""


@runtime_checkable
class Defense(PluginMeta, Protocol):
    """A defense; ``threat_model`` says what the runner may hand it."""

    threat_model: ThreatModel

    def run(self, ctx: DefenseContext) -> DefenseResult:
        """Optional: ``check(ctx)``, called by ``defend`` before any model is trained, with the
        run's ``DefenseContext`` minus what does not exist yet: ``model``, ``train_graphs``,
        ``train_labels`` and ``oracle_trigger`` are ``None``; the holding set is there. Cheap;
        raises :class:`~dglcleaner.errors.ParameterError` for settings ``run`` would refuse."""


@runtime_checkable
class Explainer(PluginMeta, Protocol):
    """Per-node importance for a batch of graphs under one model."""

    def node_importance(
        self,
        model: Any,
        graph: "dgl.DGLGraph",
        feat: "torch.Tensor",
        target: Optional["torch.Tensor"] = None,
    ) -> "torch.Tensor":
        """Return a 1-D tensor with one non-negative score per node of the (batched) ``graph``;
        higher means more important for predicting ``target`` (one class per graph; default:
        the model's prediction). The model is put in eval mode and is not modified.

        Optional: ``heat_map(model, graph, feat, target)`` with the same output kept
        differentiable in the model's parameters (and ``differentiable = True``) lets GCleaner
        train on this explainer's heat maps (Table 6); without it the heat-map term is a
        constant."""


PROTOCOLS = {"attack": Attack, "defense": Defense, "explainer": Explainer}
_REQUIRED_ATTRS = ("name", "kind", "task", "summary", "paper", "params", "api_version")


def check_plugin_class(obj: Any, kind: str, display: str = "") -> None:
    """Raise :class:`PluginLoadError` unless ``obj`` (a class) satisfies ``kind``'s protocol."""
    who = display or getattr(obj, "__name__", repr(obj))
    missing = [a for a in _REQUIRED_ATTRS if not hasattr(obj, a)]
    method = "node_importance" if kind == "explainer" else "run"
    if not callable(getattr(obj, method, None)):
        missing.append(method + "()")
    if kind == "defense" and not hasattr(obj, "threat_model"):
        missing.append("threat_model")
    if missing:
        raise PluginLoadError(
            f"plugin {who} does not satisfy the {kind} protocol: missing {', '.join(missing)}"
        )
    if getattr(obj, "kind", kind) != kind:
        raise PluginLoadError(f"plugin {who} declares kind {obj.kind!r} but is registered as {kind}")
    if getattr(obj, "task", None) not in ("graph", "node"):
        raise PluginLoadError(f"plugin {who} declares task {obj.task!r}; valid tasks: graph, node")
    version = getattr(obj, "api_version", None)
    if not isinstance(version, int) or version != API_VERSION:
        raise PluginLoadError(
            f"plugin {who} targets plugin API version {version!r}, but this dglcleaner provides "
            f"version {API_VERSION}; upgrade the plugin or dglcleaner"
        )


class PluginBase:
    """Convenience base: stores validated parameters as attributes (scikit-learn style).

    ``presets`` maps a preset name (e.g. ``"official"``: the authors' released code) to
    parameter overrides; ``Plugin(preset="official", epochs=5)`` applies the preset first, then
    explicit keywords.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    task: ClassVar[str] = "graph"
    summary: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    params: ClassVar[Tuple[Param, ...]] = ()
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    api_version: ClassVar[int] = API_VERSION

    def __init__(self, preset: Optional[str] = None, **params: Any) -> None:
        given: Dict[str, Any] = {}
        if preset is not None:
            if preset not in self.presets:
                valid = ", ".join(sorted(self.presets)) or "(none)"
                raise ParameterError(
                    f"{self.name} has no preset {preset!r}; valid presets: {valid}"
                )
            given.update(self.presets[preset])
        given.update(params)
        self.preset = preset
        self._params = resolve_params(self.params, given, owner=self.name or type(self).__name__)
        for key, value in self._params.items():
            setattr(self, key, value)

    def get_params(self) -> Dict[str, Any]:
        """The validated parameter values (for the results store and reports)."""
        return dict(self._params)

    def check(self, ctx: Any) -> None:
        """Raise :class:`~dglcleaner.errors.ParameterError` for settings this plugin cannot
        honour on ``ctx``'s data; nothing by default. See :class:`Attack` and :class:`Defense`
        for what the context holds at check time."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"{type(self).__name__}({args})"
