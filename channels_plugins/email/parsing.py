"""Reading real mail: charsets, encoded words, broken MIME, bodies and attachments.

Pure functions over `email.message.Message`. The stdlib parser is lenient about structure but
not about text: with `policy.default`, `get_content()` raises LookupError on a charset Python
does not know (`iso-gb2312`, `ks_c_5601-1987`, `invalid-charset`) and `get_body()` gives None
for PGP mail, a top-level application/octet-stream or a broken multipart. So we walk the parts
ourselves, decode payloads with `get_payload(decode=True)` and turn bytes into text here, with
aliases and fallbacks, never raising.
"""

from __future__ import annotations

import codecs
import email.header
import email.utils
import functools
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import Message

from omnidesk.plugins.contract import Attachment
from omnidesk.plugins.html import html_to_text, sanitize_html

#: the headers that say how a part is built: the stdlib's parser and we read them many times per part
_MIME_STRUCTURE = frozenset({"content-type", "content-disposition", "content-transfer-encoding"})
_REGISTRY = HeaderRegistry()


@functools.lru_cache(maxsize=512)
def _structure_header(name: str, value: str) -> BaseHeader:
    return _REGISTRY(name, value)


class _StructureHeaders(HeaderRegistry):
    """policy.default's headers, parsing each distinct Content-Type/-Disposition/-Transfer-Encoding once.

    policy.default parses a header again on every access: `get_content_type()`, `get_param()`,
    `is_multipart()` and the feed parser itself each re-read Content-Type, about nine parses per
    part and most of a mail's parse CPU. Header objects are immutable, so one parse per value
    serves every access; the values also repeat from mail to mail ("text/plain; charset=utf-8").
    """

    def __call__(self, name: str, value: str) -> BaseHeader:
        if len(value) <= _MEMO_MAX_CHARS and name.lower() in _MIME_STRUCTURE:
            return _structure_header(name, value)
        return super().__call__(name, value)


#: longer values are parsed every time: a hostile sender's huge headers are not kept in memory
_MEMO_MAX_CHARS = 1000


#: policy.default (modern header and RFC 2231 handling) with the structure headers memoized;
#: we read the other headers raw ourselves (parsing.Headers), where it is slow
POLICY = policy.default.clone(header_factory=_StructureHeaders())

#: labels seen in real mail that Python does not know, or knows under a narrower name
CHARSET_ALIASES = {
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "ks_c_5601-1989": "cp949",
    "euc-kr": "cp949",  # Outlook labels cp949 text as euc-kr
    "iso-gb2312": "gb18030",
    "gb2312": "gb18030",  # gb18030 is a superset; senders label GBK text as gb2312
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cn-gb": "gb18030",
    "big5": "big5hkscs",
    "x-sjis": "shift_jis",
    "shift-jis": "cp932",
    "shift_jis": "cp932",
    "windows-31j": "cp932",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "unicode-1-1-utf-7": "utf-7",
    "utf8": "utf-8",
    "windows-874": "cp874",
    "tis-620": "cp874",
    "iso-8859-1": "cp1252",  # what "latin-1" mail really is (curly quotes in 0x80-0x9f)
    "latin1": "cp1252",
    "us-ascii": "ascii",
    "ansi_x3.4-1968": "ascii",
    "default": "ascii",
    "unknown-8bit": "",
    "x-unknown": "",
    "x-user-defined": "",
}

_WESTERN_SINGLE_BYTE = frozenset({"ascii", "cp1252", "iso8859-1", "iso8859-15", "latin-1"})
_FOLD = re.compile(r"\r?\n[ \t]*")
#: an encoded word with junk around it that decode_header would reject whole
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")


def python_codec(label: str | None) -> str:
    """The codec for a charset label, or "" when Python has none (then we guess)."""
    if not label:
        return ""
    name = label.strip().strip("\"'").lower()
    name = name.split("*", 1)[0]  # RFC 2231 language suffix: utf-8*en
    if name in CHARSET_ALIASES:
        return CHARSET_ALIASES[name]
    try:
        return codecs.lookup(name).name
    except LookupError:
        return ""


def decode_bytes(data: bytes, label: str | None) -> str:
    """Text of `data` labelled `label`: strict in the label, then UTF-8, then replacement characters.

    A wrong label is common (UTF-8 sent as us-ascii or latin-1); an unknown one too.
    """
    codec = python_codec(label)
    # Valid UTF-8 with non-ASCII bytes is practically never meant as Latin-1: such labels are wrong.
    order = ("utf-8", codec) if codec in _WESTERN_SINGLE_BYTE else (codec, "utf-8")
    for attempt in filter(None, order):
        try:
            return data.decode(attempt)
        except (UnicodeDecodeError, LookupError):
            continue
    if codec and codec != "ascii":
        return data.decode(codec, errors="replace")
    return data.decode("cp1252", errors="replace") if _mostly_text(data) else data.decode("utf-8", errors="replace")


def _mostly_text(data: bytes) -> bool:
    try:
        data.decode("cp1252")
        return True
    except UnicodeDecodeError:
        return False


def _unsurrogate(value: str) -> str:
    """8-bit header bytes arrive as surrogate escapes: decode them as UTF-8, else cp1252."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        raw = value.encode("utf-8", "surrogateescape")
        return decode_bytes(raw, None)


def header_text(raw: str | None) -> str:
    """A header value for people: unfolded, encoded words decoded in any charset, never raising."""
    if raw is None:
        return ""
    value = _FOLD.sub(" ", _unsurrogate(str(raw))).strip()
    if "=?" not in value:
        return value
    try:
        chunks = email.header.decode_header(value)
    except Exception:  # noqa: BLE001 - a broken encoded word: decode what we can by hand
        return _ENCODED_WORD.sub(lambda m: _decode_word(m.group(1), m.group(2), m.group(3)), value)
    out = []
    for chunk, charset in chunks:
        out.append(decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk)
    text = "".join(out)
    if "=?" in text:  # words decode_header left alone (no space around them)
        text = _ENCODED_WORD.sub(lambda m: _decode_word(m.group(1), m.group(2), m.group(3)), text)
    return text.strip()


def _decode_word(charset: str, encoding: str, payload: str) -> str:
    import base64
    import binascii
    import quopri

    try:
        if encoding.lower() == "b":
            data = base64.b64decode(payload + "=" * (-len(payload) % 4))
        else:
            data = quopri.decodestring(payload.replace("_", " ").encode("ascii", "replace"), header=True)
    except (binascii.Error, ValueError):
        return payload
    return decode_bytes(data, charset)


class Headers:
    """The raw headers of one message, read once (cheap): name (any case) → values in order."""

    def __init__(self, msg: Message) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in msg.raw_items():
            self._values.setdefault(name.lower(), []).append(str(value))

    def raw(self, name: str) -> str | None:
        values = self._values.get(name.lower())
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return list(self._values.get(name.lower(), []))

    def text(self, name: str) -> str:
        return header_text(self.raw(name))

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._values

    def __bool__(self) -> bool:
        return bool(self._values)


def address(raw: str | None) -> tuple[str, str]:
    """(display name, address) of a From-like header; address "" when there is none."""
    if not raw:
        return "", ""
    value = header_text(raw)
    pairs = email.utils.getaddresses([value])
    for name, addr in pairs:
        addr = addr.strip().strip("<>").strip()
        if "@" in addr and " " not in addr:
            return name.strip().strip('"').strip(), addr
    match = re.search(r"[\w.+'=-]+@[\w-]+(\.[\w-]+)+", value)
    return ("", match.group(0)) if match else ("", "")


def date(raw: str | None) -> datetime | None:
    """The Date header, leniently: garbage or none → None (the core then uses receipt time)."""
    if not raw:
        return None
    try:
        when = email.utils.parsedate_to_datetime(header_text(raw))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # "-0000": the sender's zone is unknown, the time is UTC
        when = when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


# --- bodies ------------------------------------------------------------------------------


@dataclass
class Body:
    """What the parts of a mail add up to."""

    text_parts: list[str] = field(default_factory=list)
    html_parts: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    #: "pgp-encrypted", "pgp-signed", "smime-encrypted", "smime-signed", "broken-mime"
    flags: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n\n".join(t.strip("\n") for t in self.text_parts if t.strip()).strip()

    @property
    def html(self) -> str:
        return "\n".join(h for h in self.html_parts if h.strip())


ENCRYPTED_PGP = "[encrypted message: PGP]"
ENCRYPTED_SMIME = "[encrypted message: S/MIME]"
MAX_DEPTH = 20


def content_type(part: Message) -> str:
    try:
        return part.get_content_type().lower()
    except Exception:  # noqa: BLE001
        return "text/plain"


def _param(part: Message, name: str, header: str = "content-type") -> str:
    try:
        value = part.get_param(name, header=header)
    except Exception:  # noqa: BLE001
        return ""
    if isinstance(value, tuple):  # RFC 2231 (charset, language, value)
        value = email.utils.collapse_rfc2231_value(value)
    return str(value) if value else ""


def disposition(part: Message) -> str:
    try:
        return (part.get_content_disposition() or "").lower()
    except Exception:  # noqa: BLE001
        return ""


def filename(part: Message, ctype: str) -> str:
    """The attachment's name, decoded (RFC 2231 or encoded words, any charset), or one made up."""
    name = ""
    try:
        name = part.get_filename() or ""
    except Exception:  # noqa: BLE001
        name = ""
    if not name:
        name = _param(part, "name")
    name = header_text(name).replace("/", "_").replace("\\", "_").strip()
    if not name:
        ext = mimetypes.guess_extension(ctype) or ".bin"
        name = ("message" if ctype.startswith("message/") else "attachment") + ext
    return name[:255]


def payload_bytes(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - broken base64/qp: the raw text is better than nothing
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    if isinstance(raw, list) and raw:
        return message_bytes(raw[0]) if isinstance(raw[0], Message) else b""
    return b""


def message_bytes(msg: Message) -> bytes:
    """An embedded message serialized again (a forwarded .eml attachment)."""
    for render in (lambda: msg.as_bytes(policy=policy.compat32), lambda: msg.as_string(policy=policy.compat32).encode("utf-8", "replace")):
        try:
            return render()
        except Exception:  # noqa: BLE001, S112
            continue
    return b""


def part_text(part: Message) -> str:
    text = decode_bytes(payload_bytes(part), _param(part, "charset"))
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def body_of(msg: Message) -> Body:
    body = Body()
    _walk(msg, body, depth=0)
    return body


def _walk(part: Message, body: Body, depth: int) -> None:
    ctype = content_type(part)
    if depth > MAX_DEPTH:
        body.flags.append("broken-mime")
        return
    if part.is_multipart():
        children = part.get_payload()
        if not isinstance(children, list):
            body.flags.append("broken-mime")
            body.text_parts.append(part_text(part))
            return
        if ctype == "multipart/encrypted":
            protocol = _param(part, "protocol").lower()
            body.flags.append("pgp-encrypted" if "pgp" in protocol else "encrypted")
            body.text_parts.append(ENCRYPTED_PGP if "pgp" in protocol else "[encrypted message]")
            for child in children:
                _attach(child, body)
            return
        if ctype == "multipart/signed":
            protocol = _param(part, "protocol").lower()
            body.flags.append("smime-signed" if "pkcs7" in protocol else "pgp-signed")
            if children:
                _walk(children[0], body, depth + 1)
            for child in children[1:]:
                _attach(child, body)
            return
        if ctype == "multipart/alternative":
            # The last alternative is the richest; keep one plain and one html, never both texts twice.
            plain = [c for c in children if content_type(c) == "text/plain" and disposition(c) != "attachment"]
            rest = [c for c in children if c not in plain]
            if plain:
                _walk(plain[0], body, depth + 1)
            for child in rest:
                if content_type(child) == "text/plain":
                    continue
                _walk(child, body, depth + 1)
            return
        for child in children:
            if isinstance(child, Message):
                _walk(child, body, depth + 1)
        return
    if ctype.startswith("multipart/"):  # a multipart without a boundary: its body is the text
        body.flags.append("broken-mime")
        body.text_parts.append(part_text(part))
        return
    disp = disposition(part)
    if ctype in ("application/pkcs7-mime", "application/x-pkcs7-mime") and _param(part, "smime-type") != "signed-data":
        body.flags.append("smime-encrypted")
        body.text_parts.append(ENCRYPTED_SMIME)
        _attach(part, body)
        return
    if disp != "attachment" and ctype == "text/plain" and not _param(part, "name"):
        text = part_text(part)
        if "-----BEGIN PGP MESSAGE-----" in text:
            body.flags.append("pgp-encrypted")
            body.text_parts.append(ENCRYPTED_PGP)
            _attach(part, body)
            return
        body.text_parts.append(text)
        return
    if disp != "attachment" and ctype == "text/html" and not _param(part, "name"):
        body.html_parts.append(part_text(part))
        return
    _attach(part, body)


def _attach(part: Message, body: Body) -> None:
    ctype = content_type(part)
    if part.is_multipart():
        children = part.get_payload()
        for child in children if isinstance(children, list) else []:
            _attach(child, body)
        return
    content_id = (part.get("Content-ID") and header_text(str(part.get("Content-ID")))) or ""
    content_id = content_id.strip().strip("<>")
    inline = bool(content_id) and disposition(part) != "attachment" and ctype.startswith("image/")
    name = filename(part, ctype)
    if ctype.startswith("message/") and not name.lower().endswith(".eml") and ctype == "message/rfc822":
        name += ".eml"
    body.attachments.append(
        Attachment(filename=name, content_type=ctype, content=payload_bytes(part), content_id=content_id, inline=inline)
    )


def html_for_agents(html: str) -> tuple[str, str]:
    """(sanitized html, its text) of a customer's HTML."""
    clean = sanitize_html(html)
    return clean, html_to_text(clean) if clean else ""
