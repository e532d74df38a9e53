"""Column layouts of call-detail-record CSV files, read from the PBXs' own configuration syntax.

- Asterisk `cdr_csv` (Master.csv) writes a FIXED order (cdr_csv.c): accountcode, src, dst,
  dcontext, clid, channel, dstchannel, lastapp, lastdata, start, answer, end, duration, billsec,
  disposition, amaflags, then uniqueid if `loguniqueid=yes`, userfield if `loguserfield=yes`, and
  peeraccount, linkedid, sequence if `newcdrcolumns=yes`. Which optional columns are present
  is not written anywhere in the file, so it is told per row from the count (see `asterisk_extras`).
- Asterisk `cdr_custom` takes its order from cdr_custom.conf: legacy mappings
  (`Master.csv => ${CSV_QUOTE(${CDR(clid)})},…`, also `${CDR(duration,f)}` and `${EPOCH}`) or
  advanced `fields = clid,"Literal",src,…,start(int64),uniqueid(noquote),ds_type(uservar)`.
- FreeSWITCH `mod_cdr_csv` takes it from a template in cdr_csv.conf.xml:
  `"${caller_id_name}","${caller_id_number}",…`; the `sql` template wraps the row in an INSERT.
- A generic CSV has a header row and a mapping `field=Header` in the account's settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: the fields a call is built from, and the source column names that carry them
ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("uniqueid", "uuid", "id"),
    "src": ("src", "caller_id_number", "ani", "from"),
    "dst": ("dst", "destination_number", "to"),
    "clid": ("clid", "caller_id"),
    "name": ("caller_id_name", "name"),
    "start": ("start", "start_stamp", "epoch"),
    "answer": ("answer", "answer_stamp"),
    "end": ("end", "end_stamp"),
    "duration": ("duration",),
    "billsec": ("billsec",),
    "disposition": ("disposition", "hangup_cause", "status"),
    "lastapp": ("lastapp", "last_app"),
    "channel": ("channel", "channel_name"),
    "dstchannel": ("dstchannel", "bridge_channel"),
    "bleg": ("bleg_uuid",),
    "direction": ("direction",),
    "agent": ("agent",),
    "notes": ("notes",),
    "recording": ("recording",),
    "userfield": ("userfield",),
}
GENERIC_FIELDS = ("id", "from", "to", "name", "start", "answer", "end", "duration", "billsec", "status", "direction",
                  "agent", "recording", "notes")

ASTERISK_BASE = ("accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata",
                 "start", "answer", "end", "duration", "billsec", "disposition", "amaflags")
ASTERISK_NEW = ("peeraccount", "linkedid", "sequence")
_UNIQUEID = re.compile(r"^(?:[\w.-]+-)?\d{9,}\.\d+$")

# The layouts of the shipped sample configs, so an account can name one instead of pasting it.
ASTERISK_CUSTOM_SAMPLES = {
    "legacy": "Master.csv => " + ",".join(
        f"${{CSV_QUOTE(${{CDR({c})}})}}" for c in ("clid", "src", "dst", "dcontext", "channel", "dstchannel", "lastapp",
                                                  "lastdata", "start", "answer", "end", "duration", "billsec",
                                                  "disposition", "amaflags", "accountcode", "uniqueid", "userfield")
    ) + ",${CDR(sequence)}",
    "simple": "Simple.csv => ${CSV_QUOTE(${EPOCH})},${CSV_QUOTE(${CDR(src)})},${CSV_QUOTE(${CDR(dst)})}",
    "advanced": 'fields = clid,"Some Literal",src, dst, dcontext, channel, dstchannel, lastapp, lastdata, start, '
                "answer, end, duration, billsec, disposition, amaflags, accountcode, uniqueid(noquote), userfield, "
                "sequence,ds_type(uservar)",
}
ASTERISK_CUSTOM_SAMPLES["legacy_hires"] = (
    ASTERISK_CUSTOM_SAMPLES["legacy"].replace("CDR(duration)", "CDR(duration,f)").replace("CDR(billsec)", "CDR(billsec,f)")
)
_FS_EXAMPLE = ('"${caller_id_name}","${caller_id_number}","${destination_number}","${context}","${start_stamp}",'
               '"${answer_stamp}","${end_stamp}","${duration}","${billsec}","${hangup_cause}","${uuid}",'
               '"${bleg_uuid}","${accountcode}"')
FREESWITCH_SAMPLES = {
    "example": _FS_EXAMPLE + ',"${read_codec}","${write_codec}"',
    "sql": "INSERT INTO cdr VALUES (" + _FS_EXAMPLE.replace(',"${accountcode}"', ', "${accountcode}"') + ");",
    "snom": _FS_EXAMPLE.replace(',"${accountcode}"', ', "${accountcode}"')
    + ',"${read_codec}","${write_codec}","${sip_user_agent}","${call_clientcode}","${sip_rtp_rxstat}",'
    '"${sip_rtp_txstat}","${sofia_record_file}"',
    "linksys": _FS_EXAMPLE + ',"${read_codec}","${write_codec}","${sip_user_agent}","${sip_p_rtp_stat}"',
    "asterisk": '"${accountcode}","${caller_id_number}","${destination_number}","${context}","${caller_id}",'
    '"${channel_name}","${bridge_channel}","${last_app}","${last_arg}","${start_stamp}","${answer_stamp}",'
    '"${end_stamp}","${duration}","${billsec}","${hangup_cause}","${amaflags}","${uuid}","${userfield}"',
    "opencdrrate": '"${uuid}","${signal_bond}","${direction}","${ani}","${destination_number}","${answer_stamp}",'
    '"${end_stamp}","${billsec}","${accountcode}","${userfield}","${network_addr}",'
    "\"${regex('${original_caller_id_name}'|^.)}\",\"${sip_gateway_name}\"",
}


class LayoutError(ValueError):
    """A template or mapping we cannot use; the message says what to change."""


@dataclass(frozen=True)
class Column:
    #: the source's field name, lower case ("" = a literal or an expression we do not read)
    name: str
    #: time columns: "" (YYYY-MM-DD HH:MM:SS or ISO 8601), "epoch", or a strftime format
    time_format: str = ""


@dataclass(frozen=True)
class Layout:
    kind: str
    #: None for Asterisk cdr-csv (told per row) and generic CSV (from the header row)
    columns: tuple[Column, ...] | None
    #: generic: canonical field → header text
    mapping: tuple[tuple[str, str], ...] = ()
    #: text around each row (FreeSWITCH's sql template)
    prefix: str = ""
    suffix: str = ""

    @property
    def has_header(self) -> bool:
        return self.kind == "generic"

    def describe(self) -> str:
        if self.columns is None:
            return "Asterisk cdr-csv (16 to 21 columns)" if self.kind == "asterisk" else "generic CSV with a header row"
        return f"{len(self.columns)} columns ({self.kind})"

    def time_format(self, name: str) -> str:
        for column in self.columns or ():
            if column.name == name:
                return column.time_format
        return ""


def build(kind: str, template: str = "", column_map: tuple[str, ...] = ()) -> Layout:
    """The layout an account's settings describe; raises LayoutError saying what is wrong."""
    if kind == "asterisk":
        return Layout("asterisk", None)
    if kind == "asterisk_custom":
        text = ASTERISK_CUSTOM_SAMPLES.get(template.strip() or "legacy", template)
        layout = Layout("asterisk_custom", _asterisk_custom(text))
    elif kind == "freeswitch":
        text = FREESWITCH_SAMPLES.get(template.strip() or "example", template)
        prefix, body, suffix = _unwrap(text)
        layout = Layout("freeswitch", _freeswitch(body), prefix=prefix, suffix=suffix)
    elif kind == "generic":
        return Layout("generic", None, mapping=_column_map(column_map))
    else:
        raise LayoutError(f"unknown CDR format {kind!r}")
    _check_usable(layout)
    return layout


def asterisk_extras(extra: list[str]) -> tuple[str, ...] | None:
    """Names of the optional Master.csv columns after the 16 fixed ones, told from their count.

    17 columns is either uniqueid or userfield: a uniqueid looks like '1700000000.42'
    (optionally 'systemname-1700000000.42'), so the value decides.
    """
    n = len(extra)
    first = "uniqueid" if extra and _UNIQUEID.match(extra[0].strip()) else "userfield"
    return {
        0: (),
        1: (first,),
        2: ("uniqueid", "userfield"),
        3: ASTERISK_NEW,
        4: (first, *ASTERISK_NEW),
        5: ("uniqueid", "userfield", *ASTERISK_NEW),
    }.get(n)


def _split_top(text: str, *, braces: bool) -> list[str]:
    """Split on commas outside quotes (and outside ${…} / (…) when `braces`)."""
    parts, depth, quoted, current = [], 0, False, []
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif braces and not quoted and ch in "{(":
            depth += 1
        elif braces and not quoted and ch in "})":
            depth -= 1
        elif ch == "," and depth <= 0 and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def _asterisk_custom(text: str) -> tuple[Column, ...]:
    line = text.strip()
    if "=>" in line:  # "Master.csv => …": the mapping's right-hand side
        line = line.split("=>", 1)[1].strip()
    elif re.match(r"^fields\s*=", line):
        line = line.split("=", 1)[1].strip()
    if not line:
        raise LayoutError("cdr_template is empty: paste a cdr_custom.conf mapping or fields= line")
    columns = []
    if "${" in line:
        for token in _split_top(line, braces=True):
            found = re.search(r"CDR\(\s*(\w+)\s*(?:,\s*([^)]*))?\)", token)
            if found:
                columns.append(Column(found.group(1).lower(), _qualifier_time(found.group(2) or "")))
            elif re.search(r"\$\{EPOCH\}", token):
                columns.append(Column("epoch", "epoch"))
            else:
                columns.append(Column(""))
        return tuple(columns)
    for token in _split_top(line, braces=False):
        token = token.strip()
        if token.startswith('"'):
            columns.append(Column(""))  # a literal
            continue
        found = re.fullmatch(r"(\w+)\s*(?:\(([^)]*)\))?", token)
        if not found:
            raise LayoutError(f"cdr_template: cannot read the field {token!r}")
        qualifiers = (found.group(2) or "").split("^")
        if "uservar" in qualifiers:
            columns.append(Column(found.group(1).lower()))
            continue
        fmt = next((_qualifier_time(q) for q in qualifiers if _qualifier_time(q)), "")
        columns.append(Column(found.group(1).lower(), fmt))
    return tuple(columns)


def _qualifier_time(qualifier: str) -> str:
    q = qualifier.strip()
    if q in ("int64", "double"):
        return "epoch"
    if "%" in q:
        return q.replace("%F", "%Y-%m-%d").replace("%T", "%H:%M:%S")
    return ""


def _unwrap(text: str) -> tuple[str, str, str]:
    """FreeSWITCH's sql template: 'INSERT INTO cdr VALUES (' + row + ');'."""
    match = re.fullmatch(r"\s*(INSERT\s.*?\()(.*)(\)\s*;?)\s*", text, re.S | re.I)
    if match:
        return match.group(1), match.group(2), match.group(3).strip()
    return "", text, ""


def _freeswitch(text: str) -> tuple[Column, ...]:
    if "${" not in text:
        raise LayoutError(
            f"cdr_template {text.strip()[:60]!r} is neither a template of cdr_csv.conf.xml "
            f"({', '.join(FREESWITCH_SAMPLES)}) nor a template text with ${{variables}}"
        )
    columns = []
    for token in _split_top(text, braces=True):
        found = re.fullmatch(r'\s*"?\$\{(\w+)\}"?\s*', token)
        columns.append(Column(found.group(1).lower() if found else ""))
    return tuple(columns)


def _column_map(pairs: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        field, sep, header = pair.partition("=")
        field = field.strip().lower()
        if not sep or not header.strip():
            raise LayoutError(f"column_map: {pair!r} must be field=Column header")
        if field not in GENERIC_FIELDS:
            raise LayoutError(f"column_map: unknown field {field!r} (fields: {', '.join(GENERIC_FIELDS)})")
        mapping[field] = header.strip()
    missing = [f for f in ("from", "start") if f not in mapping]
    if missing:
        raise LayoutError(f"column_map: map the required field(s) {', '.join(missing)} (e.g. from=Caller)")
    if not {"status", "billsec", "answer"} & set(mapping):
        raise LayoutError("column_map: map status, billsec or answer, or a missed call cannot be told from an answered one")
    return tuple(mapping.items())


def _check_usable(layout: Layout) -> None:
    names = {c.name for c in layout.columns or ()}

    def has(field: str) -> bool:
        return bool(names & set(ALIASES[field]))

    if not (has("src") or has("clid")):
        raise LayoutError(f"the {layout.kind} layout has no caller number column (src, caller_id_number, ani)")
    if not (has("start") or has("answer") or has("end")):
        raise LayoutError(f"the {layout.kind} layout has no time column (start, start_stamp)")
    if not (has("disposition") or has("billsec") or has("answer")):
        raise LayoutError(
            f"the {layout.kind} layout has no disposition, billsec or answer column, so a missed call cannot be "
            "told from an answered one"
        )
