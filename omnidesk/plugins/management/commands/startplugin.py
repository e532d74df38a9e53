"""`manage.py startplugin <name>`: a new channel plugin that passes the conformance kit from the start."""

from __future__ import annotations

import importlib
import importlib.util
import keyword
import re
import sys
import uuid
from argparse import ArgumentParser
from importlib.resources import files
from pathlib import Path
from string import Template
from typing import Any

from django.core.management.base import BaseCommand

from omnidesk.plugins.config import load_config
from omnidesk.plugins.contract import RawEvent
from omnidesk.plugins.fixtures import ERROR_PREFIXES, dumps, network_blocked, sample_config, serialize_items
from omnidesk.plugins.management import fail
from omnidesk.plugins.registry import registry

NAME = re.compile(r"[a-z][a-z0-9_]*")
#: template → path in the plugin package (P) or its tests folder (T)
LAYOUT = [
    ("package_init.py.tmpl", "P", "__init__.py"),
    ("adapter.py.tmpl", "P", "adapter.py"),
    ("parsing.py.tmpl", "P", "parsing.py"),
    ("client.py.tmpl", "P", "client.py"),
    ("doc.md.tmpl", "P", "doc.md"),
    ("tests_init.py.tmpl", "T", "__init__.py"),
    ("test_conformance.py.tmpl", "T", "test_conformance.py"),
    ("message__basic.json.tmpl", "T", "fixtures/message__basic.json"),
]


class Command(BaseCommand):
    help = (
        "Lay out a new channel plugin: <dir>/<name>/ (adapter, parsing, client, doc.md) and "
        "<tests-dir>/<name>/ (a conformance test on the kit and a recorded fixture with its golden). "
        "The plugin is a signed JSON webhook that passes the kit at once; make it your vendor's. "
        "Refuses to overwrite an existing folder."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("name", help="the plugin's kind: a lower-case Python identifier (e.g. whatsapp)")
        parser.add_argument(
            "--dir", default="channels_plugins", help="where the plugin package goes (default: channels_plugins)"
        )
        parser.add_argument("--tests-dir", default="tests/plugins", help="where its tests go (default: tests/plugins)")
        parser.add_argument("--label", default="", help="the name people see (default: the name, capitalized)")

    def handle(self, *args: Any, **options: Any) -> None:
        name: str = options["name"]
        if not NAME.fullmatch(name) or keyword.iskeyword(name) or name in ERROR_PREFIXES:
            fail(
                self,
                "InvalidName",
                f"{name!r} must be a lower-case Python identifier (letters, digits, _), "
                f"not a keyword, not {' or '.join(ERROR_PREFIXES)}",
            )
        if name in registry().plugins:
            fail(self, "InvalidName", f"a channel plugin of kind {name!r} is installed already")
        package_dir = Path(options["dir"]) / name
        tests_dir = Path(options["tests_dir"]) / name
        for folder in (package_dir, tests_dir):
            if folder.exists():
                fail(self, "FolderExists", f"{folder} exists already; choose another name or move it away")
        prefix = "".join(part.capitalize() for part in name.split("_"))
        package = _dotted(package_dir)
        values = {
            "name": name,
            "label": options["label"] or name.replace("_", " ").title(),
            "class_prefix": prefix,
            "class_name": f"{prefix}Channel",
            "package": package,
            "slug": name.replace("_", "-") + "-test",
            "header_name": prefix,
            "signature_header": f"X-{prefix}-Signature",
        }
        written = []
        for template, where, target in LAYOUT:
            path = (package_dir if where == "P" else tests_dir) / target
            path.parent.mkdir(parents=True, exist_ok=True)
            text = Template((files("omnidesk.plugins.plugin_template") / template).read_text(encoding="utf-8"))
            path.write_text(text.substitute(values), encoding="utf-8")
            written.append(path)
        fixture = tests_dir / "fixtures" / "message__basic.json"
        golden = fixture.with_name("message__basic.expected.json")
        golden.write_text(_golden(package_dir, values, fixture.read_bytes()), encoding="utf-8")
        written.append(golden)
        for path in written:
            self.stdout.write(f"created {path}")
        self.stdout.write("")
        self.stdout.write("Register it in your pyproject.toml, then reinstall (pip install -e .):")
        self.stdout.write("")
        self.stdout.write('[project.entry-points."omnidesk.channels"]')
        self.stdout.write(f'{name} = "{package}.adapter:{values["class_name"]}"')
        self.stdout.write("")
        if "." not in package:
            self.stdout.write(f"({package_dir.parent} is not a package: put it on sys.path so `{package}` imports.)")
        self.stdout.write(f"Run its tests: pytest {tests_dir}")


def _dotted(package_dir: Path) -> str:
    """The import name of the new package: its parents that are packages, then its own name."""
    parts = [package_dir.name]
    parent = package_dir.resolve().parent
    while (parent / "__init__.py").exists():
        parts.insert(0, parent.name)
        parent = parent.parent
    return ".".join(parts)


def _golden(package_dir: Path, values: dict[str, str], body: bytes) -> str:
    """What the generated plugin's parse() makes of its fixture, imported under a private name."""
    private = f"_startplugin_{values['name']}_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(
        private, package_dir / "__init__.py", submodule_search_locations=[str(package_dir)]
    )
    assert spec is not None and spec.loader is not None
    sys.modules[private] = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(sys.modules[private])
        cls = getattr(importlib.import_module(f"{private}.adapter"), values["class_name"])
        data, secrets = sample_config(cls.config_schema)
        plugin = cls(load_config(cls.config_schema, data, secrets), account_slug=values["slug"])
        with network_blocked():
            return dumps(serialize_items(plugin.parse(RawEvent(body=body))))
    finally:
        for key in [k for k in sys.modules if k == private or k.startswith(private + ".")]:
            del sys.modules[key]
