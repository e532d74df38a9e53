"""Dovecot restarted while the poller waits in IDLE: the poller reconnects and resumes from its
cursor — every mail stored and applied once, none fetched twice, all acknowledged on the server."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connections

from omnidesk.inbox.polling import PollReport, account_poll
from omnidesk.inbox.services import inbound_events_apply
from omnidesk.plugins.models import ChannelAccount
from omnidesk.plugins.services import account_plugin
from tests.services.procs import subprocess_database_url, wait_until

from .stack import dovecot_restart
from .traffic import Mailbox, Tally, desk_accounts, ledger

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


class Poller(threading.Thread):
    """The poller's loop (PollerPool._loop) for one account, keeping every report."""

    def __init__(self, account: ChannelAccount) -> None:
        super().__init__(daemon=True)
        self.account = account
        self.reports: list[PollReport] = []
        self.stop = threading.Event()
        self.polling = threading.Event()  # set while a poll (and its IDLE) is under way

    def run(self) -> None:
        failures = 0
        try:
            while not self.stop.is_set():
                self.polling.set()
                report = account_poll(account=self.account, failures=failures)
                self.polling.clear()
                self.reports.append(report)
                failures = failures + 1 if report.error else 0
                self.stop.wait(max(report.next_poll_in_s, 0.05))
        finally:
            connections.close_all()  # this thread's own connection, or the test database cannot be dropped

    def stored(self) -> int:
        return sum(r.stored for r in self.reports)


def test_dovecot_restart_mid_idle_poller_resumes_from_its_cursor(postgres, platforms, dovecot_server):
    mailbox = dovecot_server.new_user("desk")
    ids = desk_accounts(platforms_url=platforms.url, imap_port=dovecot_server.port, mailbox=mailbox)
    account = ChannelAccount.objects.get(pk=ids["email"])
    account.config = {**account.config, "idle_timeout_s": 30.0}  # the restart must land inside one IDLE
    account.save()
    mails = Mailbox(dovecot_server, mailbox, "imap")

    def seen() -> int:
        with dovecot_server.client(mailbox) as client:
            client.select_folder("INBOX", readonly=True)
            return len(client.search(["SEEN"]))

    poller = Poller(account)
    mails.deliver(range(5))
    poller.start()
    try:
        wait_until(lambda: poller.stored() == 5, timeout=30, what="the first mails to be stored")
        wait_until(lambda: len(poller.reports) >= 1 and poller.polling.is_set(), timeout=10, what="the poller to IDLE")
        time.sleep(0.5)
        idling_since = len(poller.reports)
        dovecot_restart(dovecot_server, down_s=1.0)
        mails.deliver(range(5, 10))
        wait_until(lambda: poller.stored() == 10, timeout=45, what="the poller to reconnect and store the new mail")
        mails.deliver(range(10, 12))  # and it goes back to IDLE on the new connection
        wait_until(lambda: poller.stored() == 12, timeout=20, what="mail after the reconnection")
        # Acknowledged on the server (the \Seen flag) once committed: the next fetch does it, then IDLEs again.
        wait_until(lambda: seen() == len(mails.sent), timeout=15, what="every mail acknowledged on the server")
    finally:
        poller.stop.set()
        mails.deliver(range(12, 13))  # wakes the IDLE under way, so the loop sees `stop` now rather than at its timeout
        poller.join(40)
        account_plugin(account).close()  # type: ignore[attr-defined]
    while inbound_events_apply().applied:
        pass

    errors = [r.error for r in poller.reports[idling_since:] if r.error]
    print(f"poll reports after the restart: {[(r.stored, r.duplicates, r.error, r.next_poll_in_s) for r in poller.reports[idling_since - 1:]]}")
    tally = Tally.read(subprocess_database_url())
    lost, duplicated = ledger("dovecot restart mid-IDLE", sent={"email": mails.sent}, tally=tally)
    assert lost == 0 and duplicated == 0
    assert sum(r.duplicates for r in poller.reports) == 0, "mail fetched again: the cursor was not resumed"
    assert errors, "the poller never noticed the restart: it was not in IDLE on the old connection"
