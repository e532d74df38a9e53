"""POST /api/v1/tickets/{id}/replies/ as multipart/form-data with files."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from omnidesk.tickets.models import Attachment, Message
from tests.support.email_ticket import email_account, email_ticket

from .conftest import client_for

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"


@pytest.fixture
def mail_ticket(support):  # type: ignore[no-untyped-def]
    return email_ticket(email_account(group_id=support.pk))


def _pdf(name: str = "invoice.pdf") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, PDF, content_type="application/pdf")


def test_multipart_reply_with_files_is_202(agent, mail_ticket):  # type: ignore[no-untyped-def]
    response = client_for(agent).post(
        f"/api/v1/tickets/{mail_ticket.pk}/replies/",
        {"text": "Here you are.", "visibility": "private", "attachments": [_pdf(), _pdf("copy.pdf")]},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["state"] == "queued" and body["text"] == "Here you are."
    assert [a["filename"] for a in body["attachments"]] == ["invoice.pdf", "copy.pdf"]
    stored = Attachment.objects.filter(message_id=body["id"]).order_by("pk")
    assert [a.file.read() for a in stored] == [PDF, PDF]


def test_files_on_a_channel_that_cannot_send_them_are_400_capability(agent, sending_account, deliver):  # type: ignore[no-untyped-def]
    ticket = deliver(public=True)
    response = client_for(agent).post(
        f"/api/v1/tickets/{ticket.pk}/replies/", {"text": "see file", "attachments": [_pdf()]}, format="multipart"
    )
    assert response.status_code == 400, response.content
    assert response.json() == {"error": "capability", "detail": "the API channel cannot send attachments"}
    assert not Message.objects.filter(direction="out").exists()


def test_a_blocked_file_is_400_with_the_reason(agent, mail_ticket):  # type: ignore[no-untyped-def]
    exe = SimpleUploadedFile("run.exe", b"MZ", content_type="application/x-msdownload")
    response = client_for(agent).post(
        f"/api/v1/tickets/{mail_ticket.pk}/replies/", {"text": "run this", "attachments": [exe]}, format="multipart"
    )
    assert response.status_code == 400
    assert response.json()["error"] == "reply_refused" and "type application/x-msdownload is blocked" in response.json()["detail"]


def test_too_large_an_upload_is_413(agent, mail_ticket, settings):  # type: ignore[no-untyped-def]
    settings.OMNIDESK = {**settings.OMNIDESK, "REPLY_UPLOAD_MAX_BYTES": 20}
    response = client_for(agent).post(
        f"/api/v1/tickets/{mail_ticket.pk}/replies/", {"text": "big", "attachments": [_pdf()]}, format="multipart"
    )
    assert response.status_code == 413
    assert response.json() == {
        "error": "upload_too_large", "detail": "the attachments of one reply may total at most 20 bytes",
    }
    assert not Message.objects.filter(direction="out").exists()


def test_json_replies_still_work_on_an_email_ticket(agent, mail_ticket):  # type: ignore[no-untyped-def]
    response = client_for(agent).post(f"/api/v1/tickets/{mail_ticket.pk}/replies/", {"text": "hi"}, format="json")
    assert response.status_code == 202 and response.json()["attachments"] == []
