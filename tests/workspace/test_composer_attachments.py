"""The composer offers a file input only where the reply's channel can send files."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.support.email_ticket import email_account, email_ticket

pytestmark = pytest.mark.django_db


def _page(user, ticket) -> str:  # type: ignore[no-untyped-def]
    c = Client()
    c.force_login(user)
    response = c.get(f"/tickets/{ticket.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def test_file_input_for_an_email_ticket(agent, support):  # type: ignore[no-untyped-def]
    page = _page(agent, email_ticket(email_account(group_id=support.pk)))
    assert 'type="file" id="c-files" name="attachments" multiple' in page
    assert '"attachments": true' in page  # the script shows it for this reply target
    assert "not supported" not in page


def test_no_file_input_for_an_api_ticket(agent, sending_account, deliver):  # type: ignore[no-untyped-def]
    page = _page(agent, deliver())
    assert 'type="file"' not in page and 'id="c-attach"' not in page
