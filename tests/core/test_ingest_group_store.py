"""Webhooks that store at the same moment share one INSERT and one commit, and each still answers
only once its own event is committed (omnidesk/grouping.py)."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from django.db import connection, connections

from omnidesk.grouping import GroupWriter
from omnidesk.inbox.models import InboundEvent
from omnidesk.inbox.services import (
    _events_insert_if_current,
    inbound_event_store_if_current,
)
from omnidesk.plugins.contract import RawEvent
from omnidesk.plugins.models import ChannelAccount


def test_items_that_arrive_during_a_write_are_written_together_next():
    release, first_started = threading.Event(), threading.Event()
    writes: list[list[int]] = []

    def write(items):  # type: ignore[no-untyped-def]
        writes.append(list(items))
        if len(writes) == 1:
            first_started.set()
            release.wait(5)
        return [item * 10 for item in items]

    group: GroupWriter[int, int] = GroupWriter(write, limit=4)
    results: dict[int, int] = {}

    def submit(item: int) -> None:
        results[item] = group.submit(item)

    first = threading.Thread(target=submit, args=(0,))
    first.start()
    assert first_started.wait(5)
    others = [threading.Thread(target=submit, args=(i,)) for i in range(1, 7)]
    for thread in others:
        thread.start()
    time.sleep(0.2)  # all six wait for the first write
    release.set()
    for thread in [first, *others]:
        thread.join(5)

    assert results == {i: i * 10 for i in range(7)}  # each caller its own result
    assert writes[0] == [0]
    assert sorted(i for w in writes[1:] for i in w) == [1, 2, 3, 4, 5, 6]
    assert len(writes) == 3 and all(len(w) <= 4 for w in writes)  # six waiting, at most four a write


def test_a_failed_write_is_raised_to_each_caller_of_its_group_only():
    calls = []

    def write(items):  # type: ignore[no-untyped-def]
        calls.append(list(items))
        if "bad" in items:
            raise RuntimeError("database gone")
        return items

    group: GroupWriter[str, str] = GroupWriter(write)
    with pytest.raises(RuntimeError, match="database gone"):
        group.submit("bad")
    assert group.submit("good") == "good"  # the next write is not held by the failed one


def _raw(i: int) -> RawEvent:
    return RawEvent(body=f'{{"id": "g-{i}"}}'.encode(), headers={"Content-Type": "application/json"})


@pytest.mark.django_db(transaction=True)
def test_concurrent_webhooks_each_return_once_their_own_event_is_committed(postgres, api_account):
    account = ChannelAccount.objects.get(pk=api_account.pk)
    dsn = connection.get_connection_params()
    start = threading.Barrier(12)
    seen: dict[int, tuple[int | None, bool]] = {}

    def store(i: int) -> None:
        try:
            start.wait(5)
            pk = inbound_event_store_if_current(account=account, raw=_raw(i))
            # committed when the call returns: another connection sees it at once
            with psycopg.connect(**{k: v for k, v in dsn.items() if k != "cursor_factory"}) as other:
                visible = other.execute("SELECT body FROM inbox_inboundevent WHERE id = %s", [pk]).fetchone()
            seen[i] = (pk, visible is not None and bytes(visible[0]) == _raw(i).body)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=store, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(seen) == list(range(12))
    assert all(visible for _, visible in seen.values())
    assert len({pk for pk, _ in seen.values()}) == 12
    assert InboundEvent.objects.count() == 12


@pytest.mark.django_db(transaction=True)
def test_the_same_webhook_delivered_at_once_is_stored_once(postgres, api_account):
    account = ChannelAccount.objects.get(pk=api_account.pk)
    start = threading.Barrier(8)
    ids: list[int | None] = []

    def store() -> None:
        try:
            start.wait(5)
            ids.append(inbound_event_store_if_current(account=account, raw=_raw(1)))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=store) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    # one stored it; the others stored nothing and go the ordinary way (the view answers "duplicate")
    assert len(ids) == 8 and len([pk for pk in ids if pk is not None]) == 1
    assert InboundEvent.objects.count() == 1


@pytest.mark.django_db
def test_one_stale_account_copy_in_a_group_stores_nothing_for_it_only(postgres, api_account):
    fresh = ChannelAccount.objects.get(pk=api_account.pk)
    stale = ChannelAccount.objects.get(pk=api_account.pk)
    stale.secrets_encrypted = "an older secret"  # what a copy read before a rotation holds

    stored = _events_insert_if_current([(stale, _raw(1), fresh.updated_at), (fresh, _raw(2), fresh.updated_at),
                                        (fresh, _raw(2), fresh.updated_at)])

    assert stored[0] is None  # its copy is stale: the view reads the account again
    assert stored[1] is not None and stored[2] is None  # the same item twice: stored once
    assert list(InboundEvent.objects.values_list("body", flat=True)) == [_raw(2).body]
