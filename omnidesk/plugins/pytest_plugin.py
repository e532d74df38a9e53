"""pytest plugin (entry point pytest11): ships the conformance kit to plugin authors."""

from __future__ import annotations


def pytest_addoption(parser):  # type: ignore[no-untyped-def]
    group = parser.getgroup("omnidesk")
    group.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="rewrite the <fixture>.expected.json goldens of omnidesk channel plugins (review the diff!)",
    )
