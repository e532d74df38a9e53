"""Commands for plugin authors: parse_fixture, replay_fixture, startplugin.

Every failure reaches the terminal as ONE line, `error: <Kind>: <message>`, and exit status 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

from django.core.management.base import BaseCommand

from ..fixtures import FixtureFile, load_headers


def fail(command: BaseCommand, kind: str, message: object) -> NoReturn:
    """Print one `error:` line on stderr and exit 1 (never a traceback)."""
    command.stderr.write(f"error: {kind}: {message}")
    raise SystemExit(1)


def read_payload(command: BaseCommand, file: str, headers_file: str | None) -> tuple[bytes, dict[str, str]]:
    """The raw body and its headers: `--headers FILE`, else the `<name>.headers.json` sidecar, else none."""
    path = Path(file)
    try:
        body = path.read_bytes()
    except OSError as exc:
        fail(command, type(exc).__name__, f"cannot read {file}: {exc.strerror or exc}")
    sidecar = Path(headers_file) if headers_file else FixtureFile(path).headers_path
    if not headers_file and not sidecar.exists():
        return body, {}
    try:
        return body, load_headers(sidecar)
    except OSError as exc:
        fail(command, type(exc).__name__, f"cannot read headers file {sidecar}: {exc.strerror or exc}")
    except (ValueError, json.JSONDecodeError) as exc:
        fail(command, "InvalidHeaders", f"{sidecar}: {exc}")
