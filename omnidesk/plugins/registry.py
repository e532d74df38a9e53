"""Discovery of channel plugins through the `omnidesk.channels` entry-point group.

Built-in plugins register in our own pyproject.toml exactly like a third party's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points

from .config import ConfigSchema
from .contract import Capabilities, ChannelPlugin

log = logging.getLogger(__name__)

GROUP = "omnidesk.channels"


class UnknownPlugin(LookupError):
    pass


@dataclass(frozen=True)
class Registry:
    plugins: dict[str, type[ChannelPlugin]]
    #: entry points that failed to load, with the reason (shown in the API, never fatal)
    errors: dict[str, str]


def _check(name: str, cls: object) -> str | None:
    if not (isinstance(cls, type) and issubclass(cls, ChannelPlugin)):
        return "does not subclass omnidesk.plugins.contract.ChannelPlugin"
    if getattr(cls, "kind", None) != name:
        return f"declares kind {getattr(cls, 'kind', None)!r} but is registered as {name!r}"
    if not isinstance(getattr(cls, "capabilities", None), Capabilities):
        return "has no Capabilities"
    schema = getattr(cls, "config_schema", None)
    if not (isinstance(schema, type) and issubclass(schema, ConfigSchema)):
        return "has no config_schema (a ConfigSchema dataclass)"
    if not getattr(cls, "event_types", None):
        return "declares no event_types"
    return None


@lru_cache(maxsize=1)
def registry() -> Registry:
    plugins: dict[str, type[ChannelPlugin]] = {}
    errors: dict[str, str] = {}
    for ep in entry_points(group=GROUP):
        if ep.name in plugins:
            errors[ep.name] = f"registered twice ({ep.value}); the first one is used"
            continue
        try:
            cls = ep.load()
        except Exception as exc:  # a broken third-party plugin must not take the desk down
            errors[ep.name] = f"cannot be imported from {ep.value}: {exc}"
            log.error("channel plugin %s cannot be imported: %s", ep.name, exc)
            continue
        problem = _check(ep.name, cls)
        if problem:
            errors[ep.name] = f"{ep.value} {problem}"
            log.error("channel plugin %s is invalid: %s", ep.name, problem)
            continue
        plugins[ep.name] = cls
    return Registry(plugins=dict(sorted(plugins.items())), errors=errors)


def plugin_class(kind: str) -> type[ChannelPlugin]:
    try:
        return registry().plugins[kind]
    except KeyError:
        raise UnknownPlugin(
            f"no channel plugin {kind!r} is installed (installed: {', '.join(registry().plugins) or 'none'})"
        ) from None


def all_plugins() -> dict[str, type[ChannelPlugin]]:
    return registry().plugins
