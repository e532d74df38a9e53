"""pytest plugin (entry point pytest11): ships the conformance kit to plugin authors.

Loaded in every pytest run where omnidesk is installed. It adds `--update-goldens`, two
fixtures (`register_channel_plugin`, `block_network`), a terminal summary of rewritten
goldens, and re-exports the kit, so `from omnidesk.plugins.testing import PluginConformance`
is all a plugin's test module needs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.register_assert_rewrite("omnidesk.plugins.testing")

from .contract import ChannelPlugin  # noqa: E402
from .testing import REWRITTEN, PluginConformance, network_blocked, registered  # noqa: E402

__all__ = ["PluginConformance", "network_blocked", "registered"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("omnidesk")
    group.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="rewrite the <fixture>.expected.json goldens of omnidesk channel plugins (review the diff!)",
    )


@pytest.fixture
def register_channel_plugin() -> Iterator[Callable[[type[ChannelPlugin[Any]]], None]]:
    """Call with a plugin class to make it known to the registry for this test (no entry point needed)."""
    with contextlib.ExitStack() as stack:

        def register(cls: type[ChannelPlugin[Any]]) -> None:
            stack.enter_context(registered(cls))

        yield register


@pytest.fixture
def block_network() -> Iterator[list[str]]:
    """Refuse connections and DNS lookups for the whole test; the value lists what was attempted."""
    with network_blocked() as attempts:
        yield attempts


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    rewritten = config.stash.get(REWRITTEN, [])
    if rewritten:
        terminalreporter.section("omnidesk goldens")
        terminalreporter.write_line(f"rewrote {len(rewritten)} golden(s); review the diff before committing:")
        for path in rewritten:
            terminalreporter.write_line(f"  {path}")
