"""Message-IDs as real mail carries them, and the threading facts derived from them.

Clients get msg-id syntax wrong in every way RFC 5322 allows and some it does not: missing
angle brackets, several ids in In-Reply-To, commas between References, a date or a name
("<id> (Mary's message of ...)") after the id, ids wrapped over lines. We take every token
that looks like `local@domain`, bracketed or not, and drop the rest.
"""

from __future__ import annotations

import hashlib
import re

_BRACKETED = re.compile(r"<([^<>]{1,500})>")
_BARE = re.compile(r"[^\s<>,;()\"]+@[^\s<>,;()\"]+")
#: longer ids are junk (or an attack on the thread index)
MAX_ID = 250
#: a References header of a thousand ids is junk too; keep the nearest ones
MAX_REFERENCES = 50


def normalize_msgid(value: str) -> str:
    """One id as we store it: brackets and whitespace gone, case kept (ids are compared exactly)."""
    return "".join(value.split()).strip("<>")


def parse_msgids(value: str | list[str] | None) -> list[str]:
    """Every plausible id in a header value (or several headers), in order, duplicates dropped."""
    if not value:
        return []
    if isinstance(value, list):
        value = " ".join(value)
    # An id folded over two lines (`<invalid.\r\n something@bar.net>`) is joined again below.
    text = value.replace("\r", " ").replace("\n", " ")
    found = [m.group(1) for m in _BRACKETED.finditer(text)]
    if not found:
        found = _BARE.findall(text)
    out: list[str] = []
    for token in found:
        token = normalize_msgid(token)
        if not token or len(token) > MAX_ID or '"' in token:
            continue
        if token not in out:
            out.append(token)
    return out


def own_id(message_id_header: str | list[str] | None, raw: bytes) -> str:
    """external_id of a mail: its Message-ID, or a hash of the bytes when it has none."""
    ids = parse_msgids(message_id_header)
    if ids:
        return ids[0]
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def references_of(in_reply_to: str | list[str] | None, references: str | list[str] | None) -> tuple[str, ...]:
    """What a mail answers, most specific first: In-Reply-To ids, then References last → first.

    Some clients rewrite In-Reply-To or put the root there; checking every reference (and not
    only the last) is what keeps a reply on its ticket.
    """
    ordered = parse_msgids(in_reply_to) + list(reversed(parse_msgids(references)))
    return tuple(dict.fromkeys(ordered))[:MAX_REFERENCES]


def thread_root(in_reply_to: str | list[str] | None, references: str | list[str] | None, own: str) -> str:
    """The first mail of the conversation as far as this one knows."""
    refs = parse_msgids(references)
    if refs:
        return refs[0]
    irt = parse_msgids(in_reply_to)
    return irt[0] if irt else own


def ticket_ref_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(r"\[\s*" + re.escape(prefix.strip()) + r"\s*(\d{1,12})\s*\]", re.I)


def ticket_ref_in(subject: str, prefix: str = "#") -> int | None:
    """The ticket number we put in our subjects (`[#123]`), as the customer's client kept it."""
    match = ticket_ref_pattern(prefix).search(subject or "")
    return int(match.group(1)) if match else None
