"""Every route of the URLconf, classified by what an attacker could reach through it.

A route missing here fails `test_every_route_is_classified`: whoever adds an endpoint must say
how it is scoped and add its attack (an object route) or its check (a collection route).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver


@dataclass(frozen=True)
class Route:
    name: str  # the URL name ("admin:..." for the admin's), or the view's dotted path when it has none
    pattern: str
    kwargs: tuple[str, ...]


def routes() -> Iterator[Route]:
    def walk(resolver: URLResolver, prefix: str, namespace: str) -> Iterator[Route]:
        for p in resolver.url_patterns:
            if isinstance(p, URLResolver):
                ns = f"{namespace}{p.namespace}:" if p.namespace else namespace
                yield from walk(p, prefix + str(p.pattern), ns)
            elif isinstance(p, URLPattern):
                pattern = prefix + str(p.pattern)
                kwargs = tuple(sorted(p.pattern.regex.groupindex)) + tuple(
                    sorted(getattr(resolver.pattern, "regex").groupindex)
                )
                view = getattr(p.callback, "__wrapped__", p.callback)
                unnamed = f"{view.__module__}.{view.__qualname__}"
                yield Route(f"{namespace}{p.name}" if p.name else unnamed, pattern, kwargs)

    yield from walk(get_resolver(), "", "")


#: Routes that reach ONE ticket, customer, attachment or group-owned account. An agent of another
#: group gets 404 on every method (test_idor_api / test_idor_pages run each attack listed there).
OBJECT_ROUTES = {
    "ticket-detail", "ticket-replies", "ticket-notes", "ticket-handoff", "ticket-callbacks", "customer-detail",
    "channel-account-calls-import",
    "ticket", "ticket-measure", "ticket-merge", "queue-row", "attachment",
}
#: Routes with an object id whose objects belong to the whole desk, not to a group: agents read
#: them, only managers change them (test_idor_api.test_desk_configuration_is_read_only_for_agents).
DESK_CONFIGURATION = {
    "channel-account-detail": "channel accounts: agents read (secrets never, test_secrets), managers change",
    "sla-policy-detail": "SLA policies apply to every group",
    "sla-calendar-detail": "business calendars apply to every group",
    "routing-rule-detail": "routing rules apply to every group",
}
#: Incidents are the desk's, not a group's: every agent may open a confirmed one, but what it
#: shows of tickets (lists, counts, reports, bulk-reply outcomes) is only theirs, and changing or
#: answering it is for managers (test_idor_api.test_incidents_show_only_ones_own_tickets).
INCIDENTS = {
    "incident-detail", "incident-tickets", "incident-report", "incident-bulk-replies", "incident-bulk-reply",
    "incident-confirm", "incident-dismiss", "incident-resolve", "reports:incident",
}
#: Routes without an object id that return or act on group data: each has its own scoping check.
COLLECTIONS = {
    "ticket-list": "test_idor_api.test_lists_and_searches_leave_out_other_groups",
    "customer-list": "test_idor_api.test_lists_and_searches_leave_out_other_groups",
    "queue-list": "test_idor_api.test_lists_and_searches_leave_out_other_groups",
    "queue-next": "test_idor_api.test_claiming_never_takes_another_groups_ticket",
    "routing-rule-dry-run": "test_idor_api.test_dry_run_of_another_groups_ticket_is_404",
    "report-parity-list": "test_idor_reports",
    "report-parity-tickets": "test_idor_reports",
    "reports:parity": "test_idor_reports",
    "home": "test_idor_pages.test_queue_page_and_ticket_history_leave_out_other_groups",
    "manage": "managers only (tests/workspace/test_pages.py::test_manager_dashboard)",
    "incident-list": "test_idor_api.test_incidents_show_only_ones_own_tickets",
    "incident-banner": "test_idor_api.test_incidents_show_only_ones_own_tickets",
}
#: Routes carrying no group data at all.
NO_GROUP_DATA = {
    "schema": "the OpenAPI document",
    "api-root": "links",
    "health-list": "service health, no desk data",
    "channel-list": "installed plugins and their config schemas",
    "channel-account-list": "desk configuration (see DESK_CONFIGURATION)",
    "sla-policy-list": "desk configuration",
    "sla-calendar-list": "desk configuration",
    "routing-rule-list": "desk configuration",
    "routing-presence-list": "the caller's own presence",
    "omnidesk.api.urls.not_found": "the API's JSON 404",
    "webhook": "channels post here, authenticated by the plugin's signature, never by a user",
    "workspace-login": "signing in (rate-limited: test_login_throttle)",
    "workspace-logout": "signing out",
    "demo-callback": "only under DEBUG: stands in for the demo widget's remote system",
}


def classified() -> dict[str, str]:
    out: dict[str, str] = {name: "object" for name in OBJECT_ROUTES}
    out.update({name: "desk configuration" for name in DESK_CONFIGURATION})
    out.update({name: "incident" for name in INCIDENTS})
    out.update({name: "collection" for name in COLLECTIONS})
    out.update({name: "no group data" for name in NO_GROUP_DATA})
    return out
