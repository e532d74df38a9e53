"""CDR CSV files (Asterisk Master.csv, cdr_custom, FreeSWITCH mod_cdr_csv, generic) → calls.

Quirks handled here, because the PBXs write them this way:

- Dates are the PBX's LOCAL time unless Asterisk has `usegmtime=yes`: naive stamps are read in
  the account's `timezone`; `start(int64)` / `${EPOCH}` columns are Unix seconds (UTC).
- Asterisk marks a call ANSWERED as soon as the dialplan answers it — an IVR, a queue's
  music on hold, a voicemail box. Without a bridged peer (`dstchannel` empty) and with the last
  application one of those, nobody took the call: it is abandoned (or voicemail), so missed.
  FreeSWITCH likewise: billable seconds but no B-leg (`bleg_uuid` empty) means no person answered.
- One call can write several rows sharing its unique id (ring groups, Asterisk 12+ dial
  attempts: NO ANSWER for each phone that rang, ANSWERED for the one that took it). Rows of one
  call are merged into one message: answered if any row was. Chunks are never cut between them.
- Without `loguniqueid` Asterisk writes no id at all: the id is then a hash of the row's caller,
  destination, start and channels, stable across re-imports.
- Row numbers are the FILE's line numbers: a chunk carries the line of its first row in a header.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone, tzinfo

from omnidesk.plugins.contract import Invalid, MalformedPayload

from .layouts import ALIASES, ASTERISK_BASE, Column, Layout, asterisk_extras
from .parsing import Call, extension

LINE_HEADER = "X-Omnidesk-Cdr-Line"
ROWS_HEADER = "X-Omnidesk-Cdr-Rows"

ASTERISK_DISPOSITIONS = {"ANSWERED": "answered", "NO ANSWER": "no_answer", "BUSY": "busy", "FAILED": "failed",
                         "CONGESTION": "congestion"}
#: `disposition(int64)` in cdr_custom: the enum values of ast_cdr_disposition
ASTERISK_DISPOSITION_CODES = {"0": "no_answer", "2": "failed", "4": "busy", "8": "answered", "16": "congestion"}
#: applications that answer a channel without a person on the other end
NOBODY_APPS = frozenset({"queue", "playback", "background", "read", "waitexten", "hangup", "answer", "wait",
                         "musiconhold", "ivr", "agi", "congestion", "busy"})
FREESWITCH_NO_ANSWER = frozenset({"NO_ANSWER", "NO_USER_RESPONSE", "ALLOTTED_TIMEOUT", "PROGRESS_TIMEOUT",
                                  "NO_PICKUP", "RECOVERY_ON_TIMER_EXPIRE"})
FREESWITCH_CAUSES = frozenset("""
UNSPECIFIED UNALLOCATED_NUMBER NO_ROUTE_TRANSIT_NET NO_ROUTE_DESTINATION CHANNEL_UNACCEPTABLE CALL_AWARDED_DELIVERED
NORMAL_CLEARING USER_BUSY NO_USER_RESPONSE NO_ANSWER SUBSCRIBER_ABSENT CALL_REJECTED NUMBER_CHANGED
REDIRECTION_TO_NEW_DESTINATION EXCHANGE_ROUTING_ERROR DESTINATION_OUT_OF_ORDER INVALID_NUMBER_FORMAT FACILITY_REJECTED
RESPONSE_TO_STATUS_ENQUIRY NORMAL_UNSPECIFIED NORMAL_CIRCUIT_CONGESTION NETWORK_OUT_OF_ORDER NORMAL_TEMPORARY_FAILURE
SWITCH_CONGESTION ACCESS_INFO_DISCARDED REQUESTED_CHAN_UNAVAIL PRE_EMPTED FACILITY_NOT_SUBSCRIBED OUTGOING_CALL_BARRED
INCOMING_CALL_BARRED BEARERCAPABILITY_NOTAUTH BEARERCAPABILITY_NOTAVAIL SERVICE_UNAVAILABLE BEARERCAPABILITY_NOTIMPL
CHAN_NOT_IMPLEMENTED FACILITY_NOT_IMPLEMENTED SERVICE_NOT_IMPLEMENTED INVALID_CALL_REFERENCE INCOMPATIBLE_DESTINATION
INVALID_MSG_UNSPECIFIED MANDATORY_IE_MISSING MESSAGE_TYPE_NONEXIST WRONG_MESSAGE IE_NONEXIST INVALID_IE_CONTENTS
WRONG_CALL_STATE RECOVERY_ON_TIMER_EXPIRE MANDATORY_IE_LENGTH_ERROR PROTOCOL_ERROR INTERWORKING SUCCESS
ORIGINATOR_CANCEL CRASH SYSTEM_SHUTDOWN LOSE_RACE MANAGER_REQUEST BLIND_TRANSFER ATTENDED_TRANSFER ALLOTTED_TIMEOUT
USER_CHALLENGE MEDIA_TIMEOUT PICKED_OFF USER_NOT_REGISTERED PROGRESS_TIMEOUT INVALID_GATEWAY GATEWAY_DOWN INVALID_URL
INVALID_PROFILE NO_PICKUP SRTP_READ_ERROR BOWOUT BUSY_EVERYWHERE DECLINE DOES_NOT_EXIST_ANYWHERE NOT_ACCEPTABLE
UNWANTED NO_IDENTITY BAD_IDENTITY_INFO UNSUPPORTED_CERTIFICATE INVALID_IDENTITY STALE_DATE
""".split())
GENERIC_STATUSES = {
    "answered": "answered", "completed": "answered", "connected": "answered", "ok": "answered",
    "missed": "no_answer", "no answer": "no_answer", "noanswer": "no_answer", "unanswered": "no_answer",
    "not answered": "no_answer", "busy": "busy", "failed": "failed", "congestion": "congestion",
    "canceled": "canceled", "cancelled": "canceled", "abandoned": "abandoned", "voicemail": "voicemail",
    "rejected": "failed",
}
GENERIC_DIRECTIONS = {"in": "inbound", "inbound": "inbound", "incoming": "inbound", "out": "outbound",
                      "outbound": "outbound", "outgoing": "outbound", "internal": "internal", "local": "internal"}


@dataclass(frozen=True)
class Options:
    """What the account's settings say about its files."""

    layout: Layout
    tz: tzinfo
    delimiter: str = ","
    date_format: str = ""
    recording_column: str = ""
    recording_base_url: str = ""


class RowError(ValueError):
    pass


# --- records: rows with their real line numbers --------------------------------------------------------


def decode(body: bytes) -> tuple[str, str]:
    """(text, encoding): UTF-8 (BOM dropped) or, failing that, Latin-1, which every byte decodes as."""
    try:
        return body.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        return body.decode("latin-1"), "latin-1"


def records(text: str, first_line: int = 1) -> Iterator[tuple[int, str]]:
    """(line number, record text) for every non-blank line.

    One line is one row: neither Asterisk nor FreeSWITCH writes a line break inside a field, and
    reading a stray unclosed quote across lines would swallow the good rows after it.
    """
    for n, line in enumerate(text.splitlines(keepends=True)):
        if line.strip():
            yield first_line + n, line


def fields_of(record: str, options: Options) -> list[str]:
    layout = options.layout
    text = record.strip("\r\n")
    if layout.prefix:
        stripped = text.strip()
        if not (stripped.startswith(layout.prefix) and stripped.endswith(layout.suffix)):
            raise RowError(f"expected a row of the form {layout.prefix}…{layout.suffix}")
        text = stripped[len(layout.prefix) : len(stripped) - len(layout.suffix)]
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=options.delimiter, quotechar='"', skipinitialspace=True,
                               strict=False))
    except csv.Error as exc:
        raise RowError(f"unreadable CSV: {exc}") from None
    if len(rows) != 1:
        raise RowError("unreadable CSV: a row must be one record")
    return [value.strip() for value in rows[0]]


def named(values: list[str], options: Options, header: list[str] | None) -> dict[str, str]:
    """A row as source column name → value, after checking its column count."""
    layout = options.layout
    if layout.kind == "generic":
        assert header is not None
        if len(values) != len(header):
            raise RowError(f"expected {len(header)} columns (as the header row), got {len(values)}")
        by_header = {h.strip().lower(): v for h, v in zip(header, values)}
        return {field: by_header[h.lower()] for field, h in layout.mapping}
    if layout.columns is None:  # Asterisk cdr-csv
        extras = asterisk_extras(values[len(ASTERISK_BASE):]) if len(values) >= len(ASTERISK_BASE) else None
        if extras is None:
            raise RowError(f"expected 16 to 21 columns (Asterisk cdr-csv Master.csv), got {len(values)}")
        return dict(zip((*ASTERISK_BASE, *extras), values))
    if len(values) != len(layout.columns):
        raise RowError(f"expected {layout.describe()}, got {len(values)}")
    return {c.name: v for c, v in zip(layout.columns, values) if c.name}


def check_header(header: list[str], layout: Layout) -> None:
    present = {h.strip().lower() for h in header}
    missing = [f"{h!r} (for {field})" for field, h in layout.mapping if h.lower() not in present]
    if missing:
        raise MalformedPayload(f"the header row has no column {', '.join(missing)}; it has: {', '.join(header)}")


# --- one row → one call ----------------------------------------------------------------------------------


def _get(row: dict[str, str], field: str) -> str:
    for name in ALIASES[field]:
        if row.get(name):
            return row[name]
    return ""


def row_key(row: dict[str, str]) -> str:
    """The call's unique id, or a stable hash of the row when the PBX logs none."""
    given = _get(row, "id")
    if given:
        return given
    basis = "|".join(row.get(k, "") for k in ("src", "caller_id_number", "dst", "destination_number", "start",
                                               "start_stamp", "epoch", "channel", "dstchannel", "from", "to"))
    return "cdr-" + hashlib.sha256(basis.encode()).hexdigest()[:24]


def parse_time(value: str, fmt: str, options: Options, field: str) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    fmt = fmt or options.date_format
    try:
        if fmt == "epoch" or (not fmt and value.replace(".", "", 1).isdigit()):
            stamp = float(value)
            if stamp <= 0:  # Asterisk writes 0 / empty for "never answered"
                return None
            return datetime.fromtimestamp(stamp, timezone.utc)
        parsed = datetime.strptime(value, fmt) if fmt else datetime.fromisoformat(value.replace("Z", "+00:00"))
        if not fmt and len(value) <= 10:
            raise ValueError("a date without a time")
    except (ValueError, OverflowError, OSError) as exc:
        raise RowError(f"{field}: {value!r} is not a date and time ({exc})") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=options.tz)
    return parsed.astimezone(timezone.utc)


def _seconds(value: str, field: str) -> int | None:
    if not value.strip():
        return None
    try:
        number = float(value)
    except ValueError:
        raise RowError(f"{field}: {value!r} is not a number of seconds") from None
    if number < 0 or number != number or number > 10**8:
        raise RowError(f"{field}: {value!r} is not a number of seconds")
    return int(round(number))


def row_call(row: dict[str, str], options: Options, line: int, internal: Callable[[str], bool]) -> Call:
    """One CDR row as a Call; raises RowError with the reason."""
    layout = options.layout
    fmt = layout.time_format
    start = parse_time(_get(row, "start"), fmt("start_stamp") or fmt("start") or fmt("epoch"), options, "start")
    answer = parse_time(_get(row, "answer"), fmt("answer") or fmt("answer_stamp"), options, "answer")
    end = parse_time(_get(row, "end"), fmt("end") or fmt("end_stamp"), options, "end")
    started = start or answer or end  # FreeSWITCH's opencdrrate template has no start stamp
    if started is None:
        raise RowError("start: missing")
    duration = _seconds(_get(row, "duration"), "duration")
    billsec = _seconds(_get(row, "billsec"), "billsec")
    if duration is None and end is not None:
        duration = max(0, int((end - started).total_seconds()))
    if billsec is None:
        billsec = max(0, int((end - answer).total_seconds())) if (answer and end) else (duration or 0) if answer else 0
    outcome, answered = _outcome(row, layout.kind, billsec, answer is not None)
    caller, name = _get(row, "src"), _get(row, "name")
    clid = _get(row, "clid")
    if clid:
        parsed_name, number = _split_clid(clid)
        caller = caller or number
        name = name or parsed_name
    callee = _get(row, "dst")
    agent = ""
    if answered:  # the phone that merely rang did not answer it
        agent = _get(row, "agent") or extension(_get(row, "dstchannel"))
        if not agent and internal(callee):
            agent = callee
    if answered and answer is not None:
        ring = max(0, int((answer - started).total_seconds()))
    else:
        ring = duration if duration is not None else None
    direction = ""
    raw_direction = row.get("direction", "") if layout.kind == "generic" else ""
    if raw_direction:
        direction = GENERIC_DIRECTIONS.get(raw_direction.strip().lower(), "")
        if not direction:
            raise RowError(f"direction: {raw_direction!r} is not in, out or internal")
    recording = _recording(row, options)
    notes = _get(row, "notes")
    if not notes and layout.kind != "generic" and options.recording_column != "userfield":
        notes = row.get("userfield", "")
    return Call(
        call_id=row_key(row), caller=caller, callee=callee, started_at=started, answered=answered, outcome=outcome,
        talk_s=billsec if answered else 0, ring_s=ring, caller_name=name, direction=direction, answered_by=agent,
        recording_url=recording, notes=notes, source=layout.kind.split("_")[0], where=f"line {line}",
    )


def _outcome(row: dict[str, str], kind: str, billsec: int, has_answer: bool) -> tuple[str, bool]:
    raw = _get(row, "disposition").strip()
    if kind.startswith("asterisk"):
        outcome = ASTERISK_DISPOSITIONS.get(raw.upper()) or ASTERISK_DISPOSITION_CODES.get(raw)
        if outcome is None:
            raise RowError(f"disposition: {raw!r} is not one of {', '.join(ASTERISK_DISPOSITIONS)}")
        if outcome != "answered":
            return outcome, False
        app = _get(row, "lastapp").strip().lower()
        bridged = bool(_get(row, "dstchannel"))
        if not bridged and app == "voicemail":
            return "voicemail", False
        if not bridged and app in NOBODY_APPS:
            return "abandoned", False
        return ("answered", True) if billsec > 0 else ("abandoned", False)
    if kind == "freeswitch":
        cause = raw.upper()
        if cause and cause not in FREESWITCH_CAUSES:
            raise RowError(f"hangup_cause: {raw!r} is not a FreeSWITCH hangup cause")
        if billsec > 0 and cause in ("", "NORMAL_CLEARING", "SUCCESS", "NORMAL_UNSPECIFIED", "BLIND_TRANSFER",
                                     "ATTENDED_TRANSFER", "ORIGINATOR_CANCEL", "MEDIA_TIMEOUT", "ALLOTTED_TIMEOUT",
                                     "LOSE_RACE", "MANAGER_REQUEST"):
            if "bleg_uuid" in row and not row["bleg_uuid"]:
                app = _get(row, "lastapp").strip().lower()
                return ("voicemail" if app == "voicemail" else "abandoned"), False
            return "answered", True
        if cause in ("USER_BUSY", "BUSY_EVERYWHERE"):
            return "busy", False
        if cause == "ORIGINATOR_CANCEL":
            return "canceled", False
        if cause in ("NORMAL_CIRCUIT_CONGESTION", "SWITCH_CONGESTION"):
            return "congestion", False
        if cause in FREESWITCH_NO_ANSWER or cause in ("NORMAL_CLEARING", ""):
            return "no_answer", False
        return "failed", False
    # generic
    if raw:
        outcome = GENERIC_STATUSES.get(" ".join(raw.lower().replace("_", " ").replace("-", " ").split()))
        if outcome is None:
            raise RowError(f"status: {raw!r} is not one of answered, missed, busy, failed, canceled, abandoned, voicemail")
        if outcome != "answered":
            return outcome, False
        return ("answered", True) if (billsec > 0 or not row.get("billsec")) else ("abandoned", False)
    return ("answered", True) if billsec > 0 else ("no_answer", False)


def _split_clid(clid: str) -> tuple[str, str]:
    """'"Alice Smith" <07700900123>' → ('Alice Smith', '07700900123')."""
    text = clid.strip()
    if "<" in text and text.endswith(">"):
        name, number = text[:-1].rsplit("<", 1)
        return name.strip().strip('"').strip(), number.strip()
    return "", text


def _recording(row: dict[str, str], options: Options) -> str:
    column = options.recording_column.strip().lower()
    value = row.get(column, "") if column else _get(row, "recording")
    value = value.strip()
    if not value or value.lower().startswith(("http://", "https://")):
        return value
    if options.recording_base_url:
        return options.recording_base_url.rstrip("/") + "/" + value.replace("\\", "/").rsplit("/", 1)[-1]
    return value


def merge(calls: list[Call]) -> Call:
    """Rows of one call: answered if any row was (by that row's agent), from the earliest start."""
    answered = [c for c in calls if c.answered]
    best = max(answered, key=lambda c: c.talk_s) if answered else calls[0]
    ring = max((c.ring_s for c in calls if c.ring_s is not None), default=None)
    return replace(best, started_at=min(c.started_at for c in calls), ring_s=best.ring_s if answered else ring,
                   where=calls[0].where)


def parse_chunk(
    body: bytes, options: Options, first_line: int, internal: Callable[[str], bool]
) -> list[Call | Invalid]:
    """Every row of a chunk as a Call (rows of one call merged) or an Invalid with its line number."""
    text, _ = decode(body)
    if not text.strip():
        raise MalformedPayload("the CDR file is empty")
    out: list[Call | Invalid] = []
    by_id: dict[str, list[Call]] = {}
    header: list[str] | None = None
    # A header-row file's chunks repeat the header above their first row, which is `first_line`.
    start = first_line - 1 if options.layout.has_header else first_line
    for line, record in records(text, start):
        if options.layout.has_header and header is None:
            try:
                header = fields_of(record, options)
            except RowError as exc:
                raise MalformedPayload(f"the header row is unreadable: {exc}") from None
            check_header(header, options.layout)
            continue
        try:
            row = named(fields_of(record, options), options, header)
            call = row_call(row, options, line, internal)
        except RowError as exc:
            out.append(Invalid(f"line {line}", str(exc)))
            continue
        if call.call_id not in by_id:
            by_id[call.call_id] = []
            out.append(call)  # placeholder, replaced by the merged call below
        by_id[call.call_id].append(call)
    if options.layout.has_header and header is None:
        raise MalformedPayload("the file has no header row")
    return [merge(by_id[item.call_id]) if isinstance(item, Call) else item for item in out]


def split(data: bytes, options: Options, chunk_rows: int) -> list[tuple[bytes, int, int]]:
    """(chunk body, file line of its first row, rows) — chunks of about `chunk_rows` rows.

    A generic file's header row is repeated at the top of every chunk. A chunk is never cut
    between rows of the same call.
    """
    text, encoding = decode(data)
    items = list(records(text))
    header_text = ""
    if options.layout.has_header and items:
        header_text = items[0][1]
        if not header_text.endswith(("\n", "\r")):
            header_text += "\n"
        items = items[1:]
    chunks: list[tuple[bytes, int, int]] = []
    current: list[tuple[int, str]] = []
    last_key = ""
    for line, record in items:
        key = _quick_key(record, options)
        if len(current) >= chunk_rows and key != last_key:
            chunks.append(_chunk(header_text, current, encoding))
            current = []
        current.append((line, record))
        last_key = key
    if current or not chunks:
        chunks.append(_chunk(header_text, current, encoding))
    return chunks


def _chunk(header_text: str, rows: list[tuple[int, str]], encoding: str) -> tuple[bytes, int, int]:
    body = header_text + "".join(r if r.endswith(("\n", "\r")) else r + "\n" for _, r in rows)
    return body.encode(encoding), rows[0][0] if rows else 1, len(rows)


def _quick_key(record: str, options: Options) -> str:
    if options.layout.has_header:
        return record  # generic files are not known to repeat ids on adjacent rows; cut anywhere
    try:
        return row_key(named(fields_of(record, options), options, None))
    except RowError:
        return record


__all__ = ["Column", "LINE_HEADER", "ROWS_HEADER", "Options", "parse_chunk", "split"]
