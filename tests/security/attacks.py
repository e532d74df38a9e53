"""What an attacker sends to each object route, aimed at the victim's objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Attack:
    route: str
    method: str
    path: str
    body: Any = None
    content_type: str = "application/json"


def api_attacks(*, ticket: int, customer: int, account: str, attacker: int, own_group: int) -> list[Attack]:
    t = f"/api/v1/tickets/{ticket}/"
    csv = b"start,src,dst,duration\n2024-05-01 10:00:00,07700900123,201,30\n"
    return [
        Attack("ticket-detail", "get", t),
        Attack("ticket-detail", "patch", t, {"status": "solved"}),
        Attack("ticket-detail", "patch", t, {"assignee": attacker}),  # assign (to oneself)
        Attack("ticket-detail", "patch", t, {"group": own_group}),  # pull it into one's own group
        Attack("ticket-replies", "post", t + "replies/", {"text": "hello"}),
        Attack("ticket-notes", "post", t + "notes/", {"text": "psst"}),
        Attack("ticket-handoff", "post", t + "handoff/", {"private_text": "dm me"}),
        Attack("ticket-callbacks", "post", t + "callbacks/", {"outcome": "reached"}),
        Attack("customer-detail", "get", f"/api/v1/customers/{customer}/"),
        Attack("channel-account-calls-import", "post", f"/api/v1/channel-accounts/{account}/calls/import/", csv,
               "text/csv"),
    ]


def page_attacks(*, ticket: int, attachment: int, identity: int, own_customer: int) -> list[Attack]:
    return [
        Attack("ticket", "get", f"/tickets/{ticket}/"),
        Attack("ticket-measure", "post", f"/tickets/{ticket}/measure/", {"identity": identity, "text": "x"}),
        Attack("ticket-merge", "get", f"/tickets/{ticket}/merge/?q=Olive"),
        Attack("ticket-merge", "post", f"/tickets/{ticket}/merge/", {"other": own_customer}),
        Attack("queue-row", "get", f"/queue/rows/{ticket}/"),
        Attack("attachment", "get", f"/attachments/{attachment}/"),
    ]


def send(client: Any, attack: Attack, *, form: bool = False) -> Any:
    """One attack through a Django/DRF test client; `form`: the pages' urlencoded POSTs."""
    if attack.method == "get":
        return client.get(attack.path)
    if form:
        return client.post(attack.path, attack.body)
    if attack.content_type == "application/json":
        return getattr(client, attack.method)(attack.path, attack.body, format="json")
    return client.generic(attack.method.upper(), attack.path, attack.body, content_type=attack.content_type)
