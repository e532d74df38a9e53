"""Pure parsing details: message ids, charsets, automated mail, quoted replies (no server, no database)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from channels_plugins.email import msgids, parsing, quoting
from channels_plugins.email.adapter import EmailChannel, EmailConfig
from channels_plugins.email.outbound import message_id_for, subject_with_ref
from omnidesk.plugins.config import load_config
from omnidesk.plugins.contract import DeliveryUpdate, Ignored, InboundMessage, RawEvent

PLUGIN = EmailChannel(load_config(EmailConfig, {"address": "support@desk.example"}), account_slug="support")  # type: ignore[arg-type]


def parse_one(raw: bytes):  # type: ignore[no-untyped-def]
    items = PLUGIN.parse(RawEvent(body=raw))
    assert len(items) == 1
    return items[0]


def test_msgids_are_parsed_leniently() -> None:
    assert msgids.parse_msgids("<a@x> <b@y>") == ["a@x", "b@y"]
    assert msgids.parse_msgids("a@x") == ["a@x"]  # missing brackets
    assert msgids.parse_msgids("<a@x>, <b@y>,<c@z>") == ["a@x", "b@y", "c@z"]  # commas
    assert msgids.parse_msgids("<a@x> (Mary's message of Tue)") == ["a@x"]  # junk after
    assert msgids.parse_msgids("<invalid.\r\n something@bar.net>") == ["invalid.something@bar.net"]  # folded
    assert msgids.parse_msgids(["<a@x>", "<b@y> <a@x>"]) == ["a@x", "b@y"]  # two headers, duplicate
    assert msgids.parse_msgids("") == [] and msgids.parse_msgids(None) == []


def test_references_most_specific_first_and_thread_root() -> None:
    refs = msgids.references_of("<parent@x>", "<root@x> <mid@x> <parent@x>")
    assert refs == ("parent@x", "mid@x", "root@x")
    assert msgids.thread_root("<parent@x>", "<root@x> <mid@x>", "own@x") == "root@x"
    assert msgids.thread_root("<parent@x>", None, "own@x") == "parent@x"
    assert msgids.thread_root(None, None, "own@x") == "own@x"


def test_ticket_reference_in_subject() -> None:
    assert msgids.ticket_ref_in("Re: Printer [#123]") == 123
    assert msgids.ticket_ref_in("Re: Printer [ # 7 ]") == 7
    assert msgids.ticket_ref_in("Re: Printer #123") is None
    assert msgids.ticket_ref_in("AW: [Ticket#55] x", "Ticket#") == 55
    assert subject_with_ref("Re: Printer [#123]", 123) == "Re: Printer [#123]"
    assert subject_with_ref("Re: Printer", 123) == "Re: Printer [#123]"


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(max_size=300))
def test_msgid_parsing_never_crashes(value: str) -> None:
    for found in msgids.parse_msgids(value):
        assert found and "<" not in found and ">" not in found and not any(c.isspace() for c in found)


_STRUCTURE_VALUES = [
    "text/plain; charset=utf-8",
    'multipart/mixed; boundary="==b1=="',
    "text/plain; charset*=utf-8''%e2%82%ac; name*0=a; name*1=b.txt",
    "attachment; filename*=iso-8859-1''caf%E9.pdf",
    "text/html; charset=\"unterminated",
    "garbage;;; =",
    "",
    "base64",
]


def _structure(msg):  # type: ignore[no-untyped-def]
    headers = [(name, msg.get(name)) for name in ("Content-Type", "Content-Disposition", "Content-Transfer-Encoding")]
    return (
        msg.get_content_type(), msg.get_params(), msg.get_param("charset"), msg.get_content_disposition(),
        msg.get_filename(), msg.is_multipart(),
        [(n, str(h), type(h).__mro__[1], [type(d) for d in h.defects]) for n, h in headers if h is not None],
    )


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.sampled_from(_STRUCTURE_VALUES) | st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=80),
    st.sampled_from(_STRUCTURE_VALUES),
)
def test_structure_headers_read_exactly_as_policy_default(ctype: str, other: str) -> None:
    """The memoized header parsing answers what plain policy.default does, on every read."""
    from email import message_from_string, policy

    raw = f"From: a@x\nContent-Type: {ctype}\nContent-Disposition: {other}\nContent-Transfer-Encoding: {ctype}\n\nbody\n"
    expected = _structure(message_from_string(raw, policy=policy.default))
    msg = message_from_string(raw, policy=parsing.POLICY)
    assert _structure(msg) == expected
    assert _structure(msg) == expected  # read again: served from the memo


def test_our_message_ids_are_deterministic_and_valid() -> None:
    assert message_id_for("abc", "desk.example") == message_id_for("abc", "desk.example")
    assert message_id_for("a b<c>", "desk.example") == "omnidesk.a-b-c-@desk.example"


def test_charset_aliases_and_fallbacks() -> None:
    assert parsing.decode_bytes("환불".encode("cp949"), "ks_c_5601-1987") == "환불"
    assert parsing.decode_bytes("中文".encode("gbk"), "iso-gb2312") == "中文"
    assert parsing.decode_bytes("café".encode("utf-8"), "invalid-charset") == "café"
    assert parsing.decode_bytes(b"caf\xe9", "invalid-charset") == "café"
    assert parsing.decode_bytes(b"caf\xe9", "us-ascii") == "café"  # mislabelled 8-bit
    assert parsing.decode_bytes("naïve".encode(), "iso-8859-1") == "naïve"  # UTF-8 labelled latin-1
    assert parsing.header_text("=?NONE?B?VEVTVA=?=") in ("TEST", "=?NONE?B?VEVTVA=?=")
    assert parsing.header_text("=?utf-8?q?Caf=C3=A9?=") == "Café"


def test_dates_are_lenient() -> None:
    assert parsing.date("Tue, 14 Oct 2025 11:12:31 +0200").isoformat() == "2025-10-14T09:12:31+00:00"  # type: ignore[union-attr]
    assert parsing.date("14 Oct 2025 11:12:31 -0000").tzinfo is not None  # type: ignore[union-attr]
    assert parsing.date("garbage") is None and parsing.date(None) is None


def test_auto_reply_signals() -> None:
    base = b"From: a@example.com\r\nSubject: %s\r\nMessage-ID: <x@example.com>\r\n%s\r\nbody\r\n"
    cases = [
        (b"Hi", b"Auto-Submitted: auto-replied\r\n", True),
        (b"Hi", b"Auto-Submitted: no\r\n", False),
        (b"Hi", b"Precedence: junk\r\n", True),
        (b"Hi", b"X-Autorespond: yes\r\n", True),
        (b"Hi", b"List-Unsubscribe: <mailto:u@example.com>\r\n", True),
        (b"Out of Office: back Monday", b"", True),
        (b"Hi", b"", False),
    ]
    for subject, header, automated in cases:
        item = parse_one(base % (subject, header))
        assert isinstance(item, InboundMessage) and item.automated is automated, (subject, header)


def test_null_return_path_alone_is_not_a_bounce() -> None:
    raw = b"Return-Path: <>\r\nFrom: a@example.com\r\nSubject: Vacation\r\nAuto-Submitted: auto-replied\r\n\r\naway\r\n"
    assert isinstance(parse_one(raw), InboundMessage)


def test_bounce_original_comes_from_the_embedded_copy_never_the_dsn_headers() -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.example.com\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        b"In-Reply-To: <dsn-own@mx.example.com>\r\nReferences: <dsn-own@mx.example.com>\r\n"
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n"
        b"Final-Recipient: rfc822; a@example.com\r\nAction: failed\r\nStatus: 5.2.2\r\n\r\n"
        b"--B\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: <ours@desk.example>\r\nSubject: x\r\n\r\nhi\r\n--B--\r\n"
    )
    item = parse_one(raw)
    assert isinstance(item, DeliveryUpdate)
    assert item.external_id == "ours@desk.example" and item.permanent and item.reason.startswith("5.2.2")


def test_x_failed_recipients_without_original_is_ignored() -> None:
    raw = b"From: postmaster@example.com\r\nSubject: failed\r\nX-Failed-Recipients: a@example.com\r\n\r\n550 5.1.1 no\r\n"
    assert parse_one(raw) == Ignored("bounce", "delivery failure without the original message (5.1.1)")


def test_our_message_id_is_a_loop_even_without_the_header() -> None:
    raw = b"From: someone@desk.example\r\nMessage-ID: <omnidesk.k1@desk.example>\r\nSubject: x\r\n\r\nhi\r\n"
    item = parse_one(raw)
    assert isinstance(item, Ignored) and item.event_type == "loop"


def test_html_only_mail_gets_text_and_safe_html() -> None:
    raw = (b"From: a@example.com\r\nSubject: x\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
           b"<p>Hello <b>there</b></p><script>alert(1)</script><img src=x onerror=alert(1)>")
    item = parse_one(raw)
    assert item.text == "Hello there"
    assert "script" not in item.html and "onerror" not in item.html


def test_top_level_octet_stream_still_makes_a_message() -> None:
    raw = b"From: a@example.com\r\nSubject: scan\r\nContent-Type: application/octet-stream; name=scan.pdf\r\n\r\n%PDF-1.4"
    item = parse_one(raw)
    assert item.text == "" and item.attachments[0].filename == "scan.pdf"


def test_unencoded_8bit_headers_are_read_as_utf8_then_cp1252() -> None:
    raw = ("From: Zoë <zoe@example.com>\r\nSubject: Café\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
           "--b\r\nContent-Type: text/plain; name=ciële.txt\r\nContent-Disposition: attachment; filename=ciële.txt"
           "\r\n\r\nthere\r\n--b--\r\n").encode()
    item = parse_one(raw)
    assert (item.subject, item.author.display_name) == ("Café", "Zoë")
    assert item.attachments[0].filename == "ciële.txt"
    latin = parse_one(b"From: a@example.com\r\nSubject: Caf\xe9\r\n\r\nhi")
    assert latin.subject == "Café"


def test_visible_text_folds_quotes_and_signature() -> None:
    reply = quoting.split_reply("Yes please.\n\n-- \nAda\nACME\n\nOn Mon, 1 Jan 2025, Bob <b@x.com> wrote:\n> Shall we?")
    assert reply.visible == "Yes please."
    assert reply.signature == "-- \nAda\nACME"
    assert reply.quoted.startswith("On Mon")
    inline = quoting.split_reply("On Mon, Bob <b@x.com> wrote:\n> A?\n\nYes.\n\n> B?\n\nNo.")
    assert inline.visible.startswith("On Mon") and inline.quoted == ""  # an inline reply keeps everything
