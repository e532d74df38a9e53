"""The phone channel: call logs (CDR files), CTI call events and Twilio callbacks become tickets.

It cannot send: replying on a phone ticket is logging a call-back (tickets.replies.callback_log).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from omnidesk.plugins.config import ConfigSchema, Secret, setting
from omnidesk.plugins.contract import (
    Capabilities,
    ChannelPlugin,
    ConfigInvalid,
    DemoAccount,
    Feature,
    Headers,
    Ignored,
    Invalid,
    MalformedPayload,
    ParsedItem,
    RawEvent,
    SignatureInvalid,
    WebhookRequest,
    WebhookResponse,
    hmac_sha256,
    signatures_match,
)

from omnidesk.plugins.payloads import JSON_TYPES, content_type_check

from . import cdr, cti, layouts
from .parsing import BadNumber, Call, Rules, e164, is_internal, to_item

SIGNATURE_HEADER = "X-Omnidesk-Signature"
#: Twilio posts its callbacks as a form (or JSON, signed through the URL's bodySHA256)
FORM = "application/x-www-form-urlencoded"
FORMATS = ("asterisk", "asterisk_custom", "freeswitch", "generic")


def sign(secret: str, body: bytes) -> str:
    """The CTI webhook signature: `sha256=<hex HMAC-SHA256(secret, body)>` (as the API channel)."""
    return "sha256=" + hmac_sha256(secret, body).hex()


@dataclass(frozen=True)
class PhoneConfig(ConfigSchema):
    secret: Secret | None = setting(None, help="CTI webhooks: X-Omnidesk-Signature HMAC-SHA256 secret (empty: none accepted)")
    twilio_auth_token: Secret | None = setting(None, help="Twilio status callbacks: the account's auth token")
    twilio_url: str = setting("", help="the status callback URL exactly as set in Twilio, if a proxy changes it "
                                       "(empty: the URL the request arrived at)")
    default_region: str = setting("", help="ISO country of national numbers (GB: 07700 900123 → +447700900123)")
    timezone: str = setting("UTC", help="IANA time zone of CDR dates (Asterisk writes local time unless usegmtime=yes)")
    internal_pattern: str = setting(r"\d{2,5}", help="regular expression (whole value) of internal extensions")
    internal_numbers: tuple[str, ...] = setting((), help="the company's own numbers (agents' mobiles, other sites)")
    cdr_format: Literal["asterisk", "asterisk_custom", "freeswitch", "generic"] = setting(
        "asterisk", help="layout of imported CDR files"
    )
    cdr_template: str = setting("", help="asterisk_custom: a cdr_custom.conf mapping or fields= line, or legacy, "
                                         "legacy_hires, advanced; freeswitch: a cdr_csv.conf template name "
                                         "(example, sql, snom, linksys, asterisk, opencdrrate) or its text")
    column_map: tuple[str, ...] = setting((), help="generic: field=Column header pairs; fields: "
                                                   + ", ".join(layouts.GENERIC_FIELDS))
    csv_delimiter: str = setting(",", help="field separator of CDR files")
    date_format: str = setting("", help="strptime format of dates in generic files (empty: ISO 8601 or Unix seconds)")
    recording_column: str = setting("", help="column holding the recording (userfield, sofia_record_file, a header)")
    recording_base_url: str = setting("", help="prefix for recordings given as file names")
    chunk_rows: int = setting(500, help="rows per stored batch when a file is imported")

    def __post_init__(self) -> None:
        problems = []
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"timezone: {self.timezone!r} is not an IANA time zone such as Europe/London")
        try:
            re.compile(self.internal_pattern)
        except (re.error, OverflowError, RecursionError) as exc:  # a{99999999999} overflows, not re.error
            problems.append(f"internal_pattern: {exc}")
        if self.default_region and not (len(self.default_region) == 2 and self.default_region.isalpha()):
            problems.append("default_region: must be a two-letter ISO country code such as GB")
        for number in self.internal_numbers:
            try:
                e164(number, self.default_region)
            except BadNumber as exc:
                problems.append(f"internal_numbers: {exc}")
        if len(self.csv_delimiter) != 1:
            problems.append("csv_delimiter: must be one character")
        if not 1 <= self.chunk_rows <= 100_000:
            problems.append("chunk_rows: must be between 1 and 100000")
        try:
            layouts.build(self.cdr_format, self.cdr_template, self.column_map)
        except layouts.LayoutError as exc:
            problems.append(f"cdr_template/column_map: {exc}")
        if problems:
            raise ConfigInvalid("PhoneConfig: " + "; ".join(problems))


class PhoneChannel(ChannelPlugin[PhoneConfig]):
    kind = "phone"
    label = "Phone"
    capabilities = Capabilities(features=frozenset({Feature.PUSH}))
    config_schema = PhoneConfig
    event_types = {
        "call": "an answered inbound call → a logged conversation on the caller's open ticket (or a new one)",
        "missed_call": "an unanswered or abandoned inbound call → a ticket that needs a call-back (SLA from the call's start)",
        "internal": "a call between internal extensions or the company's own numbers → ignored, counted",
        "outbound": "a call an agent made → ignored (log call-backs on the ticket instead)",
        "anonymous": "a call with a withheld caller id → ignored, counted (nobody to call back)",
        "call_event": "CTI newCall / answer → ignored (the call is logged at hangup)",
        "status_callback": "Twilio status callback: final statuses → call / missed_call; progress → ignored",
        "cdr": "a CDR file (or a chunk of one) → one call / missed_call / internal / outbound item per call, "
               "malformed rows reported with their line numbers",
    }

    def __init__(self, config: PhoneConfig, *, account_slug: str = "") -> None:
        super().__init__(config, account_slug=account_slug)
        self.rules = Rules(
            default_region=config.default_region.upper(),
            internal_pattern=re.compile(config.internal_pattern),
            internal_numbers=frozenset(e164(n, config.default_region) for n in config.internal_numbers),
        )
        self.cdr_options = cdr.Options(
            layout=layouts.build(config.cdr_format, config.cdr_template, config.column_map),
            tz=ZoneInfo(config.timezone),
            delimiter=config.csv_delimiter,
            date_format=config.date_format,
            recording_column=config.recording_column,
            recording_base_url=config.recording_base_url,
        )

    # push ---------------------------------------------------------------------------------
    def verify(self, request: WebhookRequest) -> WebhookResponse | None:
        twilio = request.headers.get(cti.TWILIO_HEADER, "")
        if twilio:
            content_type_check(request.headers, (*JSON_TYPES, FORM))
            if not self.config.twilio_auth_token:
                raise SignatureInvalid("this account has no twilio_auth_token, so Twilio callbacks are refused")
            url = self._twilio_url(request.url)
            if not cti.twilio_valid(self.config.twilio_auth_token.reveal(), url, request.body, twilio):
                raise SignatureInvalid(f"{cti.TWILIO_HEADER} does not match the URL and parameters")
            return None
        given = request.headers.get(SIGNATURE_HEADER, "")
        if not given:
            raise SignatureInvalid(f"missing {SIGNATURE_HEADER} (CTI) or {cti.TWILIO_HEADER} header")
        content_type_check(request.headers)  # CTI events are JSON
        if not self.config.secret:
            raise SignatureInvalid("this account has no secret, so CTI webhooks are refused")
        if not given.startswith("sha256="):
            raise SignatureInvalid(f"{SIGNATURE_HEADER} must be 'sha256=<hex>'")
        if not signatures_match(sign(self.config.secret.reveal(), request.body), given.strip().lower()):
            raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match the body")
        return None

    def _twilio_url(self, url: str) -> str:
        configured = self.config.twilio_url.strip()
        if not configured:
            return url
        query = url.split("?", 1)[1] if "?" in url else ""
        return configured if ("?" in configured or not query) else f"{configured}?{query}"

    # parse --------------------------------------------------------------------------------
    def parse(self, raw: RawEvent) -> list[ParsedItem]:
        headers = Headers(raw.headers)
        content_type = headers.get("Content-Type", "").lower()
        head = raw.body[:200].lstrip()
        if "json" in content_type or head.startswith(b"{"):
            if b'"CallSid"' in raw.body:
                return self._twilio(raw.body, "application/json")
            return self._cti(raw.body)
        if "x-www-form-urlencoded" in content_type or (re.match(rb"^[A-Za-z]\w*=", head) and b"CallSid=" in raw.body):
            return self._twilio(raw.body, content_type)
        return self._cdr(raw.body, headers)

    def _cti(self, body: bytes) -> list[ParsedItem]:
        data = cti.cti_event(body)
        if data["event"] != "hangup":
            return [Ignored("call_event", f"{data['event']} for call {data['call_id']}: the call is logged at hangup")]
        return [self._single(cti.cti_call(data))]

    def _twilio(self, body: bytes, content_type: str) -> list[ParsedItem]:
        call = cti.twilio_call(cti.twilio_params(body, content_type))
        if isinstance(call, str):
            return [Ignored("status_callback", call)]
        return [self._single(call)]

    def _single(self, call: Call) -> ParsedItem:
        item = to_item(call, self.rules)
        if isinstance(item, Invalid):  # one event, one call: the whole payload is wrong
            raise MalformedPayload(item.reason)
        return item

    def _cdr(self, body: bytes, headers: Headers) -> list[ParsedItem]:
        default = 2 if self.cdr_options.layout.has_header else 1  # a whole file: its rows start after the header
        try:
            first_line = max(default, int(headers.get(cdr.LINE_HEADER, "") or default))
        except ValueError:
            first_line = default
        items: list[ParsedItem] = []
        for row in cdr.parse_chunk(body, self.cdr_options, first_line, self._internal):
            items.append(row if isinstance(row, Invalid) else to_item(row, self.rules))
        return items

    def _internal(self, number: str) -> bool:
        return is_internal(number, self.rules)

    # files --------------------------------------------------------------------------------
    def split_file(self, data: bytes) -> list[RawEvent]:
        """A CDR file as RawEvents of `chunk_rows` rows, each keyed by its content and first line."""
        events = []
        for body, first_line, rows in cdr.split(data, self.cdr_options, self.config.chunk_rows):
            digest = hashlib.sha256(f"{first_line}\n".encode() + body).hexdigest()
            events.append(RawEvent(
                body=body,
                headers={"Content-Type": "text/csv", cdr.LINE_HEADER: str(first_line), cdr.ROWS_HEADER: str(rows)},
                source_key=f"cdr:{digest}",
            ))
        return events

    # demo ---------------------------------------------------------------------------------
    @classmethod
    def demo_account(cls) -> DemoAccount:
        return DemoAccount(
            name="Demo phone line",
            config={"default_region": "GB", "timezone": "Europe/London"},
            secrets={"secret": os.environ.get("OMNIDESK_DEMO_PHONE_SECRET", "demo-phone-secret")},
        )

    def demo_events(self) -> list[WebhookRequest | RawEvent]:
        if not self.config.secret:
            return []
        now = datetime.now(timezone.utc).replace(microsecond=0)
        stamp = f"{now:%Y%m%d%H%M%S}"
        calls = [
            {"event": "newCall", "call_id": f"demo-{stamp}-1", "from": "07700 900123", "to": "201", "direction": "in",
             "at": (now - timedelta(minutes=20)).isoformat()},
            {"event": "hangup", "call_id": f"demo-{stamp}-1", "from": "07700 900123", "to": "201", "direction": "in",
             "at": (now - timedelta(minutes=19, seconds=35)).isoformat(), "duration_s": 0, "answered": False,
             "caller_name": "Mary Jackson"},
            {"event": "hangup", "call_id": f"demo-{stamp}-2", "from": "07700 900123", "to": "202", "direction": "in",
             "agent": "202", "at": (now - timedelta(minutes=5)).isoformat(), "duration_s": 250, "answered": True,
             "caller_name": "Mary Jackson", "notes": "Wants the invoice re-sent to her new address."},
            {"event": "hangup", "call_id": f"demo-{stamp}-3", "from": "201", "to": "202",
             "at": (now - timedelta(minutes=2)).isoformat(), "duration_s": 40, "answered": True},
        ]
        events: list[WebhookRequest | RawEvent] = []
        for payload in calls:
            body = json.dumps(payload).encode()
            events.append(WebhookRequest(
                method="POST", url="", query={}, body=body,
                headers=Headers({"Content-Type": "application/json",
                                 SIGNATURE_HEADER: sign(self.config.secret.reveal(), body)}),
            ))
        return events
