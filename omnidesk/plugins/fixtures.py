"""Recorded payload fixtures and their goldens: finding, loading, serializing; the pure-step guards.

Django-free, shared by the conformance kit (`omnidesk.plugins.testing`) and the commands
(`parse_fixture`, `replay_fixture`, `startplugin`), so a golden and the command's output are
the same JSON and a command parses under the same network guard as the kit.

A fixture folder holds `<event_type>__<scenario>.<ext>` files (the raw body, byte for byte),
an optional `<name>.headers.json` sidecar (the headers it arrived with) and the golden
`<name>.expected.json` (what `parse()` makes of it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import json
import re
import socket
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from .config import ConfigSchema, Secret, _strip_optional
from .contract import ChannelPlugin, DeliveryUpdate, Ignored, InboundMessage, Invalid, MessageUpdate, StatusSignal
from .errors import PluginError

GOLDEN_SUFFIX = ".expected.json"
HEADERS_SUFFIX = ".headers.json"
#: prefixes of fixtures whose parse is expected to raise (the golden records the error)
ERROR_PREFIXES = ("malformed", "unsupported")
#: the value given to secrets when no real one is supplied (parse_fixture, the kit's defaults)
DUMMY_SECRET = "test-secret"


@dataclasses.dataclass(frozen=True)
class FixtureFile:
    """One recorded payload: `<prefix>__<scenario>.<ext>` plus its sidecar and golden."""

    path: Path

    @property
    def name(self) -> str:
        """The file name without its last extension: `message__basic`."""
        return self.path.name.rsplit(".", 1)[0] if "." in self.path.name else self.path.name

    @property
    def prefix(self) -> str:
        """The event type (or `malformed` / `unsupported`) the name starts with."""
        return self.name.split("__", 1)[0]

    @property
    def scenario(self) -> str:
        return self.name.split("__", 1)[1] if "__" in self.name else ""

    @property
    def expects_error(self) -> bool:
        return self.prefix in ERROR_PREFIXES

    @property
    def golden_path(self) -> Path:
        return self.path.with_name(self.name + GOLDEN_SUFFIX)

    @property
    def headers_path(self) -> Path:
        return self.path.with_name(self.name + HEADERS_SUFFIX)

    def body(self) -> bytes:
        return self.path.read_bytes()

    def headers(self) -> dict[str, str]:
        return load_headers(self.headers_path) if self.headers_path.exists() else {}

    def __str__(self) -> str:
        return self.path.name


def is_sidecar(path: Path) -> bool:
    return path.name.endswith((GOLDEN_SUFFIX, HEADERS_SUFFIX))


def discover(folder: Path) -> list[FixtureFile]:
    """Every payload fixture in `folder` (not recursive), sorted by name; sidecars are not fixtures."""
    if not folder.is_dir():
        return []
    return sorted(
        (
            FixtureFile(p)
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith((".", "_")) and not is_sidecar(p) and p.suffix != ".md"
        ),
        key=lambda f: f.path.name,
    )


def orphans(folder: Path) -> list[Path]:
    """Goldens and header sidecars whose payload fixture is gone."""
    names = {f.name for f in discover(folder)}
    if not folder.is_dir():
        return []
    found = []
    for p in sorted(folder.iterdir()):
        for suffix in (GOLDEN_SUFFIX, HEADERS_SUFFIX):
            if p.name.endswith(suffix) and p.name[: -len(suffix)] not in names:
                found.append(p)
    return found


def load_headers(path: Path) -> dict[str, str]:
    """A headers sidecar: a JSON object of header name → value."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ValueError(f"{path}: a headers file must be a JSON object of strings")
    return data


# --- serialization ---------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """Contract values as plain JSON: dataclasses → dicts, datetimes → ISO 8601, bytes → digest."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        return {"sha256": hashlib.sha256(raw).hexdigest(), "size": len(raw)}
    if isinstance(value, Secret):
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (frozenset, set)):
        return sorted((to_jsonable(v) for v in value), key=repr)
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"{type(value).__name__} is not part of the plugin contract and cannot be serialized")


def serialize_items(items: Sequence[object]) -> list[dict[str, Any]]:
    """parse() output as the goldens store it: each item a dict with its class name under "type"."""
    out = []
    for item in items:
        body = to_jsonable(item)
        if not isinstance(body, dict):
            raise TypeError(f"parse() returned {type(item).__name__}, which is not a contract dataclass")
        out.append({"type": type(item).__name__, **body})
    return out


def serialize_error(exc: PluginError) -> dict[str, str]:
    return {"error": type(exc).__name__, "message": exc.message}


def dumps(data: Any) -> str:
    """Stable, diff-friendly JSON (two-space indent, field order kept, trailing newline)."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


# --- configs for tests and local commands ------------------------------------------------


def sample_config(
    schema: type[ConfigSchema], overrides: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """(settings, secrets) that satisfy `schema`: its defaults, placeholders for what is required.

    Every secret gets DUMMY_SECRET; required settings get an empty value of their type.
    `overrides` (settings and secrets in one mapping) win.
    """
    overrides = dict(overrides or {})
    hints = typing.get_type_hints(schema)
    data: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    for f in dataclasses.fields(schema):
        base, _ = _strip_optional(hints[f.name])
        if base is Secret:
            value = overrides.pop(f.name, DUMMY_SECRET)
            if isinstance(value, Mapping):  # {"env": "VARIABLE"} stays a setting
                data[f.name] = value
            else:
                secrets[f.name] = str(value)
        elif f.name in overrides:
            data[f.name] = overrides.pop(f.name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            data[f.name] = _placeholder(base)
    data.update(overrides)  # unknown keys: load_config names them
    return data, secrets


def _placeholder(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return typing.get_args(tp)[0]
    if origin is tuple:
        return []
    return {str: "", int: 0, float: 0.0, bool: False}.get(tp, "")


# --- guards for tests and commands ----------------------------------------------------


class NetworkAttempt(AssertionError):
    """Code that must stay off the network tried to connect or resolve a name."""


@contextlib.contextmanager
def network_blocked() -> Iterator[list[str]]:
    """Refuse every connection and DNS lookup inside the block; yields the list of attempts."""
    attempts: list[str] = []

    def refuse(what: str, target_index: int) -> Callable[..., Any]:
        def _refuse(*args: Any, **kwargs: Any) -> Any:
            target = args[target_index] if len(args) > target_index else kwargs
            attempts.append(f"{what} {target!r}")
            raise NetworkAttempt(f"network access is blocked here ({what} {target!r})")

        return _refuse

    saved = (socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo)
    socket.socket.connect = refuse("connect", 1)  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse("connect", 1)  # type: ignore[method-assign]
    socket.getaddrinfo = refuse("getaddrinfo", 0)
    try:
        yield attempts
    finally:
        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = saved  # type: ignore[method-assign]


@contextlib.contextmanager
def registered(*classes: type[ChannelPlugin[Any]]) -> Iterator[None]:
    """Make plugin classes known to the registry inside the block, as if installed as entry points.

    For tests of plugins that are not (yet) installed under `omnidesk.channels`, e.g. a folder
    fresh from `startplugin`. The registry is restored afterwards.
    """
    from .registry import _check, registry

    plugins = registry().plugins
    saved = dict(plugins)
    try:
        for cls in classes:
            problem = _check(getattr(cls, "kind", ""), cls)
            if problem:
                raise ValueError(f"{cls.__qualname__} cannot be registered: it {problem}")
            plugins[cls.kind] = cls
        yield
    finally:
        plugins.clear()
        plugins.update(saved)


def run_pure(step: Callable[..., Any], *args: Any, db_blocker: Any = None, name: str = "plugin") -> Any:
    """`step(*args)` with the network (and, given pytest-django's blocker, the database) blocked.

    Raises AssertionError naming what the step reached for, even if it swallowed the refusal.
    """
    label = f"{name}.{getattr(step, '__name__', 'step')}()"
    with contextlib.ExitStack() as stack:
        if db_blocker is not None:
            stack.enter_context(db_blocker.block())
        attempts = stack.enter_context(network_blocked())
        try:
            result = step(*args)
        except NetworkAttempt:
            raise AssertionError(f"{label} went to the network ({attempts[0]}); it must be pure") from None
        except RuntimeError as exc:
            if "Database access not allowed" in str(exc):  # pytest-django's refusal
                raise AssertionError(f"{label} used the database; it must be pure") from None
            raise
    if attempts:
        raise AssertionError(f"{label} went to the network ({attempts[0]}) and hid the error; it must be pure")
    return result


_UNSAFE_HTML = re.compile(r"<\s*script|\son[a-z]+\s*=|javascript:", re.I)


def check_items(items: object, event_types: Mapping[str, str], where: str) -> None:
    """parse() output is a list of contract items with declared event types, aware times, safe html."""
    if not isinstance(items, list):
        raise AssertionError(f"{where}: parse() must return a list, got {type(items).__name__}")
    for item in items:
        if not isinstance(item, (InboundMessage, DeliveryUpdate, MessageUpdate, Ignored, Invalid, StatusSignal)):
            raise AssertionError(f"{where}: parse() returned {type(item).__name__}, which is not a contract item")
        if isinstance(item, InboundMessage):
            if item.event_type not in event_types:
                raise AssertionError(f"{where}: event_type {item.event_type!r} is not in the declared event_types")
            if _UNSAFE_HTML.search(item.html):
                raise AssertionError(f"{where}: html is not sanitized (use omnidesk.plugins.html.sanitize_html)")
        for field_name in ("sent_at", "at", "watermark"):
            when = getattr(item, field_name, None)
            if when is not None and when.tzinfo is None:
                raise AssertionError(f"{where}: {type(item).__name__}.{field_name} is a naive datetime; make it aware")


def flip_byte(body: bytes, position: int, mask: int) -> bytes:
    """`body` with one byte changed (bit rot, a proxy mangling a character)."""
    if not body:
        return bytes([mask])
    i = position % len(body)
    return body[:i] + bytes([body[i] ^ mask]) + body[i + 1 :]


def shortest_over(measure: Callable[[str], int], limit: int) -> int:
    """The fewest letters whose measure exceeds `limit` (binary search; measure grows with length)."""
    low, high = 0, max(limit, 1)
    while measure("x" * high) <= limit:
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if measure("x" * mid) <= limit else (low, mid)
    return high
