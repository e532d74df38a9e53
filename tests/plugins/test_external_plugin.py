"""A third party's plugin, installed as its own package, is discovered through the entry point.

The package is built and installed with pip (no network: --no-deps --no-build-isolation) into
a folder of its own, then a fresh Python with that folder on PYTHONPATH looks at the registry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PLUGIN = '''
"""Echo: the smallest channel plugin there is."""
from __future__ import annotations

import json
from dataclasses import dataclass

from omnidesk.plugins.config import ConfigSchema
from omnidesk.plugins.contract import (
    Author, Capabilities, ChannelPlugin, Feature, IdentityKind, IdentityRef, InboundMessage, MalformedPayload,
    ParsedItem, RawEvent,
)


@dataclass(frozen=True)
class EchoConfig(ConfigSchema):
    pass


class EchoChannel(ChannelPlugin[EchoConfig]):
    kind = "echo"
    label = "Echo"
    capabilities = Capabilities(features=frozenset({Feature.PUSH}))
    config_schema = EchoConfig
    event_types = {"message": "a line of text → a message"}

    def parse(self, raw: RawEvent) -> list[ParsedItem]:
        try:
            data = json.loads(raw.body)
        except ValueError:
            raise MalformedPayload("not JSON") from None
        who = IdentityRef(IdentityKind.EXTERNAL, str(data["from"]), self.account_slug)
        return [InboundMessage(external_id=str(data["id"]), event_type="message", thread_key=str(data["id"]),
                               author=Author(identity=who), text=str(data["text"]))]
'''

ENTRY_POINTS = {
    "echo": "omnidesk_echo:EchoChannel",
    "broken": "omnidesk_echo_missing_module:Nope",  # a typo in someone's pyproject.toml
    "wrongkind": "omnidesk_echo:EchoChannel",
}

def env_for(tmp: Path, site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DRAMATIQ_BROKER_URL", "REDIS_URL")}
    env.update(
        PYTHONPATH=str(site),
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}",
        PIP_NO_INDEX="1",  # nothing may be downloaded
    )
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The echo package built and pip-installed into its own site folder: (tmp, site)."""
    tmp = tmp_path_factory.mktemp("external")
    pkg, site = tmp / "omnidesk-echo", tmp / "site"
    (pkg / "omnidesk_echo").mkdir(parents=True)
    (pkg / "omnidesk_echo" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    entry_points = "\n".join(f'{name} = "{target}"' for name, target in ENTRY_POINTS.items())
    # The Makefile installs setuptools >= 70.1, which builds wheels on its own (no `wheel` package).
    build = '[build-system]\nrequires = ["setuptools>=70.1"]\nbuild-backend = "setuptools.build_meta"\n'
    extra = '[tool.setuptools]\npackages = ["omnidesk_echo"]\n'
    (pkg / "pyproject.toml").write_text(
        build
        + '\n[project]\nname = "omnidesk-echo"\nversion = "0.1"\n\n'
        + '[project.entry-points."omnidesk.channels"]\n'
        + entry_points
        + "\n\n"
        + extra
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "--target",
            str(site),
            str(pkg),
        ],
        env=env_for(tmp, site),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return tmp, site


def test_an_installed_package_is_discovered_next_to_the_built_in_plugins(installed):
    tmp, site = installed
    script = (
        "import json, django; django.setup()\n"
        "from omnidesk.plugins.registry import registry\n"
        "r = registry()\n"
        "print(json.dumps({'plugins': {k: f'{v.__module__}:{v.__name__}' for k, v in r.plugins.items()},"
        " 'errors': r.errors}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp, env=env_for(tmp, site), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["plugins"]["echo"] == "omnidesk_echo:EchoChannel"
    assert found["plugins"]["api"] == "channels_plugins.api.adapter:ApiChannel"
    # A broken entry point is reported with its reason, never a crash; the others still load.
    assert found["errors"]["broken"].startswith("cannot be imported from omnidesk_echo_missing_module:Nope")
    assert "No module named 'omnidesk_echo_missing_module'" in found["errors"]["broken"]
    assert found["errors"]["wrongkind"] == (
        "omnidesk_echo:EchoChannel declares kind 'echo' but is registered as 'wrongkind'"
    )
    assert "broken" not in found["plugins"] and "wrongkind" not in found["plugins"]


def test_the_commands_work_for_an_installed_plugin(installed):
    tmp, site = installed
    payload = tmp / "message__hello.json"
    payload.write_text('{"id": 7, "from": "bob", "text": "hello"}')
    proc = subprocess.run(
        [sys.executable, "manage.py", "parse_fixture", "echo", str(payload)],
        cwd=ROOT,
        env=env_for(tmp, site),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    (item,) = json.loads(proc.stdout)
    assert (item["type"], item["external_id"], item["text"]) == ("InboundMessage", "7", "hello")
