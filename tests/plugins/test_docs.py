"""docs/plugins.md documents every public name of the plugin contract and of the kit.

Like Datasette's test for undocumented hooks: a name added to the contract without a line in
the guide fails here, and the failure says which names are missing.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import inspect
import re
from pathlib import Path
from typing import TypeVar

import pytest

from omnidesk.plugins import contract, errors, testing

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


@pytest.fixture(scope="module")
def doc() -> str:
    assert DOC.is_file(), f"{DOC} is missing"
    return DOC.read_text(encoding="utf-8")


def mentioned(text: str) -> set[str]:
    """Every identifier inside a `code span` (so `parse(raw)` documents parse), plus the spans themselves."""
    spans = re.findall(r"`+([^`]+)`+", text)
    return set(spans) | {word for span in spans for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", span)}


def section(text: str, name: str) -> str:
    """The text under the heading that names `name` in backticks, down to the next heading as high."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        heading = re.match(r"(#+)\s", line)
        if heading and f"`{name}`" in line:
            level = len(heading.group(1))
            end = next(
                (
                    j
                    for j in range(i + 1, len(lines))
                    if (m := re.match(r"(#+)\s", lines[j])) and len(m.group(1)) <= level
                ),
                len(lines),
            )
            return "\n".join(lines[i:end])
    return ""


def missing_message(what: str, names: list[str]) -> str:
    return f"docs/plugins.md does not mention {what} (in backticks): {', '.join(names)}"


def contract_names() -> list[str]:
    """Classes, functions and aliases defined in contract.py, and what it re-exports from errors/config."""
    tree = ast.parse(Path(contract.__file__).read_text(encoding="utf-8"))
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 1:
            names += [alias.asname or alias.name for alias in node.names]
    return [n for n in names if not n.startswith("_") and not isinstance(getattr(contract, n), TypeVar)]


def public_members(cls: type) -> list[str]:
    """Public methods, properties and class attributes a class defines itself (not inherited)."""
    own = [n for n, v in vars(cls).items() if not n.startswith("_") and not isinstance(v, (dataclasses.Field,))]
    annotated = [n for n in vars(cls).get("__annotations__", {}) if not n.startswith("_")]
    return list(dict.fromkeys(annotated + own))


def contract_classes(kind: str) -> list[type]:
    found = []
    for name in contract_names():
        obj = getattr(contract, name)
        if not inspect.isclass(obj) or obj.__module__ != contract.__name__:
            continue
        if kind == "dataclass" and dataclasses.is_dataclass(obj):
            found.append(obj)
        elif kind == "enum" and issubclass(obj, enum.Enum):
            found.append(obj)
    return found


def test_every_public_name_of_the_contract_module_is_documented(doc):
    names = contract_names()
    assert {"ChannelPlugin", "InboundMessage", "SignatureInvalid", "ConfigSchema"} <= set(names)  # the scan works
    missing = [n for n in names if n not in mentioned(doc)]
    assert not missing, missing_message("these names of omnidesk.plugins.contract", missing)


def test_every_member_of_channel_plugin_is_documented_in_its_section(doc):
    part = section(doc, "ChannelPlugin")
    assert part, "docs/plugins.md needs a heading for `ChannelPlugin`"
    init_attrs = [
        t.attr
        for t in ast.walk(ast.parse(inspect.getsource(contract.ChannelPlugin.__init__).strip()))
        if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
    ]
    members = list(dict.fromkeys(public_members(contract.ChannelPlugin) + init_attrs))
    assert {"kind", "parse", "send", "verify", "fetch", "check_reply", "config", "account_slug"} <= set(members)
    missing = [m for m in members if m not in mentioned(part)]
    assert not missing, missing_message("these ChannelPlugin members in its section", missing)


@pytest.mark.parametrize("cls", contract_classes("dataclass"), ids=lambda c: c.__name__)
def test_every_field_of_each_contract_dataclass_is_documented_in_its_section(doc, cls):
    part = section(doc, cls.__name__)
    assert part, f"docs/plugins.md needs a heading naming `{cls.__name__}`"
    members = [f.name for f in dataclasses.fields(cls)] + [
        m for m in public_members(cls) if m not in {f.name for f in dataclasses.fields(cls)}
    ]
    missing = [m for m in members if m not in mentioned(part)]
    assert not missing, missing_message(f"these {cls.__name__} fields/members in its section", missing)


@pytest.mark.parametrize("cls", contract_classes("enum"), ids=lambda c: c.__name__)
def test_every_member_of_each_contract_enum_is_documented_in_its_section(doc, cls):
    part = section(doc, cls.__name__)
    assert part, f"docs/plugins.md needs a heading naming `{cls.__name__}`"
    missing = [m.name for m in cls if m.name not in mentioned(part)]
    assert not missing, missing_message(f"these {cls.__name__} members in its section", missing)


def test_every_error_class_and_its_attributes_are_documented(doc):
    classes = [c for c in vars(errors).values() if inspect.isclass(c) and issubclass(c, errors.PluginError)]
    attributes = {"message"} | {n for c in classes for n in public_members(c)}
    attributes |= {n for c in classes for n in inspect.signature(c.__init__).parameters if n not in ("self", "message")}
    missing = [c.__name__ for c in classes if c.__name__ not in mentioned(doc)]
    missing += sorted(a for a in attributes if a not in mentioned(doc))
    assert not missing, missing_message("these error classes / attributes", missing)


def test_the_config_helpers_are_documented(doc):
    missing = [n for n in ("ConfigSchema", "setting", "Secret", "reveal", "load_config") if n not in mentioned(doc)]
    assert not missing, missing_message("these config helpers", missing)


def test_the_kit_its_hooks_and_the_commands_are_documented(doc):
    part = section(doc, "PluginConformance")
    assert part, "docs/plugins.md needs a heading for `PluginConformance`"
    kit = [m for m in public_members(testing.PluginConformance) if m != "pytest_generate_tests"]
    missing = [m for m in kit if m not in mentioned(part)]
    extras = [
        "registered",
        "network_blocked",
        "register_channel_plugin",
        "block_network",
        "--update-goldens",
        "parse_fixture",
        "replay_fixture",
        "startplugin",
        "omnidesk.channels",
        "pytest11",
    ]
    missing += [m for m in extras if m not in mentioned(doc)]
    assert not missing, missing_message("these parts of the kit / commands", missing)


def test_the_checks_find_what_is_missing():
    text = "## `Capabilities`\n`features` `max_length`\n## `Other`\n`can_send`\n"
    part = section(text, "Capabilities")
    assert "can_send" not in mentioned(part) and "max_length" in mentioned(part)
    assert "parse" in mentioned("call `plugin.parse(raw)`") and "parse" not in mentioned("call parse")
