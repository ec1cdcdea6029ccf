"""A defense context that refuses access to what the defense's threat model excludes.

The runner already hands a defense ``None`` for everything outside its threat model
(:func:`dglcleaner.runner.defense_context`). The kit goes one step further: it wraps the context
so that even *reading* an excluded field (``ctx.train_graphs`` in a post-training defense, say)
raises :class:`ThreatModelViolation`. A defense that only works because it peeks at, e.g., the
poisoned training set then fails loudly instead of silently degrading to ``None`` checks.
"""
from __future__ import annotations

import dataclasses
from typing import Any, FrozenSet

from ..api import DefenseContext, ThreatModel

#: Fields that depend on the threat model (the rest are handed to every defense).
_POST_TRAINING_FIELDS = frozenset({"model", "clean_graphs", "clean_labels"})
_TRAINING_FIELDS = frozenset({"train_graphs", "train_labels"})
_ORACLE = frozenset({"oracle_trigger"})


class ThreatModelViolation(AssertionError):
    """A defense read a context field its threat model excludes."""


def excluded_fields(threat_model: Any, wants_oracle: bool = False) -> FrozenSet[str]:
    """The :class:`DefenseContext` fields a defense with ``threat_model`` must not read."""
    tm = ThreatModel(threat_model)
    out = _TRAINING_FIELDS if tm is ThreatModel.POST_TRAINING else _POST_TRAINING_FIELDS
    return out if wants_oracle else out | _ORACLE


class GuardedDefenseContext(DefenseContext):
    """A :class:`DefenseContext` whose excluded fields raise :class:`ThreatModelViolation`.

    Build one with :meth:`wrap`; it stays an instance of ``DefenseContext``.
    """

    _excluded: FrozenSet[str] = frozenset()
    _who: str = "defense"

    @classmethod
    def wrap(cls, ctx: DefenseContext, who: str, wants_oracle: bool = False
             ) -> "GuardedDefenseContext":
        values = {f.name: getattr(ctx, f.name) for f in dataclasses.fields(DefenseContext)}
        guarded = cls(**values)
        object.__setattr__(guarded, "_excluded", excluded_fields(ctx.threat_model, wants_oracle))
        object.__setattr__(guarded, "_who", who)
        return guarded

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_") and name in object.__getattribute__(self, "_excluded"):
            who = object.__getattribute__(self, "_who")
            tm = object.__getattribute__(self, "threat_model")
            raise ThreatModelViolation(
                f"{who} read ctx.{name}, which its threat model {ThreatModel(tm).value!r} "
                f"excludes; declare a threat model that grants it or do not use it")
        return object.__getattribute__(self, name)

    def __repr__(self) -> str:  # the dataclass repr would read every field
        return f"GuardedDefenseContext(threat_model={self.threat_model.value!r})"
