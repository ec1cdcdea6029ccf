"""Typed plugin parameters with defaults and valid ranges.

A plugin declares ``params: tuple[Param, ...]`` as a class attribute. The CLI builds its
``--param name=value`` handling, ``list-plugins --details`` and the docs from these
declarations, and :func:`resolve_params` validates user input against them (the idea of
scikit-learn's ``_parameter_constraints``, expressed as data).

Example
-------
>>> p = Param("ratio", float, 0.05, low=0.0, high=1.0, low_open=True, high_open=True,
...           help="fraction of training graphs to poison")
>>> p.validate("0.1")
0.1
>>> p.validate(1.5)
Traceback (most recent call last):
...
dglcleaner.errors.ParameterError: parameter 'ratio' must be in (0.0, 1.0); got 1.5
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence

from .errors import ParameterError, unknown_name

_TYPE_NAMES = {int: "int", float: "float", str: "str", bool: "bool"}


@dataclass(frozen=True)
class Param:
    """One typed parameter of a plugin.

    Parameters
    ----------
    name:
        Identifier (``snake_case``); used as ``--param name=value`` on the CLI.
    type:
        One of ``int``, ``float``, ``str``, ``bool``.
    default:
        Default value; ``None`` means "derived at run time" (the docstring says how).
    low, high:
        Inclusive bounds for numbers unless ``low_open``/``high_open``; ``None`` = unbounded.
    choices:
        For strings: the valid values.
    help:
        One line for ``list-plugins --details`` and the docs.
    """

    name: str
    type: type
    default: Any
    help: str = ""
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False
    choices: Optional[Sequence[str]] = None
    nullable: bool = False

    def range_text(self) -> str:
        """Human-readable valid range, e.g. ``(0, 1]`` or ``one of a, b``."""
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        if self.type is bool:
            return "true/false"
        if self.low is None and self.high is None:
            return "any " + _TYPE_NAMES.get(self.type, self.type.__name__)
        lo = "-inf" if self.low is None else repr(self.low)
        hi = "inf" if self.high is None else repr(self.high)
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        return f"{left}{lo}, {hi}{right}"

    def _fail(self, value: Any) -> ParameterError:
        return ParameterError(
            f"parameter {self.name!r} must be {self._expect_text()}; got {value!r}"
        )

    def _expect_text(self) -> str:
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        if self.type is bool:
            return "a boolean (true/false)"
        if self.low is None and self.high is None:
            return "a " + _TYPE_NAMES.get(self.type, self.type.__name__)
        return "in " + self.range_text()

    def validate(self, value: Any) -> Any:
        """Coerce ``value`` (possibly a CLI string) to the declared type and check its range."""
        if value is None:
            if self.nullable or self.default is None:
                return None
            raise self._fail(value)
        if isinstance(value, str) and value.lower() in ("none", "null") and (
            self.nullable or self.default is None
        ):
            return None
        try:
            if self.type is bool:
                if isinstance(value, str):
                    low = value.strip().lower()
                    if low in ("1", "true", "yes", "on"):
                        value = True
                    elif low in ("0", "false", "no", "off"):
                        value = False
                    else:
                        raise ValueError
                elif not isinstance(value, (bool, int)):
                    raise ValueError
                value = bool(value)
            elif self.type is int:
                if isinstance(value, bool):
                    raise ValueError
                if isinstance(value, float):
                    if not value.is_integer():
                        raise ValueError
                value = int(str(value).strip()) if isinstance(value, str) else int(value)
            elif self.type is float:
                if isinstance(value, bool):
                    raise ValueError
                value = float(value)
                if value != value:  # NaN
                    raise ValueError
            elif self.type is str:
                value = str(value)
        except (TypeError, ValueError):
            raise self._fail(value) from None
        if self.choices is not None:
            matches = [c for c in self.choices if str(c).lower() == str(value).lower()]
            if not matches:
                raise self._fail(value)
            value = matches[0]
        if self.type in (int, float):
            if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
                raise self._fail(value)
            if self.high is not None and (
                value > self.high or (self.high_open and value == self.high)
            ):
                raise self._fail(value)
        return value

    def to_dict(self) -> dict:
        """JSON-serialisable description (for ``--json`` listings and the docs)."""
        return {
            "name": self.name,
            "type": _TYPE_NAMES.get(self.type, self.type.__name__),
            "default": self.default,
            "range": self.range_text(),
            "help": self.help,
        }


def resolve_params(
    spec: Iterable[Param], given: Optional[Mapping[str, Any]] = None, *, owner: str = "plugin"
) -> dict:
    """Merge ``given`` over the defaults of ``spec`` and validate every value.

    Unknown keys raise :class:`ParameterError` naming the valid ones (never silently ignored,
    as ART's ``set_params`` does).
    """
    spec = list(spec)
    by_name = {p.name: p for p in spec}
    out = {p.name: p.default for p in spec}
    for key, value in (given or {}).items():
        norm = key.replace("-", "_")
        if norm not in by_name:
            err = unknown_name(f"parameter of {owner}", key, by_name)
            raise ParameterError(str(err))
        out[norm] = by_name[norm].validate(value)
    return out


def parse_assignments(items: Iterable[str]) -> dict:
    """Parse CLI ``name=value`` strings into a dict (values stay strings; Param coerces)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ParameterError(f"expected name=value, got {item!r}")
        key, value = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ParameterError(f"expected name=value, got {item!r}")
        out[key] = value.strip()
    return out
