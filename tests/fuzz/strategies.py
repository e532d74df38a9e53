"""Hypothesis strategies that build NEAR-VALID payloads: a recorded one with a few parts broken.

Raw random bytes rarely get past a parser's first check (is it JSON? is it a mail?); a real
payload with one field of the wrong type, an id missing or a date out of range reaches the
code behind that check, where the crashes hide. Each strategy starts from recorded shapes
(tests/plugins/*/fixtures, ../shared/corpus) and changes 1–4 things.
"""

from __future__ import annotations

import copy
import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from hypothesis import strategies as st

from omnidesk.plugins.fixtures import flip_byte

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "plugins"
CORPUS = ROOT.parent / "shared" / "corpus"

#: values that break assumptions: wrong types, edges of ranges, odd text
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, -1, 1, 2**31, 2**63, 10**30, -(10**30), 1.5, -0.0, 1e308, float("nan"), float("inf")]),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "", " ", "0", "-1", "null", "true", "\x00", "\u202e", "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
            "9999-12-31T23:59:59-05:00", "0000-00-00 00:00:00", "2024-02-30T10:00:00Z", "Thu, 99 Foo 2024 25:61:00 +9999",
            "x" * 5000, "<script>alert(1)</script>", "javascript:alert(1)", "=?utf-8?q?=ZZ?=", "=?x-unknown?b?!!!?=",
            "1e999", "+", "+44", "anonymous", "1" * 400, "\r\n", "a\u0000b", "😀" * 50,
        ]
    ),
    st.text(max_size=40),
)
JSON_VALUES = st.recursive(
    SCALARS.filter(lambda v: not isinstance(v, float) or v == v),  # json.dumps writes NaN, which is still JSON to Python
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)),
    max_leaves=6,
)


def json_fixtures(plugin: str, *, corpus: str = "") -> list[Any]:
    """Every JSON document recorded for a plugin (its fixtures, plus a corpus folder if given)."""
    paths = [p for p in sorted((FIXTURES / plugin / "fixtures").glob("*.json")) if not p.name.endswith((".expected.json", ".headers.json"))]
    if corpus and (CORPUS / corpus).is_dir():
        paths += sorted((CORPUS / corpus).glob("*.json"))
    docs = []
    for path in paths:
        try:
            docs.append(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, UnicodeDecodeError):
            continue  # the malformed__ fixtures: raw bytes cover them
    return docs


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, (*prefix, i))
    return found


def _subtrees(docs: Sequence[Any]) -> list[Any]:
    out = []
    for doc in docs:
        for path in _paths(doc):
            out.append(_get(doc, path))
    return out


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        node = node[step]
    return node


def _apply(doc: Any, edits: list[tuple[int, str, Any]]) -> Any:
    doc = copy.deepcopy(doc)
    for pick, op, value in edits:
        value = copy.deepcopy(value)  # a recorded part is shared: never let an edit change the corpus
        paths = _paths(doc)
        path = paths[pick % len(paths)]
        if not path:  # the root itself
            if op == "replace":
                doc = value
            continue
        parent, key = _get(doc, path[:-1]), path[-1]
        if op == "delete":
            del parent[key]
        elif op == "replace":
            parent[key] = value
        elif op == "insert" and isinstance(parent, dict):
            parent[f"{key}_extra"] = value
        elif op == "insert" and isinstance(parent, list):
            parent.insert(key, value)
    return doc


def mutated_json(docs: Sequence[Any]) -> st.SearchStrategy[bytes]:
    """A recorded document with 1–4 nodes replaced (by odd values or other recorded parts), removed or added."""
    parts = _subtrees(docs)
    value = st.one_of(JSON_VALUES, st.sampled_from(parts))
    edit = st.tuples(st.integers(0, 10_000), st.sampled_from(["replace", "replace", "delete", "insert"]), value)
    doc = st.sampled_from(list(docs))
    return st.tuples(doc, st.lists(edit, min_size=1, max_size=4)).map(lambda t: json.dumps(_apply(*t)).encode())


def raw_variants(bodies: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    """Raw bytes: random, a recorded body truncated anywhere, or with one byte flipped."""
    bodies = list(bodies) or [b"{}"]
    truncated = st.sampled_from(bodies).flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n]))
    flipped = st.builds(flip_byte, st.sampled_from(bodies), st.integers(0, 1 << 20), st.integers(1, 255))
    return st.one_of(st.binary(max_size=512), truncated, flipped)


# --- CSV (call detail records) ---------------------------------------------------------------

CELL = st.one_of(
    st.sampled_from(["", "0", "-5", "99999999999999999999", "2024-13-45 25:00:00", "1e9", "NaN", "ANSWERED", "NO ANSWER",
                     "BUSY", "FAILED", "\"", ";", ",", "\n", "+", "anonymous", "Restricted", "\"Name\" <>", "<201>",
                     "1719820800.1", "9999-12-31 23:59:59", "0000-00-00 00:00:00", "ｓｔａｒｔ", "\x00"]),
    st.text(max_size=20),
    st.integers().map(str),
)


def mutated_csv(bodies: Sequence[bytes], delimiter: str = ",") -> st.SearchStrategy[bytes]:
    """A recorded CSV file with cells replaced, rows shortened or lengthened, rows dropped."""

    def rows_of(body: bytes) -> list[list[str]]:
        return [row for row in csv.reader(io.StringIO(body.decode("utf-8", "replace")), delimiter=delimiter)]

    tables = [rows_of(b) for b in bodies]

    def apply(table: list[list[str]], edits: list[tuple[int, int, str, str]]) -> bytes:
        table = [list(r) for r in table]
        for r, c, op, value in edits:
            if not table:
                table = [[value]]
                continue
            row = table[r % len(table)]
            if op == "cell" and row:
                row[c % len(row)] = value
            elif op == "cut":
                del row[c % (len(row) + 1) :]
            elif op == "add":
                row.append(value)
            elif op == "drop":
                table.remove(row)
        out = io.StringIO()
        csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(table)
        return out.getvalue().encode("utf-8")

    edit = st.tuples(st.integers(0, 1000), st.integers(0, 1000), st.sampled_from(["cell", "cell", "cell", "cut", "add", "drop"]), CELL)
    return st.tuples(st.sampled_from(tables), st.lists(edit, min_size=1, max_size=4)).map(lambda t: apply(*t))


# --- form bodies (Twilio) ----------------------------------------------------------------------


def mutated_form(bodies: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    """A recorded form body with parameters changed, removed, repeated or added."""
    forms = [parse_qsl(b.decode("utf-8"), keep_blank_values=True) for b in bodies]

    def apply(form: list[tuple[str, str]], edits: list[tuple[int, str, str]]) -> bytes:
        form = list(form)
        for i, op, value in edits:
            if not form:
                form = [("CallSid", value)]
            n = i % len(form)
            if op == "value":
                form[n] = (form[n][0], value)
            elif op == "drop":
                del form[n]
            elif op == "repeat":
                form.append((form[n][0], value))
        return urlencode(form).encode()

    value = st.one_of(CELL, st.sampled_from(["completed", "no-answer", "busy", "ringing", "in-progress", "canceled",
                                             "Tue, 05 Mar 2024 10:00:00 +0000", "Tue, 05 Mar 99999 10:00:00 +0000"]))
    edit = st.tuples(st.integers(0, 100), st.sampled_from(["value", "value", "drop", "repeat"]), value)
    return st.tuples(st.sampled_from(forms), st.lists(edit, min_size=1, max_size=4)).map(lambda t: apply(*t))


# --- mail ------------------------------------------------------------------------------------

HEADER_VALUES = st.one_of(
    st.sampled_from([
        "", "<>", "<<<>>>", "=?utf-8?b?!!!?=", "=?iso-gb2312?q?=C4=E3?=", "=?unknown-8bit?q?x?=", "=?utf-8?q?", "\"\" <@>",
        "a@", "@b", "Thu, 31 Feb 2024 25:61:61 +9999", "Mon, 1 Jan 0001 00:00:00 +0000", "Sun, 31 Dec 9999 23:59:59 -1200",
        "multipart/mixed", "multipart/mixed; boundary=", "multipart/alternative; boundary=\"x\"", "text/plain; charset=\"x-evil\"",
        "text/html; charset=utf-7", "message/rfc822", "message/delivery-status", "application/pgp-encrypted",
        "base64", "quoted-printable", "x-uuencode", "8bit", "attachment; filename*=utf-8''%ZZ", "inline; filename=\"\"",
        "[#99999999999999999999] re:", "[#-1] hi", "auto-replied", "bulk", "x" * 3000, "<a@b> <c@d> <", "\x00",
    ]),
    st.text(max_size=30),
)
HEADERS = ["From", "To", "Subject", "Date", "Message-ID", "In-Reply-To", "References", "Content-Type",
           "Content-Transfer-Encoding", "Content-Disposition", "Auto-Submitted", "Precedence", "X-Autoreply",
           "Return-Path", "Reply-To", "Sender", "MIME-Version"]


def mail_bodies() -> list[bytes]:
    paths = sorted((FIXTURES / "email" / "fixtures").glob("*.eml"))
    if (CORPUS / "email").is_dir():
        paths += sorted((CORPUS / "email").rglob("*.eml"))
    return [p.read_bytes() for p in paths]


def mutated_mail(bodies: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    """A recorded mail with headers (top-level or of a MIME part) replaced, added or cut, or its body cut."""

    def apply(body: bytes, edits: list[tuple[int, str, str, str]]) -> bytes:
        for pos, op, name, value in edits:
            lines = body.split(b"\n")
            heads = [i for i, line in enumerate(lines) if b":" in line[:40] and line[:1].isalpha()] or [0]
            at = heads[pos % len(heads)]
            encoded = value.encode("utf-8", "surrogateescape")
            if op == "replace":
                key = lines[at].split(b":", 1)[0]
                lines[at] = key + b": " + encoded
            elif op == "add":
                lines.insert(at, name.encode() + b": " + encoded)
            elif op == "cut_body":
                keep = len(body) - (pos % max(len(body), 1)) // 2
                return body[:keep]
            body = b"\n".join(lines)
        return body

    edit = st.tuples(st.integers(0, 10_000), st.sampled_from(["replace", "replace", "add", "cut_body"]),
                     st.sampled_from(HEADERS), HEADER_VALUES)
    return st.tuples(st.sampled_from(list(bodies)), st.lists(edit, min_size=1, max_size=4)).map(lambda t: apply(*t))
