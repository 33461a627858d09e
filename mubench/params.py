"""Typed hyper-parameters: frozen dataclasses with constraints as data next to each field.

    @dataclass(frozen=True)
    class SalUnParams:
        lr: float = param(0.013, Interval(0, None, closed="neither"), "learning rate")

`check_params` validates every field at once (before any job starts) and `apply_overrides`
turns TOML values or `--set method.field=value` strings into a new params object, converted
by the field's annotation. Errors are one sentence naming the method, the field, what is
accepted and the value received.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class Interval:
    low: float | None = None
    high: float | None = None
    closed: str = "both"  # both | left | right | neither

    def __contains__(self, v) -> bool:
        lo_ok = self.low is None or (v >= self.low if self.closed in ("both", "left") else v > self.low)
        hi_ok = self.high is None or (v <= self.high if self.closed in ("both", "right") else v < self.high)
        return lo_ok and hi_ok

    def __str__(self) -> str:
        left = "[" if self.closed in ("both", "left") and self.low is not None else "("
        right = "]" if self.closed in ("both", "right") and self.high is not None else ")"
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        return f"in {left}{lo}, {hi}{right}"


@dataclass(frozen=True)
class Options:
    choices: tuple

    def __contains__(self, v) -> bool:
        return v in self.choices

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(c) for c in self.choices)


@dataclass(frozen=True)
class Check:
    """A constraint no interval states (an even count): a predicate and the words for it."""

    accepts: Callable[[Any], bool]
    text: str  # what is accepted, completing "must be an integer ..."

    def __contains__(self, v) -> bool:
        return bool(self.accepts(v))

    def __str__(self) -> str:
        return self.text


def param(default=dataclasses.MISSING, check=None, help: str = "", factory=None):  # noqa: A002 - argparse's name
    """A dataclass field with a default (or a `factory` for mutable ones), a constraint
    (Interval/Options/Check/None; a tuple field's constraint holds for each item) and a help line."""
    metadata = {"check": check, "help": help}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def accepts(check, value) -> bool:
    """Whether `value` (each item of a tuple value) satisfies `check` (None accepts everything)."""
    if check is None or value is None:
        return True
    try:
        return all(v in check for v in (value if isinstance(value, tuple) else (value,)))
    except TypeError:  # an item of the wrong kind (a string against an interval)
        return False


def _field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _convert(value: Any, tp: Any) -> Any:
    """Convert a TOML value or CLI string to the annotated type; raise ValueError if impossible."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        for a in args:
            try:
                return _convert(value, a)
            except (ValueError, TypeError):
                continue
        raise ValueError(f"expected {' or '.join(_type_name(a) for a in args)}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ValueError("expected true or false")
    if tp is int:
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            return int(value.strip())
        raise ValueError("expected an integer")
    if tp is float:
        if isinstance(value, bool):
            raise ValueError("expected a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError("expected a string")
        return value
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ValueError("expected a table")
        return value
    if origin is tuple:
        if not isinstance(value, (str, list, tuple)):
            raise ValueError("expected a list")
        items = value.split(",") if isinstance(value, str) else list(value)
        (inner, *_rest) = typing.get_args(tp) or (str,)
        return tuple(_convert(v.strip() if isinstance(v, str) else v, inner) for v in items if v != "")
    return value


def fields_help(cls) -> list[tuple[str, str, Any, str]]:
    """(name, type, default, help + constraint) per field, for `list methods`."""
    types = _field_types(cls)
    rows = []
    for f in dataclasses.fields(cls):
        check = f.metadata.get("check")
        text = f.metadata.get("help", "")
        if check is not None:
            text = f"{text} ({check})" if text else str(check)
        rows.append((f.name, _type_name(types[f.name]), f.default, text))
    return rows


def _expected(tp, check) -> str:
    """'a float in (0, 1]', 'one of 'hard', 'grad'', 'an integer or None in [1, inf)'."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        kind = " or ".join(_ARTICLE.get(a, _type_name(a)) for a in inner) + " or None"
    elif origin is tuple:
        inner = (typing.get_args(tp) or (str,))[0]
        kind = f"a list of {_PLURAL.get(inner, _type_name(inner))}"
        return f"{kind}, each {check}" if check is not None else kind
    else:
        kind = _ARTICLE.get(tp, _type_name(tp))
    if isinstance(check, Options):
        return str(check)
    return f"{kind} {check}" if check is not None else kind


_ARTICLE = {float: "a number", int: "an integer", bool: "true or false", str: "a string", dict: "a table"}
_PLURAL = {float: "numbers", int: "integers", bool: "true/false values", str: "strings"}


def _bad(owner: str, name: str, tp, check, value) -> ConfigError:
    return ConfigError(f"{owner}: {name!r} must be {_expected(tp, check)}; got {value!r}")


def check_params(params, owner: str | Callable[[str], str]) -> None:
    """Validate every field of a params or config object against its type and constraint.
    owner: where the values came from, or a function of the field name giving it (a flag per field)."""
    types = _field_types(type(params))
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        check = f.metadata.get("check")
        where = owner(f.name) if callable(owner) else owner
        try:
            converted = _convert(value, types[f.name])
        except (ValueError, TypeError):
            raise _bad(where, f.name, types[f.name], check, value) from None
        if not accepts(check, converted):
            raise _bad(where, f.name, types[f.name], check, value)


def unknown_field(owner: str, key: str, valid, what: str = "hyper-parameter") -> ConfigError:
    """'{owner}: unknown {what} 'lrr'; did you mean 'lr'? valid: …' (the one wording of a typo)."""
    close = difflib.get_close_matches(key, list(valid), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return ConfigError(f"{owner}: unknown {what} {key!r}; {hint}valid: {', '.join(valid)}")


def apply_overrides(params, overrides: dict[str, Any], owner: str, what: str = "hyper-parameter"):
    """A copy of `params` with `overrides` converted by type and validated.

    owner names where the values came from (e.g. "method 'salun'", "x.toml [execution]"); an
    unknown field (a `what`: hyper-parameter, key, field) or a value of the wrong type is a
    ConfigError naming the owner, the field and what is accepted.
    """
    types = _field_types(type(params))
    valid = [f.name for f in dataclasses.fields(params)]
    checks = {f.name: f.metadata.get("check") for f in dataclasses.fields(params)}
    changes = {}
    for key, raw in overrides.items():
        if key not in types:
            raise unknown_field(owner, key, valid, what)
        try:
            changes[key] = _convert(raw, types[key])
        except (ValueError, TypeError):
            raise _bad(owner, key, types[key], checks[key], raw) from None
        if not accepts(checks[key], changes[key]):
            raise _bad(owner, key, types[key], checks[key], raw)  # quote what the user typed
    new = dataclasses.replace(params, **changes)
    check_params(new, owner)
    return new


def non_default(params) -> dict[str, Any]:
    """The fields that differ from the class defaults (for display names like salun[lr=0.02])."""
    out = {}
    for f in dataclasses.fields(params):
        if f.default is not dataclasses.MISSING and getattr(params, f.name) != f.default:
            out[f.name] = getattr(params, f.name)
    return out


def keyed_params(params) -> dict:
    """The fields of `params` that a job's key holds: all of them, except those its class lists in
    `UNKEYED_AT_DEFAULT` while they hold their default. A hyper-parameter added with a default that
    keeps the earlier behaviour then re-keys no job, so cached records stay valid until a user sets
    it."""
    values, changed = dataclasses.asdict(params), non_default(params)
    for name in getattr(type(params), "UNKEYED_AT_DEFAULT", ()):
        if name not in changed:
            del values[name]
    return values
