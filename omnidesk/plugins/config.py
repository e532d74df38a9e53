"""Typed, validated per-account configuration for plugins, with secrets that never print."""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

from .errors import ConfigInvalid


class Secret:
    """A credential. Its repr and str are masked so it cannot leak into logs or API output."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclasses.dataclass(frozen=True)
class ConfigSchema:
    """Base of every plugin's config. Subclass as a frozen dataclass; use `help=` metadata."""


def setting(default: Any = dataclasses.MISSING, *, help: str = "") -> Any:  # noqa: A002
    """A config field with a help text shown in the API and docs."""
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata={"help": help})
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple for list defaults")
    return dataclasses.field(default=default, metadata={"help": help})


def secret_fields(schema: type[ConfigSchema]) -> list[str]:
    hints = typing.get_type_hints(schema)
    return [f.name for f in dataclasses.fields(schema) if _strip_optional(hints[f.name])[0] is Secret]


def describe(schema: type[ConfigSchema]) -> list[dict[str, Any]]:
    """The schema as data, for the API and the docs."""
    hints = typing.get_type_hints(schema)
    out = []
    for f in dataclasses.fields(schema):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        out.append(
            {
                "name": f.name,
                "type": _type_name(hints[f.name]),
                "required": required,
                "secret": _strip_optional(hints[f.name])[0] is Secret,
                "default": None if required or _strip_optional(hints[f.name])[0] is Secret else _jsonable(f.default),
                "help": f.metadata.get("help", ""),
            }
        )
    return out


def load_config(
    schema: type[ConfigSchema],
    data: Mapping[str, Any],
    secrets: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ConfigSchema:
    """Validate `data` (plain settings) and `secrets` (decrypted values) against `schema`.

    A secret may also be given in `data` as {"env": "VARIABLE"}: it is read from the environment.
    """
    secrets = secrets or {}
    environ = os.environ if environ is None else environ
    hints = typing.get_type_hints(schema)
    names = {f.name for f in dataclasses.fields(schema)}
    problems: list[str] = []
    unknown = sorted((set(data) | set(secrets)) - names)
    if unknown:
        problems.append(f"unknown setting(s): {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(schema):
        base, optional = _strip_optional(hints[f.name])
        if base is Secret:
            raw = secrets.get(f.name)
            ref = data.get(f.name)
            if raw is None and isinstance(ref, Mapping) and set(ref) == {"env"}:
                raw = environ.get(str(ref["env"]))
                if raw is None:
                    problems.append(f"{f.name}: environment variable {ref['env']} is not set")
                    continue
            elif raw is None and ref is not None:
                problems.append(f"{f.name}: a secret must be stored encrypted or given as {{\"env\": \"VARIABLE\"}}")
                continue
            if raw is None:
                if optional or f.default is not dataclasses.MISSING:
                    continue
                problems.append(f"{f.name}: required secret is missing")
                continue
            values[f.name] = Secret(str(raw))
            continue
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                problems.append(f"{f.name}: required setting is missing")
            continue
        value = data[f.name]
        if value is None and optional:
            values[f.name] = None
            continue
        try:
            values[f.name] = _coerce(base, value)
        except (TypeError, ValueError) as exc:
            problems.append(f"{f.name}: {exc}")
    if problems:
        raise ConfigInvalid(f"{schema.__name__}: " + "; ".join(problems))
    return schema(**values)


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _coerce(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(map(repr, allowed))}, got {value!r}")
        return value
    if origin is tuple:
        (item,) = typing.get_args(tp)[:1]
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"must be a list, got {type(value).__name__}")
        return tuple(_coerce(item, v) for v in value)
    if tp is bool:
        if not isinstance(value, bool):
            raise TypeError(f"must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"must be a whole number, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise TypeError(f"must be text, got {type(value).__name__}")
        return value
    raise TypeError(f"unsupported setting type {tp!r}")


def _type_name(tp: Any) -> str:
    base, optional = _strip_optional(tp)
    origin = typing.get_origin(base)
    if origin is Literal:
        name = "one of " + ", ".join(map(str, typing.get_args(base)))
    elif origin is tuple:
        name = f"list of {_type_name(typing.get_args(base)[0])}"
    else:
        name = {str: "text", int: "integer", float: "number", bool: "boolean", Secret: "secret"}.get(base, str(base))
    return name + (" (optional)" if optional else "")


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
