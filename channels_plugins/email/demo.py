"""Sample customer mails for `make run` (the demo account never connects to a server)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime

_MAILS = (
    ("Margaret Hamilton", "margaret@example.com", "Invoice 2211 charged twice",
     "Hello,\n\nmy card was charged twice for invoice 2211. Could you refund one of them?\n\nThanks,\nMargaret"),
    ("Linus Pauling", "linus@example.org", "Cannot log in since the update",
     "Hi there,\n\nsince yesterday's update the login page says my password is wrong, but the reset mail never"
     " arrives.\n\n-- \nLinus Pauling\nPauling Labs"),
    ("Ada Yonath", "ada.yonath@example.net", "Délai de livraison / delivery time",
     "Bonjour,\n\nquand ma commande 7731 sera-t-elle livrée ?\n\nMerci,\nAda"),
)


def demo_mails(now: datetime | None = None) -> list[bytes]:
    now = now or datetime.now(timezone.utc)
    out = []
    for n, (name, addr, subject, text) in enumerate(_MAILS):
        msg = EmailMessage()
        msg["From"] = f'"{name}" <{addr}>'
        msg["To"] = "Demo Support <support@demo.omnidesk.invalid>"
        msg["Subject"] = subject
        msg["Date"] = format_datetime(now - timedelta(minutes=40 - 10 * n))
        msg["Message-ID"] = f"<demo-{now:%Y%m%d%H%M%S}-{n}@{addr.split('@')[1]}>"
        msg.set_content(text)
        out.append(msg.as_bytes())
    return out
