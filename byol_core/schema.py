"""Validated dataclasses: fields that carry their help and allowed range, checked at construction.

Every field made with :func:`setting` carries ``help``, ``min``, ``max``, ``choices`` and ``op`` in its
``dataclasses.field`` metadata. The same schema drives validation (:class:`Validated`), plain data in
and out (:func:`from_dict`), ``--set`` parsing in the CLI and the controls the dashboard generates
(:func:`field_schema`), so a range is written once. The experiment's own config is in
:mod:`byol_core.config`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import types
import typing
from dataclasses import field
from typing import Any

from .text import clipped


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


def setting(default: Any, help: str, *, min: float | None = None, max: float | None = None,
            choices: tuple | None = None, op: str | None = None) -> Any:
    """A dataclass field with its help text and allowed values (``op``: the augmentation it belongs to)."""
    meta = {"help": help, "min": min, "max": max, "choices": choices, "op": op}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _check_field(owner: str, f: dataclasses.Field, value: Any) -> None:
    name = f"{owner}.{f.name}"
    meta = f.metadata
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{name} = {clipped(value)} is not allowed; choose one of {list(choices)}.")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    lo, hi = meta.get("min"), meta.get("max")
    if isinstance(value, float) and math.isnan(value):
        raise ConfigError(f"{name} = nan is not a number; allowed range is [{lo}, {hi}].")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        lo_s, hi_s = ("-inf" if lo is None else lo), ("inf" if hi is None else hi)
        raise ConfigError(f"{name} = {clipped(value)} is out of range; allowed range is [{lo_s}, {hi_s}].")


@functools.cache  # resolving annotations compiles each string anew: once per class, not per instance
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


class Validated:
    """Mixin: range-check every field after construction, then run ``_check``."""

    def __post_init__(self) -> None:
        hints = _type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            value = _coerce(f"{type(self).__name__}.{f.name}", hints[f.name], value)
            object.__setattr__(self, f.name, value)
            _check_field(type(self).__name__, f, value)
        self._check()

    def _check(self) -> None:  # cross-field rules, overridden where needed
        pass


def _coerce(name: str, hint: Any, value: Any) -> Any:
    """Turn JSON/CLI values into the annotated type, or raise a ConfigError naming the field."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _coerce(name, non_none[0], value)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if isinstance(value, dict):
            return from_dict(hint, value, prefix=name)
        raise ConfigError(f"{name} must be an object with the fields of {hint.__name__}, got {clipped(value)}.")
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{name} must be true or false, got {clipped(value)}.")
    if hint is int:
        whole = int(value) if isinstance(value, float) and value.is_integer() else value
        if isinstance(value, str):
            with contextlib.suppress(ValueError):  # too many digits is a ValueError too
                whole = int(value)
        if isinstance(whole, int) and not isinstance(whole, bool):
            return whole
        raise ConfigError(f"{name} must be a whole number, got {clipped(value)}.")
    if hint is float:
        if not isinstance(value, bool):
            with contextlib.suppress(ValueError, TypeError, OverflowError):  # e.g. None, "fast", 10**400
                return float(value)
        raise ConfigError(f"{name} must be a number, got {clipped(value)}.")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{name} must be text, got {clipped(value)}.")
    return value


def from_dict(cls: type, data: dict[str, Any], prefix: str | None = None) -> Any:
    """Build ``cls`` from plain data, rejecting unknown keys by name.

    A field missing from ``data`` takes its default, except where the class names a ``LEGACY_DEFAULTS``
    value: what runs saved before the field existed did (so an old run's config reads as what it ran).
    """
    prefix = prefix or cls.__name__
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix} must be an object, got {clipped(data)}.")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{prefix} has no field {unknown[0]!r}; known fields: {sorted(names)}.")
    return cls(**{**getattr(cls, "LEGACY_DEFAULTS", {}), **data})


def missing_fields(cls: type, data: Any, prefix: str = "") -> list[str]:
    """Dotted names of the fields of ``cls`` that ``data`` does not set (they take their defaults)."""
    out: list[str] = []
    hints = _type_hints(cls)
    for f in dataclasses.fields(cls):
        name = f"{prefix}{f.name}"
        if not isinstance(data, dict) or f.name not in data:
            out.append(name)
        elif dataclasses.is_dataclass(hints[f.name]):
            out.extend(missing_fields(hints[f.name], data[f.name], name + "."))
    return out


def field_schema(cls: type) -> list[dict[str, Any]]:
    """Name, type, default and range of each field: what a UI needs to draw a control."""
    hints = _type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        rows.append({"name": f.name, "type": hints[f.name], "default": default, **f.metadata})
    return rows
