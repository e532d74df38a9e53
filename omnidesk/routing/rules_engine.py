"""Routing rules as data: validation, condition evaluation and planning over a facts mapping.

Pure: no Django. The same rules run for every channel because they only ever see normalized
facts (see omnidesk.routing.facts). A rule is
``{"name", "events": [...], "conditions": [...], "any_conditions": [...], "actions": [...],
"stop_processing": bool}``; every condition in ``conditions`` must hold and, when
``any_conditions`` is not empty, at least one of those too. A condition is
``{"field", "op", "value"}``; an action ``{"type", "value"?}``.

Evaluation never raises: a fact that is missing or of the wrong type makes the condition false
(and the explanation says what the actual value was).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

EVENTS = ("ticket_created", "customer_message", "agent_reply", "sla_warning", "sla_breach")
PRIORITIES = ("low", "normal", "high", "urgent")  # ascending
STATUSES = ("new", "open", "pending", "on_hold", "solved", "closed")
VISIBILITIES = ("public", "private")
TRENDS = ("falling", "rising", "steady")
PRESENCES = ("online", "away", "offline")

#: value kinds → the operators they accept
_OPS: dict[str, tuple[str, ...]] = {
    "choice": ("eq", "ne", "in", "not_in"),
    "ordered": ("eq", "ne", "in", "not_in", ">=", "<=", ">", "<"),
    "text": ("contains", "not_contains", "regex", "eq", "ne"),
    "number": (">=", "<=", ">", "<", "eq", "ne"),
    "bool": ("eq", "ne"),
    "tags": ("contains", "not_contains", "contains_any", "contains_all"),
    "trend": ("eq", "ne", ">=", "<=", ">", "<"),
    "string": ("eq", "ne", "in", "not_in", "contains", "not_contains", "regex"),
}

#: field → (kind, allowed values for choice/ordered fields)
FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "channel": ("string", ()),  # a plugin kind: email, phone, twitter, facebook, api, ...
    "visibility": ("choice", VISIBILITIES),
    "text": ("text", ()),
    "followers": ("number", ()),
    "verified": ("bool", ()),
    "automated": ("bool", ()),
    "message_kind": ("choice", ("message", "call", "note")),
    "sentiment": ("number", ()),
    #: eq/ne: falling | rising | steady; numeric ops compare the least-squares slope (per message)
    "sentiment_trend": ("trend", TRENDS),
    "repeat_complaint": ("bool", ()),
    "customer_tags": ("tags", ()),
    "tags": ("tags", ()),
    "priority": ("ordered", PRIORITIES),
    "status": ("choice", STATUSES),
    "group": ("string", ()),  # group name; "" / null = no group
    "within_business_hours": ("bool", ()),
}
METADATA_PREFIX = "metadata."

ACTIONS = (
    "set_priority", "set_group", "add_tags", "set_sla_policy", "assign", "auto_ack", "notify", "escalate",
)
#: actions whose value must name a row (a group, a policy); checked against the database by the service
NAMED_ACTIONS = {"set_group": "group", "set_sla_policy": "policy"}
MAX_REGEX = 500
TAG = re.compile(r"^[\w:.\-]{1,60}$")


# --- validation -------------------------------------------------------------------------------


def rule_problems(
    *, name: str, events: Any, conditions: Any, actions: Any, any_conditions: Any = (), stop_processing: Any = False
) -> list[str]:
    """Every problem of a rule, each named so a manager can fix it (empty = valid)."""
    problems: list[str] = []
    if not isinstance(name, str) or not name.strip():
        problems.append("name: required")
    if not isinstance(events, list) or not events:
        problems.append(f"events: a non-empty list, each one of {', '.join(EVENTS)}")
    else:
        for e in events:
            if e not in EVENTS:
                problems.append(f"events: unknown event {e!r}; use one of {', '.join(EVENTS)}")
    for key, conds in (("conditions", conditions), ("any_conditions", any_conditions)):
        if not isinstance(conds, (list, tuple)):
            problems.append(f"{key}: a list of {{field, op, value}}")
            continue
        for i, cond in enumerate(conds):
            problems += [f"{key}[{i}]: {p}" for p in condition_problems(cond)]
    if not isinstance(actions, list) or not actions:
        problems.append("actions: a non-empty list of {type, value}")
    else:
        for i, act in enumerate(actions):
            problems += [f"actions[{i}]: {p}" for p in action_problems(act)]
    if not isinstance(stop_processing, bool):
        problems.append("stop_processing: true or false")
    return problems


def condition_problems(cond: Any) -> list[str]:
    if not isinstance(cond, dict):
        return ["a condition is an object {field, op, value}"]
    extra = set(cond) - {"field", "op", "value"}
    problems = [f"unknown key(s) {', '.join(sorted(extra))}"] if extra else []
    fname, op, value = cond.get("field"), cond.get("op"), cond.get("value")
    if not isinstance(fname, str):
        return [*problems, "field: required"]
    if fname.startswith(METADATA_PREFIX):
        kind, choices = "string", ()
        if not fname[len(METADATA_PREFIX):]:
            problems.append("field: name the metadata key, e.g. metadata.needs_callback")
    elif fname in FIELDS:
        kind, choices = FIELDS[fname]
    else:
        return [*problems, f"field: unknown field {fname!r}; use one of {', '.join(FIELDS)} or metadata.<key>"]
    ops = _OPS[kind]
    if op not in ops:
        return [*problems, f"op: {op!r} does not apply to {fname}; use one of {', '.join(ops)}"]
    if "value" not in cond:
        return [*problems, "value: required"]
    problems += _value_problems(fname, kind, choices, op, value)
    return problems


def _value_problems(fname: str, kind: str, choices: tuple[str, ...], op: str, value: Any) -> list[str]:
    listy = op in ("in", "not_in", "contains_any", "contains_all")
    if listy:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            return [f"value: {op} takes a non-empty list of strings"]
        values = value
    elif kind == "trend" and op not in ("eq", "ne"):
        return [] if _is_number(value) else [f"value: {op} on {fname} compares the slope; give a number"]
    elif kind == "number":
        return [] if _is_number(value) else [f"value: {fname} {op} takes a number"]
    elif kind == "bool":
        return [] if isinstance(value, bool) else [f"value: {fname} takes true or false"]
    elif not isinstance(value, str):
        return [f"value: {fname} {op} takes a string"]
    else:
        values = [value]
    if choices:
        bad = [v for v in values if v not in choices]
        if bad:
            return [f"value: {', '.join(map(repr, bad))} not one of {', '.join(choices)}"]
    if op == "regex":
        if len(value) > MAX_REGEX:
            return [f"value: the regular expression is longer than {MAX_REGEX} characters"]
        try:
            re.compile(value, re.IGNORECASE)
        except re.error as exc:
            return [f"value: invalid regular expression {value!r}: {exc}"]
    return []


def action_problems(act: Any) -> list[str]:
    if not isinstance(act, dict):
        return ["an action is an object {type, value}"]
    kind, value = act.get("type"), act.get("value")
    extra = set(act) - {"type", "value"}
    problems = [f"unknown key(s) {', '.join(sorted(extra))}"] if extra else []
    if kind not in ACTIONS:
        return [*problems, f"type: unknown action {kind!r}; use one of {', '.join(ACTIONS)}"]
    if kind == "set_priority" and value not in PRIORITIES:
        problems.append(f"value: set_priority takes one of {', '.join(PRIORITIES)}")
    elif kind in NAMED_ACTIONS and (not isinstance(value, str) or not value.strip()):
        problems.append(f"value: {kind} takes the {NAMED_ACTIONS[kind]}'s name")
    elif kind == "add_tags":
        if not isinstance(value, list) or not value or not all(isinstance(t, str) and TAG.match(t) for t in value):
            problems.append("value: add_tags takes a non-empty list of tags (letters, digits, _ : . -; ≤ 60 chars)")
    elif kind == "auto_ack" and (not isinstance(value, str) or not value.strip()):
        problems.append("value: auto_ack takes the acknowledgement text")
    elif kind == "notify" and value is not None and not isinstance(value, str):
        problems.append("value: notify takes an optional note (a string)")
    elif kind in ("assign", "escalate") and value is not None:
        problems.append(f"value: {kind} takes no value")
    return problems


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # not NaN


# --- evaluation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConditionResult:
    field: str
    op: str
    value: Any
    actual: Any
    held: bool


@dataclass
class RuleResult:
    name: str
    fired: bool
    conditions: list[ConditionResult] = field(default_factory=list)
    any_conditions: list[ConditionResult] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    #: not evaluated because an earlier rule stopped processing
    skipped: bool = False
    stop_processing: bool = False


@lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except (re.error, TypeError, ValueError):
        return None


def _actual(facts: Mapping[str, Any], fname: Any) -> Any:
    if not isinstance(fname, str):
        return None
    if fname.startswith(METADATA_PREFIX):
        meta = facts.get("metadata")
        return meta.get(fname[len(METADATA_PREFIX):]) if isinstance(meta, Mapping) else None
    if fname == "sentiment_trend":
        return facts.get("sentiment_trend")
    return facts.get(fname)


def condition_holds(cond: Mapping[str, Any], facts: Mapping[str, Any]) -> ConditionResult:
    """One condition against the facts; never raises."""
    fname, op, value = cond.get("field"), cond.get("op"), cond.get("value")
    try:
        actual = _actual(facts, fname)
        if fname == "sentiment_trend" and op in (">=", "<=", ">", "<"):
            actual = facts.get("sentiment_slope")
        held = _compare(fname, op, value, actual)
    except Exception:  # noqa: BLE001 - a rule must never break ingest; an odd fact is "does not hold"
        actual, held = None, False
    return ConditionResult(str(fname), str(op), value, _plain(actual), bool(held))


def _compare(fname: Any, op: Any, value: Any, actual: Any) -> bool:
    if fname == "priority" and op in (">=", "<=", ">", "<"):
        if actual not in PRIORITIES or value not in PRIORITIES:
            return False
        a, v = PRIORITIES.index(actual), PRIORITIES.index(value)
        return _numeric(op, a, v)
    if op == "eq":
        return _norm(actual) == _norm(value)
    if op == "ne":
        return _norm(actual) != _norm(value)
    if op == "in":
        return isinstance(value, list) and _norm(actual) in [_norm(v) for v in value]
    if op == "not_in":
        return isinstance(value, list) and _norm(actual) not in [_norm(v) for v in value]
    if op in (">=", "<=", ">", "<"):
        if not _is_number(actual) or not _is_number(value):
            return False
        return _numeric(op, actual, value)
    if op in ("contains", "not_contains", "contains_any", "contains_all"):
        if isinstance(actual, (list, tuple, set, frozenset)):
            have = {str(a).lower() for a in actual}
            wanted = [str(v).lower() for v in (value if isinstance(value, list) else [value])]
            if op == "contains":
                return wanted[0] in have if wanted else False
            if op == "not_contains":
                return not (set(wanted) & have)
            if op == "contains_any":
                return bool(set(wanted) & have)
            return set(wanted) <= have
        if isinstance(actual, str) and isinstance(value, str):
            inside = value.lower() in actual.lower()
            return inside if op == "contains" else (not inside if op == "not_contains" else False)
        return op == "not_contains" and actual is None
    if op == "regex":
        pattern = _regex(value) if isinstance(value, str) else None
        return pattern is not None and isinstance(actual, str) and pattern.search(actual) is not None
    return False


def _numeric(op: str, a: float, v: float) -> bool:
    return {">=": a >= v, "<=": a <= v, ">": a > v, "<": a < v}[op]


def _norm(x: Any) -> Any:
    return x.lower() if isinstance(x, str) else x


def _plain(x: Any) -> Any:
    """JSON-friendly actual value for explanations (long texts shortened)."""
    if isinstance(x, str) and len(x) > 200:
        return x[:199] + "…"
    if isinstance(x, (set, frozenset, tuple)):
        return sorted(map(str, x))
    return x


def rule_matches(rule: Mapping[str, Any], facts: Mapping[str, Any], *, explain: bool = False) -> RuleResult:
    """All `conditions` hold (and one of `any_conditions`, if any); short-circuits unless explaining."""
    result = RuleResult(name=str(rule.get("name", "")), fired=False, stop_processing=bool(rule.get("stop_processing")))
    ok = True
    for cond in rule.get("conditions") or ():
        r = condition_holds(cond, facts)
        result.conditions.append(r)
        if not r.held:
            ok = False
            if not explain:
                return result
    anys = rule.get("any_conditions") or ()
    if anys:
        any_ok = False
        for cond in anys:
            r = condition_holds(cond, facts)
            result.any_conditions.append(r)
            if r.held:
                any_ok = True
                if not explain:
                    break
        ok = ok and any_ok
    result.fired = ok
    if ok:
        result.actions = [dict(a) for a in rule.get("actions") or () if isinstance(a, Mapping)]
    return result


def escalated_priority(priority: Any) -> str:
    """One step up (urgent stays urgent); an unknown priority counts as normal."""
    index = PRIORITIES.index(priority) if priority in PRIORITIES else 1
    return PRIORITIES[min(index + 1, len(PRIORITIES) - 1)]


def effect_on_facts(action: Mapping[str, Any], facts: MutableMapping[str, Any]) -> None:
    """What an action changes in the facts later rules see (used by dry-runs and by real runs)."""
    kind, value = action.get("type"), action.get("value")
    if kind == "set_priority" and value in PRIORITIES:
        facts["priority"] = value
    elif kind == "set_group" and isinstance(value, str):
        facts["group"] = value
    elif kind == "add_tags" and isinstance(value, list):
        facts["tags"] = sorted(set(facts.get("tags") or ()) | {str(v) for v in value})
    elif kind == "escalate":
        facts["priority"] = escalated_priority(facts.get("priority"))
        facts["tags"] = sorted(set(facts.get("tags") or ()) | {"escalated"})


def rules_plan(
    rules: Iterable[Mapping[str, Any]],
    *,
    event: str,
    facts: MutableMapping[str, Any],
    explain: bool = False,
    apply: Callable[[Mapping[str, Any], RuleResult], None] | None = None,
) -> list[RuleResult]:
    """Evaluate rules in order for `event`: a rule that fires has its actions applied (by `apply`,
    or only to the facts when None: a dry-run), later rules see the changed facts, and a fired
    rule with stop_processing ends the run (the rest are reported as skipped)."""
    results: list[RuleResult] = []
    stopped = False
    for rule in rules:
        if event not in (rule.get("events") or ()):
            continue
        if stopped:
            if explain:
                results.append(RuleResult(name=str(rule.get("name", "")), fired=False, skipped=True))
            continue
        result = rule_matches(rule, facts, explain=explain)
        results.append(result)
        if result.fired:
            if apply is not None:
                apply(rule, result)
            else:
                for action in result.actions:
                    effect_on_facts(action, facts)
            stopped = result.stop_processing
    return results
