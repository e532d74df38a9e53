"""Attachment downloads: always a download, never rendered by the browser, whatever the file says it is."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.test import Client

from omnidesk.tickets.models import Attachment

pytestmark = pytest.mark.django_db

#: (stored content type, file name, bytes) → the type the download is served with
CASES = [
    ("text/html", "page.html", b"<script>alert(document.cookie)</script>", "application/octet-stream"),
    ("image/svg+xml", "logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "application/octet-stream"),
    ("application/xhtml+xml", "x.xhtml", b"<html/>", "application/octet-stream"),
    ("text/xml", "feed.xml", b"<?xml-stylesheet href='x'?><a/>", "application/octet-stream"),
    ("application/javascript", "x.js", b"alert(1)", "application/octet-stream"),
    ("", "noname", b"<html><script>alert(1)</script>", "application/octet-stream"),
    ("TEXT/HTML; charset=utf-8", "shout.htm", b"<b>x</b>", "application/octet-stream"),
    ("image/png", "photo.png", b"\x89PNG\r\n\x1a\n", "image/png"),
    ("application/pdf", "invoice.pdf", b"%PDF-1.4", "application/pdf"),
    ("text/plain", "notes.txt", b"hello", "text/plain"),
]


def test_every_download_is_an_attachment_with_a_safe_type(manager, sending_account, deliver) -> None:  # type: ignore[no-untyped-def]
    message = deliver().messages.first()
    client = Client()
    client.force_login(manager)
    for n, (stored, name, content, served) in enumerate(CASES):
        att = Attachment.objects.create(message=message, filename=name, content_type=stored, size=len(content),
                                        sha256=f"{n:064x}", file=ContentFile(content, name=name))
        response = client.get(f"/attachments/{att.pk}/")
        assert response.status_code == 200, name
        assert response["Content-Disposition"].startswith("attachment;"), name
        assert response["Content-Type"].split(";")[0] == served, (name, response["Content-Type"])
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Security-Policy"] == "sandbox; default-src 'none'"
        assert b"".join(response.streaming_content) == content


def test_hostile_file_names_cannot_break_the_header(manager, sending_account, deliver) -> None:  # type: ignore[no-untyped-def]
    message = deliver().messages.first()
    client = Client()
    client.force_login(manager)
    for name in ['a"; filename="evil.html', "line\r\nSet-Cookie: x=1.txt", "ünïcode \u202eexe.txt", ""]:
        att = Attachment.objects.create(message=message, filename=name, content_type="text/html", size=1,
                                        sha256="ab" * 32, file=ContentFile(b"x", name="x"))
        response = client.get(f"/attachments/{att.pk}/")
        assert response.status_code == 200, name
        disposition = response["Content-Disposition"]
        assert "\r" not in disposition and "\n" not in disposition and "Set-Cookie" not in response, name
        assert disposition.startswith("attachment") and 'filename="evil.html"' not in disposition, name
        assert response["Content-Type"] == "application/octet-stream"
