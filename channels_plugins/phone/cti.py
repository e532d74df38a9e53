"""Live call events: our CTI JSON (newCall / answer / hangup) and Twilio status callbacks.

Twilio quirks, from its request-validation rules and callback reference:

- `X-Twilio-Signature` = base64 HMAC-SHA1(auth token, URL + every POST parameter name and value,
  names sorted, repeated names' values sorted and de-duplicated). The URL is the one configured
  in Twilio, query string included; Twilio itself signs it sometimes with and sometimes without
  the default port (:443 / :80), so both are accepted.
- JSON bodies are not in the signed string: the URL carries `bodySHA256` (hex SHA-256 of the
  body) instead, and the signature covers the URL alone.
- `CallStatus=completed` means the call was answered — possibly by the TwiML app (IVR), not a
  person. A <Dial> action callback's `DialCallStatus` says whether the agent answered; when
  present it decides.
- Only final statuses (completed, busy, no-answer, failed, canceled) describe a call; queued,
  ringing and in-progress are progress reports.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit, urlunsplit

from omnidesk.plugins.payloads import iso_timestamp
from omnidesk.plugins.contract import MalformedPayload, UnsupportedEvent

from .parsing import Call

CTI_EVENTS = ("newCall", "answer", "hangup")
TWILIO_FINAL = {"completed": "answered", "busy": "busy", "no-answer": "no_answer", "failed": "failed",
                "canceled": "canceled"}
TWILIO_PROGRESS = frozenset({"queued", "initiated", "ringing", "in-progress"})
TWILIO_HEADER = "X-Twilio-Signature"


# --- Twilio signatures ----------------------------------------------------------------------------------


def twilio_signature(token: str, url: str, params: Sequence[tuple[str, str]] | Mapping[str, str] = ()) -> str:
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    values: dict[str, set[str]] = {}
    for name, value in pairs:
        values.setdefault(name, set()).add(value)
    signed = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    return base64.b64encode(hmac.new(token.encode(), signed.encode("utf-8"), hashlib.sha1).digest()).decode()


def url_variants(url: str) -> list[str]:
    """The URL as given, without and with its scheme's default port."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.username or parts.password:
        userinfo = parts.netloc.rsplit("@", 1)[0] + "@"
    else:
        userinfo = ""
    default = 443 if parts.scheme == "https" else 80
    bare = urlunsplit(parts._replace(netloc=f"{userinfo}{host}" if parts.port in (None, default) else parts.netloc))
    ported = urlunsplit(parts._replace(netloc=f"{userinfo}{host}:{parts.port or default}"))
    return list(dict.fromkeys([url, bare, ported]))


def twilio_valid(token: str, url: str, body: bytes, signature: str) -> bool:
    """Twilio's own rule (twilio-python RequestValidator.validate), in constant time per candidate."""
    query = parse_qs(urlsplit(url).query)
    if "bodySHA256" in query:
        digest = hashlib.sha256(body).hexdigest()
        if not hmac.compare_digest(digest, query["bodySHA256"][0]):
            return False
        params: list[tuple[str, str]] = []
    else:
        try:
            params = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            return False
    ok = False
    for candidate in url_variants(url):
        ok |= hmac.compare_digest(twilio_signature(token, candidate, params).encode(), signature.strip().encode())
    return ok


# --- Twilio status callbacks ----------------------------------------------------------------------------


def twilio_params(body: bytes, content_type: str) -> dict[str, str]:
    text = _utf8(body)
    if text.lstrip().startswith("{") or "json" in content_type:
        data = _json_object(text)
        return {str(k): "" if v is None else str(v) for k, v in data.items() if not isinstance(v, (dict, list))}
    return dict(parse_qsl(text, keep_blank_values=True))


def twilio_call(params: Mapping[str, str]) -> Call | str:
    """A final status as a Call; a progress status as the reason it is not one."""
    sid = params.get("CallSid", "").strip()
    if not sid:
        raise MalformedPayload("CallSid: required")
    status = params.get("CallStatus", "").strip().lower()
    if status in TWILIO_PROGRESS:
        return f"call {sid} is {status}; it is logged when it ends"
    if status not in TWILIO_FINAL:
        raise UnsupportedEvent(f"CallStatus {status!r} is not a Twilio call status")
    outcome = TWILIO_FINAL[status]
    dial = params.get("DialCallStatus", "").strip().lower()
    if dial:
        outcome = TWILIO_FINAL.get(dial, "no_answer") if dial != "answered" else "answered"
    talk = _int(params.get("DialCallDuration") or params.get("CallDuration") or "0", "CallDuration")
    answered = outcome == "answered"
    at = _rfc2822(params.get("Timestamp", ""))
    direction = params.get("Direction", "").strip().lower()
    return Call(
        call_id=sid,
        caller=params.get("From", "").strip(),
        callee=params.get("To", "").strip(),
        started_at=(at - timedelta(seconds=talk)) if (at and answered) else at,  # type: ignore[arg-type]
        answered=answered,
        outcome=outcome,
        talk_s=talk if answered else 0,
        caller_name=params.get("CallerName", "").strip(),
        direction="outbound" if direction.startswith("outbound") else "inbound" if direction == "inbound" else "",
        recording_url=params.get("RecordingUrl", "").strip(),
        source="twilio",
    )


# --- our CTI JSON ----------------------------------------------------------------------------------------


def cti_event(body: bytes) -> dict[str, Any]:
    data = _json_object(_utf8(body))
    event = data.get("event")
    if not isinstance(event, str) or event not in CTI_EVENTS:
        raise UnsupportedEvent(f"event {event!r} is not one of: {', '.join(CTI_EVENTS)}")
    _text(data, "call_id")
    return data


def cti_call(data: Mapping[str, Any]) -> Call:
    """A hangup: the call's final state (missed = nobody answered)."""
    at = iso_timestamp(data, "at", required=True)
    assert at is not None
    duration = _int(data.get("duration_s", 0), "duration_s")
    answered = data.get("answered", duration > 0)
    if not isinstance(answered, bool):
        raise MalformedPayload(f"answered: must be true or false, got {answered!r}")
    started = iso_timestamp(data, "started_at") or at - timedelta(seconds=duration)
    direction = data.get("direction", "")
    if direction not in ("", "in", "out"):
        raise MalformedPayload(f"direction: must be 'in' or 'out', got {direction!r}")
    ring = max(0, int((at - started).total_seconds()) - (duration if answered else 0))
    return Call(
        call_id=_text(data, "call_id"),
        caller=_text(data, "from"),
        callee=_text(data, "to", required=False),
        started_at=started,
        answered=answered,
        outcome="answered" if answered else _text(data, "outcome", required=False) or "no_answer",
        talk_s=duration if answered else 0,
        ring_s=ring,
        caller_name=_text(data, "caller_name", required=False),
        direction={"in": "inbound", "out": "outbound"}.get(direction, ""),
        answered_by=_text(data, "agent", required=False) if answered else "",
        recording_url=_text(data, "recording_url", required=False),
        notes=_text(data, "notes", required=False),
        source="cti",
    )


# --- small validators ----------------------------------------------------------------------------------


def _utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedPayload(f"body is not UTF-8 (byte {exc.start})") from None


def _json_object(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MalformedPayload(f"body is not JSON we can read: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedPayload(f"body must be a JSON object, got {type(data).__name__}")
    return data


def _text(data: Mapping[str, Any], key: str, *, required: bool = True, limit: int = 2000) -> str:
    value = data.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and key == "call_id":
        value = str(value)
    if value is None or value == "":
        if required:
            raise MalformedPayload(f"{key}: required")
        return ""
    if not isinstance(value, str):
        raise MalformedPayload(f"{key}: must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise MalformedPayload(f"{key}: {len(value)} characters is over the limit of {limit}")
    return value.strip()


def _int(value: Any, key: str) -> int:
    if isinstance(value, str):
        try:
            value = int(value.strip() or "0")
        except ValueError:
            raise MalformedPayload(f"{key}: {value!r} is not a whole number of seconds") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 10**8:
        raise MalformedPayload(f"{key}: {value!r} is not a whole number of seconds")
    return value


def _rfc2822(value: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        raise MalformedPayload(f"Timestamp: {value!r} is not an RFC 2822 date") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)
