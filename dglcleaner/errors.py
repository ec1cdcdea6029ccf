"""Exceptions that the CLI turns into one line of text and exit code 2.

Every error a user can cause by bad input derives from :class:`UserError`. Its message must
say what was wrong and what is valid (DGL-style prescriptive errors).
"""
from __future__ import annotations

import difflib
from typing import Iterable


class UserError(Exception):
    """Bad input from a user: printed as one line by the CLI, exit code 2."""


class ParameterError(UserError, ValueError):
    """A plugin parameter has a wrong type or lies outside its valid range."""


class UnknownNameError(UserError, KeyError):
    """A plugin, dataset or model name that does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(UserError):
    """A missing or malformed data folder or file."""


class PluginLoadError(UserError):
    """A plugin failed to import or does not satisfy its protocol."""


class ModelFileError(UserError):
    """A model file that cannot be loaded safely or does not fit the data."""


class DGLImportError(ImportError):
    """DGL cannot be imported; the message says how to fix the environment."""


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> UnknownNameError:
    """Build an :class:`UnknownNameError` with the valid names and a "did you mean" hint."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name.lower(), [v.lower() for v in valid], n=1, cutoff=0.6)
    hint = ""
    if close:
        match = next(v for v in valid if v.lower() == close[0])
        hint = f" Did you mean {match!r}?"
    listed = ", ".join(valid) if valid else "(none installed)"
    return UnknownNameError(f"unknown {kind} {name!r}.{hint} Valid {kind}s: {listed}.")
