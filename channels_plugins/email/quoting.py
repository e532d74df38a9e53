"""The part of a reply a person just wrote: quoted history and signature folded away.

Every client marks the quoted mail differently and in its user's language: "On <date>, <name>
wrote:" (Gmail, Apple), "-----Original Message-----" and a From:/Sent:/To: block (Outlook),
a line of underscores (Outlook on iOS), "<date> <name> <addr>:" (Japanese and Russian Gmail),
or just lines starting with ">". We cut at the first such marker that leaves something above
it; a marker on the first line (an inline reply, a top-posted header) does not cut. Then a
signature ("-- " and what follows, or a trailing "Sent from my iPhone") is split off.
Heuristics, checked against the talon and reply-parser corpora (deviations in doc.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WROTE = (
    r"wrote|writes|a écrit|schrieb|escribió|escreveu|ha scritto|scrisse|skrev|schreef|napisał\(a\)|napisał|napisala"
    r"|kirjoitti|написал\(а\)|написал|написала|írta|yazdı|έγραψε|napsal|scris|rašė|kirjutas|hat geschrieben"
)
#: "On Tue, 3 Apr 2012 at 16:19, Bob <bob@example.com> wrote:" and its translations, on up to 3 lines
_WROTE_LINE = re.compile(rf"^.{{0,300}}?(\b|\s)({_WROTE})\s*:\s*$", re.I)
_ON_LEADS = re.compile(
    r"^\s*(on|le|am|el|em|il|den|op|dnia|w dniu|в|dne|pe|la|ma|ti|to|ke|ons|på)\b", re.I
)
#: "2022年1月1日(金) 9:00 田中太郎 <taro@example.com>:" / "ср, 30 апр. 2025 г. в 15:19, John <j@x.com>:"
_DATE_ADDR_COLON = re.compile(r"^.{0,120}\d.{0,200}<[^<>\s]+@[^<>\s]+>\s*:\s*$")
_ORIGINAL = re.compile(
    r"^\s*[-_=*]{2,}\s*(original message|ursprüngliche nachricht|message d'origine|mensaje original|"
    r"messaggio originale|mensagem original|oorspronkelijk bericht|originalmeddelande|oprindelig meddelelse|"
    r"opprinnelig melding|alkuperäinen viesti|исходное сообщение|wiadomość oryginalna|původní zpráva|"
    r"reply message|original)\s*[-_=*]{2,}\s*$",
    re.I,
)
_FORWARD = re.compile(
    r"^\s*(-{2,}\s*(forwarded message|weitergeleitete nachricht|message transféré|mensaje reenviado|"
    r"mensagem encaminhada|messaggio inoltrato|doorgestuurd bericht|videresendt meddelelse|vidarebefordrat meddelande)"
    r"\s*-{2,}|begin forwarded message:|anfang der weitergeleiteten nachricht:|début du message réexpédié :?)\s*$",
    re.I,
)
#: Zoho: "---- On Wed, 24 Feb 2021 14:02:50 +0530 john@gmail.com wrote ----"
_ZOHO = re.compile(r"^-{2,}\s*.{0,200}\b(" + _WROTE + r")\s*-{2,}\s*$", re.I)
_UNDERSCORES = re.compile(r"^\s*_{20,}\s*$")
_FROM_FIELD = re.compile(
    r"^\s*\*?(from|von|de|fra|van|från|od|lähettäjä|от|da|mittente|feladó|kimden)\s*\*?\s*:", re.I
)
_OTHER_FIELD = re.compile(
    r"^\s*\*?(sent|date|to|subject|cc|gesendet|datum|an|betreff|envoyé|date|à|objet|enviado|para|asunto|"
    r"sendt|til|emne|verzonden|aan|onderwerp|skickat|till|ämne|wysłano|do|temat|lähetetty|vastaanottaja|aihe|"
    r"отправлено|кому|тема|inviato|oggetto|a|data|assunto)\s*\*?\s*:",
    re.I,
)
_SIGNATURE_DELIM = re.compile(r"^(-- ?|--|__)\s*$")
_MOBILE = re.compile(
    r"^\s*(sent from my |sent from (outlook|yahoo|mail for windows)|get outlook for |von meinem .* gesendet|"
    r"envoyé de mon |envoyé à partir de |enviado desde mi |inviato da |verzonden met |skickat från min |sendt fra min |"
    r"wysłane z |отправлено с |sent with |sent via )",
    re.I,
)

#: compiled once: _quote_start tries them on every line, up to three times
_SPACE_AFTER_LT = re.compile(r"<\s+")
_SPACE_BEFORE_GT = re.compile(r"\s+>")
_DIGIT = re.compile(r"\d")


@dataclass(frozen=True)
class Reply:
    #: the new text, without quoted history or signature
    visible: str
    signature: str
    #: the quoted history (everything from the first quote marker on)
    quoted: str


def _is_quote(line: str) -> bool:
    return line.lstrip().startswith(">")


def _quote_start(lines: list[str]) -> int | None:
    """Index of the first line of quoted history, or None."""
    n = len(lines)
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            continue
        if _ORIGINAL.match(stripped):
            return i
        if _UNDERSCORES.match(stripped) and any(_FROM_FIELD.match(lines[j]) for j in range(i + 1, min(n, i + 4))):
            return i
        if _FROM_FIELD.match(stripped):
            fields = sum(1 for j in range(i + 1, min(n, i + 6)) if _OTHER_FIELD.match(lines[j]))
            if fields >= 2:
                return i
        if _FORWARD.match(stripped):
            return None  # what follows a forward marker is the content, not history
        if _ZOHO.match(stripped):
            return i
        # "On ... wrote:" may be wrapped over two or three lines by the client (never across a blank line)
        for span in (1, 2, 3):
            chunk = lines[i : i + span]
            if len(chunk) < span or (span > 1 and not all(x.strip() for x in chunk)):
                break
            joined = _SPACE_AFTER_LT.sub("<", _SPACE_BEFORE_GT.sub(">", " ".join(x.strip() for x in chunk)))
            led = bool(_ON_LEADS.match(joined))
            dated = bool(_DIGIT.search(joined[:40]))
            if _WROTE_LINE.match(joined) and (led or dated or span == 1 and "@" in joined):
                return i
            if _DATE_ADDR_COLON.match(joined) and (span == 1 or led or dated):
                return i
        if _is_quote(line) and _all_quoted_after(lines, i):
            return i
    return None


def _all_quoted_after(lines: list[str], start: int) -> bool:
    """A trailing block of '>' lines (an inline reply interleaves, and keeps its quotes)."""
    return all(_is_quote(x) or not x.strip() for x in lines[start:])


def _signature_start(lines: list[str]) -> int | None:
    for i in range(len(lines) - 1, -1, -1):
        if _SIGNATURE_DELIM.match(lines[i]) and len(lines) - i <= 15:
            return i
    tail = [i for i, x in enumerate(lines) if x.strip()]
    if tail and _MOBILE.match(lines[tail[-1]]):
        return tail[-1]
    return None


def split_reply(text: str) -> Reply:
    """(visible, signature, quoted) of a plain-text mail body."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    start = _quote_start(lines)
    # A marker with nothing new above it (an inline reply, a forwarded header first) does not cut.
    if start is not None and not "\n".join(lines[:start]).strip():
        rest = _quote_start(lines[start + 1 :])
        start = None if rest is None else start + 1 + rest
        if start is not None and not "\n".join(lines[:start]).strip():
            start = None
    head, quoted = (lines[:start], lines[start:]) if start is not None else (lines, [])
    sig = _signature_start(head)
    signature: list[str] = []
    if sig is not None and "\n".join(head[:sig]).strip():
        head, signature = head[:sig], head[sig:]
    return Reply(
        visible="\n".join(head).strip(),
        signature="\n".join(signature).strip(),
        quoted="\n".join(quoted).strip(),
    )
