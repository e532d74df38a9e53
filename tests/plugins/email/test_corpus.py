"""The plugin over every real mail in ../shared/corpus/email (skipped where the folder is absent).

No mail may crash the import: each gives a message, a clean automated/bounce/ignored outcome, or
a clear PluginError. Expected reply texts (talon `*_reply_text`) must match; accepted deviations
are listed in channels_plugins/email/doc.md and below.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from channels_plugins.email import quoting
from channels_plugins.email.adapter import EmailChannel, EmailConfig
from omnidesk.plugins.config import load_config
from omnidesk.plugins.contract import DeliveryUpdate, Ignored, InboundMessage, PluginError, RawEvent

PLUGIN = EmailChannel(load_config(EmailConfig, {"address": "support@desk.example"}), account_slug="support")  # type: ignore[arg-type]

#: what each bounce in the corpus must mark failed (the original found inside the report)
BOUNCES = {
    "chatwoot/bounced_gmail.eml": ("conversation/93775311-9416-4428-964b-862001f8a8b2/messages/27855337@gmail.com", True),
    "mikel-mail/multipart_report_emails_report_422.eml": (
        "15655788.13.1200472642578.JavaMail.Administrator@mail.ttttt.com.au", False),
    "mikel-mail/multipart_report_emails_report_530.eml": ("200712232303.lBNN3jDq002941@mail12.rrrr.com.au", True),
}
#: the reply-text corpora (plain bodies): what the agent must see, and what must be folded away
REPLY_TEXT = {
    "crisp/email_german_outlook.txt": ("nec nibh.", "Ursprüngliche Nachricht"),
    "crisp/email_ios_outlook.txt": ("nec nibh.", "The Hiring Engine"),
    "crisp/email_russian.txt": ("nec nibh.", "привет"),
    "crisp/email_tricky_9_nested_quotes.txt": ("I agree with the points below.", "Jane Doe"),
    "crisp/email_zoho.txt": ("running a test?", "Java sucks"),
    "mail-parser-reply/email_danish_1.txt": ("Anders Andersen", "Hvordan går det"),
    "mail-parser-reply/email_ja_1_2.txt": ("以上、よろしくお願いいたします", "かしこまりました"),
    "mail-parser-reply/email_swedish_1.txt": ("Person B", "skrev Person A"),
}
#: must stay whole (false positives of quote/signature detection)
REPLY_KEPT_WHOLE = [
    "crisp/email_tricky_1_on_false_positive.txt", "crisp/email_tricky_2_url_with_wrote.txt",
    "crisp/email_tricky_4_from_in_body.txt", "crisp/email_tricky_6_regards_in_sentence.txt",
    "crisp/email_tricky_7_multiple_dashes.txt", "crisp/email_tricky_8_sent_from_in_content.txt",
    "crisp/email_tricky_13_timestamp_variations.txt", "crisp/email_tricky_18_inline_reply.txt",
]


def mails(root: Path) -> list[Path]:
    return sorted(
        p for p in (root / "email").rglob("*")
        if p.is_file() and "reply-text" not in p.parts and not p.name.startswith(("LICENSE", "README"))
        and not p.name.endswith("_reply_text")
    )


def test_every_mail_gives_a_clean_outcome(shared_corpus: str) -> None:
    root = Path(shared_corpus)
    outcomes: dict[str, str] = {}
    for path in mails(root):
        rel = str(path.relative_to(root / "email"))
        try:
            items = PLUGIN.parse(RawEvent(body=path.read_bytes()))
        except PluginError as exc:
            outcomes[rel] = f"error:{type(exc).__name__}"
            assert exc.message, rel
            continue
        except Exception as exc:  # pragma: no cover - the point of the test
            pytest.fail(f"{rel}: parse() crashed with {type(exc).__name__}: {exc}")
        assert len(items) == 1, rel
        item = items[0]
        assert isinstance(item, (InboundMessage, DeliveryUpdate, Ignored)), rel
        outcomes[rel] = type(item).__name__ + (":auto" if getattr(item, "automated", False) else "")
        if rel in BOUNCES:
            assert isinstance(item, DeliveryUpdate), (rel, item)
            assert (item.external_id, item.permanent) == BOUNCES[rel], rel
        if isinstance(item, InboundMessage):
            assert item.external_id and item.author.identity.value, rel
    assert len(outcomes) >= 30
    # Every bounce is a delivery update or ignored, never a message; the unreadable ones are few.
    assert all(not v.startswith("InboundMessage") for k, v in outcomes.items() if "report" in k or "bounce" in k)
    assert sum(v.startswith("error") for v in outcomes.values()) <= 1, outcomes


def test_talon_reply_texts(shared_corpus: str) -> None:
    folder = Path(shared_corpus) / "email" / "talon"
    expected = sorted(folder.glob("*_reply_text"))
    assert expected
    for path in expected:
        item = PLUGIN.parse(RawEvent(body=(folder / (path.name[: -len("_reply_text")] + ".eml")).read_bytes()))[0]
        assert isinstance(item, InboundMessage)
        meta = dict(item.metadata)
        # talon keeps the signature in the reply; we fold it separately: visible + signature = talon's text.
        ours = "\n\n".join(x for x in (meta["visible_text"], meta.get("signature", "")) if x)
        assert _words(ours) == _words(path.read_text()), path.name
    for path in sorted(folder.glob("*.eml")):
        item = PLUGIN.parse(RawEvent(body=path.read_bytes()))[0]
        assert isinstance(item, InboundMessage)
        assert dict(item.metadata)["visible_text"].strip() == "Hello", path.name  # every talon sample replies "Hello"


def _words(text: str) -> list[str]:
    return text.split()


@pytest.mark.parametrize("name", sorted(REPLY_TEXT))
def test_reply_text_corpus_folds_history(shared_corpus: str, name: str) -> None:
    keep, fold = REPLY_TEXT[name]
    reply = quoting.split_reply((Path(shared_corpus) / "email" / "reply-text" / name).read_text())
    assert reply.visible.rstrip().endswith(keep), reply.visible[-200:]
    assert fold not in reply.visible
    assert fold in reply.quoted or fold in reply.signature


@pytest.mark.parametrize("name", REPLY_KEPT_WHOLE)
def test_reply_text_corpus_false_positives(shared_corpus: str, name: str) -> None:
    text = (Path(shared_corpus) / "email" / "reply-text" / name).read_text()
    assert quoting.split_reply(text).quoted == "", name


def test_every_reply_text_sample_splits(shared_corpus: str) -> None:
    for path in sorted((Path(shared_corpus) / "email" / "reply-text").rglob("*.txt")):
        reply = quoting.split_reply(path.read_text(errors="replace"))
        assert reply.visible or not path.read_text(errors="replace").strip(), os.fspath(path)
