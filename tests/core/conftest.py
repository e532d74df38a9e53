"""Fixtures shared by the core tests."""

import pytest

from omnidesk.routing.models import Rule


@pytest.fixture
def no_rules() -> None:
    for rule in Rule.objects.all():  # what rules write is theirs; these tests look at the ingest's own rows
        rule.active = False
        rule.save()
