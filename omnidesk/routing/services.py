"""Running routing rules on ticket events, their actions, saving rules, and dry-runs.

Called explicitly (no signals) from the core: the end of ingest (ticket_created /
customer_message), an agent's reply (agent_reply) and the SLA sweep (sla_warning / sla_breach).
Every action that changes something writes a TicketEvent with actor "rule" and the rule's name.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from omnidesk.rows import prepared_cursor
from omnidesk.tickets.audit import ticket_event_record
from omnidesk.tickets.models import Message, Ticket, TicketEvent

from . import rules_engine as engine
from .facts import Facts, customer_message_for, ticket_facts
from .models import Group, Rule

log = logging.getLogger(__name__)


class RuleInvalid(ValueError):
    """A rule that cannot be saved; `problems` names every one."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


# --- the active rules, cached until any rule changes ------------------------------------------

_cache_lock = threading.Lock()
_cache: tuple[Any, list[dict[str, Any]]] = (None, [])


def rules_active() -> list[dict[str, Any]]:
    """Active rules in order, as plain specs. One cheap aggregate per call decides whether the
    cached copy is still current (any save, delete or rollback changes count/max(updated_at)/max(pk))."""
    global _cache
    in_batch = _batch_rules.get()
    if in_batch is not None:
        return in_batch
    with prepared_cursor() as cursor:  # written once (the ORM compiled the aggregate per apply batch), prepared
        cursor.execute(_stamp_sql())
        stamp = tuple(cursor.fetchone())
    cached_stamp, rules = _cache
    if cached_stamp == stamp:
        return rules
    rules = [r.as_spec() for r in Rule.objects.filter(active=True).order_by("position", "pk")]
    with _cache_lock:
        _cache = (stamp, rules)
    return rules


@functools.cache
def _stamp_sql() -> str:
    quote = connection.ops.quote_name
    return f"SELECT COUNT(*), MAX({quote('updated_at')}), MAX({quote('id')}) FROM {quote(Rule._meta.db_table)}"


_batch_rules: contextvars.ContextVar[list[dict[str, Any]] | None] = contextvars.ContextVar("rules", default=None)


@contextlib.contextmanager
def rules_loaded_once() -> Iterator[None]:
    """Within this block (one ingest batch, one transaction) the active rules are checked once."""
    token = _batch_rules.set(rules_active())
    try:
        yield
    finally:
        _batch_rules.reset(token)


def rules_cache_clear() -> None:
    global _cache
    with _cache_lock:
        _cache = (None, [])


# --- saving ---------------------------------------------------------------------------------

RULE_FIELDS = ("name", "description", "position", "active", "events", "conditions", "any_conditions", "actions",
               "stop_processing")


def rule_problems_all(*, fields: Mapping[str, Any], exclude_pk: int | None = None) -> list[str]:
    """The pure checks plus those needing the database (named groups and policies exist)."""
    from omnidesk.sla.models import Policy

    problems = engine.rule_problems(
        name=fields.get("name", ""), events=fields.get("events"), conditions=fields.get("conditions", []),
        any_conditions=fields.get("any_conditions", []), actions=fields.get("actions"),
        stop_processing=fields.get("stop_processing", False),
    )
    name = fields.get("name")
    if isinstance(name, str) and Rule.objects.filter(name=name).exclude(pk=exclude_pk).exists():
        problems.append(f"name: a rule named {name!r} already exists")
    actions = fields.get("actions")
    for i, act in enumerate(actions if isinstance(actions, list) else []):  # a non-list is reported above
        if not isinstance(act, dict) or not isinstance(act.get("value"), str):
            continue
        if act.get("type") == "set_group" and not Group.objects.filter(name=act["value"]).exists():
            problems.append(f"actions[{i}]: value: there is no group named {act['value']!r}")
        if act.get("type") == "set_sla_policy" and not Policy.objects.filter(name=act["value"]).exists():
            problems.append(f"actions[{i}]: value: there is no SLA policy named {act['value']!r}")
    return problems


def rule_save(*, rule: Rule | None = None, **fields: Any) -> Rule:
    """Create or change a rule; every problem is reported at once (RuleInvalid)."""
    rule = rule or Rule()
    merged = {k: getattr(rule, k) for k in RULE_FIELDS}
    merged.update(fields)
    problems = rule_problems_all(fields=merged, exclude_pk=rule.pk)
    if problems:
        raise RuleInvalid(problems)
    for key, value in fields.items():
        setattr(rule, key, value)
    rule.save()
    return rule


# --- running --------------------------------------------------------------------------------


@dataclass
class _Run:
    ticket: Ticket
    message: Message | None
    facts: Facts
    event: str
    changed: set[str] = field(default_factory=set)
    recompute_sla: bool = False
    notify: list[str] = field(default_factory=list)


def rules_run(
    *, event: str, ticket: Ticket, message: Message | None = None, now: datetime | None = None
) -> list[engine.RuleResult]:
    """Run the active rules for `event` on `ticket` (inside the caller's transaction)."""
    rules = rules_active()
    if not any(event in r["events"] for r in rules):
        return []
    run = _Run(ticket=ticket, message=message, facts=ticket_facts(ticket=ticket, message=message, now=now), event=event)

    def apply(rule: Mapping[str, Any], result: engine.RuleResult) -> None:
        for action in result.actions:
            try:
                _ACTIONS[action["type"]](run, str(rule["name"]), action.get("value"))
            except Exception as exc:  # noqa: BLE001 - one broken action never loses the customer's message
                log.exception("rule %r action %s failed on ticket %s", rule["name"], action.get("type"), ticket.pk)
                _event(run, rule["name"], "rule_action_failed", note=f"{action.get('type')}: {exc}")
            engine.effect_on_facts(action, run.facts)

    results = engine.rules_plan(rules, event=event, facts=run.facts, apply=apply)
    _finish(run)
    return results


def _finish(run: _Run) -> None:
    ticket = run.ticket
    if run.changed:
        ticket.save(update_fields=[*sorted(run.changed), "updated_at"])
    if run.recompute_sla:
        from omnidesk.sla.services import sla_recompute

        sla_recompute(ticket=ticket)
    if run.notify:
        from omnidesk.workspace import live

        changes = {ticket.pk: "rule_notify"}
        transaction.on_commit(lambda: live.tickets_changed(changes))


def _event(run: _Run, rule: str, action: str, *, field: str = "", old: Any = None, new: Any = None, note: str = "") -> None:
    ticket_event_record(
        ticket=run.ticket, action=action, actor=TicketEvent.Actor.RULE, field=field, old=old, new=new,
        message=run.message, note=f"rule {rule}" + (f": {note}" if note else ""),
    )


def _set_priority(run: _Run, rule: str, value: Any) -> None:
    if run.ticket.priority != value:
        _event(run, rule, "priority_changed", field="priority", old=run.ticket.priority, new=value)
        run.ticket.priority = value
        run.changed.add("priority")
        run.recompute_sla = True


def _set_group(run: _Run, rule: str, value: Any) -> None:
    group = Group.objects.filter(name=value).first()
    if group is None:
        _event(run, rule, "rule_action_failed", note=f"set_group: there is no group named {value!r}")
    elif group.pk != run.ticket.group_id:
        old = run.ticket.group.name if run.ticket.group_id else "none"
        _event(run, rule, "group_changed", field="group", old=run.ticket.group_id, new=group.pk,
               note=f"group {old} → {group.name}")
        run.ticket.group = group
        run.changed.add("group")
        run.recompute_sla = True


def _add_tags(run: _Run, rule: str, value: Any) -> None:
    tags = list(run.ticket.tags or [])
    new = [t for t in value if t not in tags]
    if new:
        _event(run, rule, "tags_added", field="tags", old=tags, new=tags + new, note=", ".join(new))
        run.ticket.tags = tags + new
        run.changed.add("tags")


def _set_sla_policy(run: _Run, rule: str, value: Any) -> None:
    from omnidesk.sla.models import Policy

    policy = Policy.objects.filter(name=value, active=True).select_related("calendar").first()
    if policy is None:
        _event(run, rule, "rule_action_failed", note=f"set_sla_policy: no active SLA policy named {value!r}")
    elif policy.pk != run.ticket.sla_policy_override_id:
        _event(run, rule, "sla_policy_set", field="sla_policy_override", old=run.ticket.sla_policy_override_id,
               new=policy.pk, note=policy.name)
        run.ticket.sla_policy_override = policy
        run.changed.add("sla_policy_override")
        run.recompute_sla = True


def _assign(run: _Run, rule: str, value: Any) -> None:
    from .assignment import assignee_pick

    ticket = run.ticket
    if ticket.assignee_id or not ticket.group_id:
        return
    user, why = assignee_pick(group=ticket.group, ticket=ticket)
    if user is None:
        _event(run, rule, "assign_skipped", note=why)
        return
    _event(run, rule, "assignee_changed", field="assignee", old=None, new=user.pk,
           note=f"assignee none → {user.get_username()} ({why})")
    ticket.assignee = user
    run.changed.add("assignee")


def _auto_ack(run: _Run, rule: str, value: Any) -> None:
    from omnidesk.plugins.errors import PluginError
    from omnidesk.plugins.services import account_plugin
    from omnidesk.tickets.replies import ReplyRefused, reply_create

    ticket = run.ticket
    customer = run.message if run.event in ("ticket_created", "customer_message") else customer_message_for(ticket)
    skip = ""
    if customer is None or customer.account_id is None:
        skip = "no customer message on a channel to acknowledge"
    elif customer.automated:
        skip = "the customer's message is automated (auto-reply, bounce); never acknowledged"
    elif Message.objects.filter(ticket=ticket, direction=Message.Direction.OUTBOUND, automated=True).exists():
        skip = "this ticket was already acknowledged"
    else:
        caps = account_plugin(customer.account).capabilities
        if not caps.allows(customer.visibility):  # type: ignore[arg-type]
            skip = f"the {customer.account.kind} channel cannot send {customer.visibility} replies"
    if skip:
        _event(run, rule, "auto_ack_skipped", note=skip)
        return
    try:
        reply = reply_create(ticket=ticket, user=None, text=value, automated=True, identity=customer.author_identity)
    except (ReplyRefused, PluginError) as exc:
        _event(run, rule, "auto_ack_skipped", note=str(exc))
        return
    ticket.status = reply.ticket.status  # reply_create saved these on its own locked copy
    _event(run, rule, "auto_ack", note=f"acknowledged on {customer.account.kind}")


def _notify(run: _Run, rule: str, value: Any) -> None:
    _event(run, rule, "notified", note=value or "")
    run.notify.append(rule)


def _escalate(run: _Run, rule: str, value: Any) -> None:
    ticket = run.ticket
    new = engine.escalated_priority(ticket.priority)
    _event(run, rule, "escalated", field="priority", old=ticket.priority, new=new)
    if new != ticket.priority:
        ticket.priority = new
        run.changed.add("priority")
        run.recompute_sla = True
    if "escalated" not in (ticket.tags or []):
        ticket.tags = [*(ticket.tags or []), "escalated"]
        run.changed.add("tags")


_ACTIONS = {
    "set_priority": _set_priority, "set_group": _set_group, "add_tags": _add_tags, "set_sla_policy": _set_sla_policy,
    "assign": _assign, "auto_ack": _auto_ack, "notify": _notify, "escalate": _escalate,
}


# --- the hooks the core calls ---------------------------------------------------------------


def rules_after_customer_message(*, ticket: Ticket, message: Message, created: bool) -> None:
    """The message that opened a ticket is `ticket_created`; later ones `customer_message` (one run each)."""
    rules_run(event="ticket_created" if created else "customer_message", ticket=ticket, message=message)


def rules_after_reply(*, ticket: Ticket, message: Message) -> None:
    """An agent's reply; automatic ones (acknowledgements) never run rules, so rules cannot loop."""
    if not message.automated:
        rules_run(event="agent_reply", ticket=ticket)


def rules_after_sla(*, ticket: Ticket, announcements: Sequence[Any]) -> None:
    for kind in ("warning", "breach"):
        if any(a.kind == kind for a in announcements):
            rules_run(event=f"sla_{kind}", ticket=ticket)


# --- dry-run --------------------------------------------------------------------------------


@dataclass
class DryRun:
    ticket: int
    event: str
    facts: dict[str, Any]
    rules: list[engine.RuleResult]


def rules_dry_run(*, ticket: Ticket, event: str | None = None) -> DryRun:
    """Which active rules would fire for `event` on `ticket`, and why. Changes nothing."""
    if event is None:
        inbound = Message.objects.filter(ticket=ticket, direction=Message.Direction.INBOUND).count()
        event = "ticket_created" if inbound <= 1 else "customer_message"
    with transaction.atomic():
        facts = ticket_facts(ticket=ticket, now=timezone.now())
        snapshot = {k: v for k, v in facts.loaded().items()}
        results = engine.rules_plan(rules_active(), event=event, facts=facts, explain=True)
        transaction.set_rollback(True)  # belt and braces: nothing a dry-run touches is kept
    return DryRun(ticket=ticket.pk, event=event, facts=snapshot, rules=results)
