"""`manage.py parse_fixture <plugin> <file>`: what a plugin makes of a payload, as golden JSON."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from omnidesk.plugins.config import load_config
from omnidesk.plugins.contract import RawEvent
from omnidesk.plugins.errors import ConfigInvalid, PluginError
from omnidesk.plugins.fixtures import NetworkAttempt, dumps, network_blocked, sample_config, serialize_items
from omnidesk.plugins.management import fail, read_payload
from omnidesk.plugins.registry import UnknownPlugin, plugin_class


class Command(BaseCommand):
    help = (
        "Print what a channel plugin's parse() makes of a payload file: the normalized items as JSON "
        "(the same JSON as the kit's goldens), or the typed error as one line on stderr with exit status 1. "
        "Nothing is stored; the network is blocked while parsing."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("kind", help="the plugin's kind, i.e. its entry-point name (api, email, ...)")
        parser.add_argument("file", help="the raw payload, byte for byte")
        parser.add_argument(
            "--headers",
            metavar="FILE",
            help="a JSON object of the headers it arrived with (default: <name>.headers.json beside FILE, if any)",
        )
        parser.add_argument(
            "--config",
            metavar="JSON",
            default="{}",
            help="account settings and secrets as one JSON object; missing ones get placeholders "
            "(schema defaults, secrets 'test-secret')",
        )
        parser.add_argument(
            "--account-slug", default="fixture", help="the account slug the plugin is told (default: fixture)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            cls = plugin_class(options["kind"])
        except UnknownPlugin as exc:
            fail(self, "UnknownPlugin", exc)
        body, headers = read_payload(self, options["file"], options["headers"])
        try:
            overrides = json.loads(options["config"])
        except json.JSONDecodeError as exc:
            fail(self, "ConfigInvalid", f"--config is not JSON: {exc}")
        try:
            if not isinstance(overrides, dict):
                raise ConfigInvalid("--config must be a JSON object")
            data, secrets = sample_config(cls.config_schema, overrides)
            plugin = cls(load_config(cls.config_schema, data, secrets), account_slug=options["account_slug"])
            with network_blocked():
                items = plugin.parse(RawEvent(body=body, headers=headers))
            output = dumps(serialize_items(items))
        except PluginError as exc:
            fail(self, type(exc).__name__, exc.message)
        except NetworkAttempt as exc:
            fail(self, "NetworkAttempt", f"parse() must be pure: {exc}")
        except Exception as exc:
            if options.get("traceback"):
                raise
            fail(
                self,
                type(exc).__name__,
                f"{exc} (a bug in the {cls.kind} plugin: parse() must raise PluginError subclasses)",
            )
        self.stdout.write(output, ending="")
