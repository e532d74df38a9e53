"""One call, whatever reported it (a CDR row, a CTI hangup, a Twilio callback) → one contract item.

Telephony quirks shared by every source live here:

- Caller numbers arrive national ("07700 900123"), international ("+44…", "0044…"), as SIP
  URIs ("sip:+44…@pbx") or withheld ("anonymous", ""). The customer is found by E.164, so a
  number we cannot put in E.164 is reported (Invalid), never guessed.
- Internal extensions ("201") and the company's own numbers are not customers: a call between
  two of them is not a ticket; a call from one of them to the outside is an agent calling out.
- A call the PBX "answered" is not always a call a person answered (IVR, queue, voicemail): the
  source modules decide `answered`; here it only becomes a missed call or a logged conversation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import phonenumbers

from omnidesk.plugins.contract import (
    Author,
    CallDetails,
    IdentityKind,
    IdentityRef,
    Ignored,
    InboundMessage,
    Invalid,
    ParsedItem,
)

#: what an unanswered call was, in words the agent reads ("busy", "reached voicemail")
MISSED_OUTCOMES = ("no_answer", "busy", "failed", "congestion", "canceled", "abandoned", "voicemail")
#: caller ids that mean "withheld"
WITHHELD = frozenset({"", "anonymous", "unknown", "private", "restricted", "unavailable", "withheld", "0"})


@dataclass(frozen=True)
class Call:
    """A finished call as a source reported it, before deciding who the customer is."""

    call_id: str
    caller: str
    callee: str
    #: when it started ringing (None: the source does not say; the core uses receipt time)
    started_at: datetime | None
    #: a person (not an IVR, queue or voicemail box) took the call
    answered: bool
    #: "answered" or one of MISSED_OUTCOMES
    outcome: str
    talk_s: int = 0
    #: seconds before answer or hang-up (None: the source does not say)
    ring_s: int | None = None
    caller_name: str = ""
    #: "inbound" / "outbound" when the source says so; "" = decide from the numbers
    direction: str = ""
    answered_by: str = ""
    recording_url: str = ""
    notes: str = ""
    #: asterisk, freeswitch, generic, cti, twilio
    source: str = ""
    #: "line 12" for file rows; "" for single events
    where: str = ""


@dataclass(frozen=True)
class Rules:
    """An account's view of its own phone system."""

    default_region: str
    internal_pattern: re.Pattern[str]
    #: the company's own numbers in E.164
    internal_numbers: frozenset[str]


class BadNumber(ValueError):
    pass


def e164(value: str, region: str) -> str:
    """E.164 for a dialled or presented number; raises BadNumber with the reason."""
    raw = strip_uri(value)
    try:
        number = phonenumbers.parse(raw, region.upper() or None)
    except phonenumbers.NumberParseException as exc:
        hint = "" if region or raw.startswith("+") else " (a national number needs the account's default_region)"
        raise BadNumber(f"{value!r} is not a phone number: {exc}{hint}") from None
    if not phonenumbers.is_possible_number(number):
        raise BadNumber(f"{value!r} is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def strip_uri(value: str) -> str:
    """'sip:+4477@pbx;user=phone' → '+4477'; 'tel:+44…' → '+44…'."""
    raw = value.strip()
    lowered = raw.lower()
    for scheme in ("sip:", "sips:", "tel:"):
        if lowered.startswith(scheme):
            raw = raw[len(scheme):]
            break
    return re.split(r"[@;]", raw, maxsplit=1)[0].strip()


def pretty(number: str) -> str:
    """'+447700900123' → '+44 7700 900123' for subjects; the E.164 form when formatting fails."""
    try:
        return phonenumbers.format_number(phonenumbers.parse(number, None), phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    except phonenumbers.NumberParseException:
        return number


def is_internal(value: str, rules: Rules) -> bool:
    raw = strip_uri(value)
    if raw.lower().startswith("client:") or value.strip().lower().startswith("client:"):
        return True  # a Twilio Client (browser) leg is an agent
    if raw and rules.internal_pattern.fullmatch(raw):
        return True
    if rules.internal_numbers:
        try:
            return e164(raw, rules.default_region) in rules.internal_numbers
        except BadNumber:
            return False
    return False


def extension(channel: str) -> str:
    """The extension in a channel name: 'PJSIP/201-0000001a' → '201', 'Local/201@from-queue-…;1' → '201'."""
    match = re.match(r"^[A-Za-z0-9_]+/([^-@/;]+)", channel.strip())
    return match.group(1) if match else ""


def human_seconds(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def to_item(call: Call, rules: Rules) -> ParsedItem:
    """The contract item for one finished call: a message, Ignored (internal, outbound, withheld) or Invalid."""
    where = call.where or f"call {call.call_id}"
    if not call.call_id:
        return Invalid(where, "the call has no unique id")
    caller_internal = is_internal(call.caller, rules)
    callee_internal = is_internal(call.callee, rules) if call.callee.strip() else False
    if caller_internal and callee_internal:
        return Ignored("internal", f"call {call.call_id} between internal extensions {call.caller} → {call.callee}")
    if caller_internal and call.direction == "inbound":
        return Ignored("internal", f"call {call.call_id} from the company's own line {call.caller} to {call.callee or '?'}")
    if caller_internal or call.direction == "outbound":
        # An agent calling out is not a customer writing in: it must not open or reopen a ticket.
        # Call-backs are logged on the ticket (callback_log), which is where they count.
        return Ignored("outbound", f"call {call.call_id} from {call.caller or '?'} to {call.callee or '?'} made by an agent")
    if strip_uri(call.caller).lower() in WITHHELD:
        return Ignored("anonymous", f"call {call.call_id}: caller id withheld, so there is nobody to call back")
    try:
        number = e164(call.caller, rules.default_region)
    except BadNumber as exc:
        return Invalid(where, f"caller {exc}")
    if number in rules.internal_numbers:
        return Ignored("internal", f"call {call.call_id} from the company's own number {number}")
    return _message(call, number)


def _message(call: Call, number: str) -> InboundMessage:
    missed = not call.answered
    name = call.caller_name.strip()
    if name.lower() in WITHHELD or strip_uri(name) == strip_uri(call.caller) or name == number:
        name = ""
    who = f"{name} ({number})" if name else number
    if missed:
        text = f"Missed call from {who}: {_missed_detail(call)}"
        subject = f"Missed call from {name or pretty(number)}"
    else:
        agent = call.answered_by
        by = f" answered by {'ext ' if agent.isdigit() else ''}{agent}" if agent else ""
        text = f"Call from {who}{by}, {human_seconds(call.talk_s)}"
        subject = f"Call from {name or pretty(number)}"
    if call.notes:
        text += f"\nNotes: {call.notes}"
    if call.recording_url:
        text += f"\nRecording: {call.recording_url}"
    metadata = [("call_id", call.call_id), ("call_source", call.source), ("outcome", call.outcome)]
    if call.callee:
        metadata.append(("called_number", call.callee))
    if missed:
        metadata.append(("needs_callback", "true"))
    return InboundMessage(
        external_id=call.call_id,
        event_type="missed_call" if missed else "call",
        # Threads are per customer in the core: every call from this number joins their open ticket.
        thread_key=number,
        author=Author(identity=IdentityRef(IdentityKind.PHONE, number), display_name=name),
        text=text,
        subject=subject,
        sent_at=call.started_at,
        call=CallDetails(
            direction="inbound",
            duration_s=call.talk_s,
            missed=missed,
            answered_by=call.answered_by,
            recording_url=call.recording_url,
            notes=call.notes,
        ),
        metadata=tuple(metadata),
    )


def _missed_detail(call: Call) -> str:
    ring = human_seconds(call.ring_s) if call.ring_s is not None else ""
    return {
        "busy": "line busy",
        "failed": "the call failed",
        "congestion": "network congestion",
        "canceled": f"caller hung up after {ring}" if ring else "caller hung up before anyone answered",
        "abandoned": f"hung up after {ring} without reaching an agent" if ring else "hung up without reaching an agent",
        "voicemail": f"reached voicemail after {ring}" if ring else "reached voicemail",
    }.get(call.outcome, f"rang {ring}" if ring else "not answered")
