"""Identity values normalize so one person on one channel is one row."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnidesk.customers.identities import InvalidIdentity, normalize
from omnidesk.plugins.contract import IdentityKind, IdentityRef


def test_email_is_lower_cased_and_checked():
    assert normalize(IdentityRef(IdentityKind.EMAIL, " Ada@Example.COM ")).value == "ada@example.com"
    with pytest.raises(InvalidIdentity):
        normalize(IdentityRef(IdentityKind.EMAIL, "no-at-sign"))


@pytest.mark.parametrize(
    "raw, region, e164",
    [("+44 20 7946 0958", "", "+442079460958"), ("020 7946 0958", "GB", "+442079460958"), ("(415) 555-2671", "US", "+14155552671")],
)
def test_phone_numbers_become_e164(raw, region, e164):
    assert normalize(IdentityRef(IdentityKind.PHONE, raw), default_region=region).value == e164


def test_national_number_without_region_is_refused():
    with pytest.raises(InvalidIdentity):
        normalize(IdentityRef(IdentityKind.PHONE, "020 7946 0958"))


@given(st.text(max_size=40))
def test_normalizing_is_idempotent_or_refuses(value):
    for kind in IdentityKind:
        try:
            once = normalize(IdentityRef(kind, value), default_region="GB")
        except InvalidIdentity:
            continue
        assert normalize(once, default_region="GB") == once
