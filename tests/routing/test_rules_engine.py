"""The pure rule engine, exhaustively: evaluation never raises, operators agree with each other."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from omnidesk.routing import rules_engine as engine
from omnidesk.routing.sentiment import message_sentiment, sentiment_score, sentiment_trend

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
fields = st.sampled_from([*engine.FIELDS, "metadata.needs_callback", "nonsense", ""]) | st.text(max_size=10)
ops = st.sampled_from(sorted({op for ops in engine._OPS.values() for op in ops} | {"??"}))
conditions = st.fixed_dictionaries({"field": fields | json_values, "op": ops | json_values, "value": json_values})
facts = st.dictionaries(st.sampled_from([*engine.FIELDS, "metadata", "sentiment_slope"]), json_values)


@given(conditions, facts)
@settings(max_examples=600)
def test_a_condition_never_raises_on_anything(cond, facts):
    result = engine.condition_holds(cond, facts)
    assert isinstance(result.held, bool)


@given(st.lists(conditions, max_size=4), st.lists(json_values, max_size=3), facts)
def test_a_rule_never_raises_and_invalid_rules_are_described(conds, actions, facts):
    rule = {"name": "r", "events": ["customer_message"], "conditions": conds, "actions": actions}
    engine.rules_plan([rule], event="customer_message", facts=dict(facts), explain=True)
    problems = engine.rule_problems(name="r", events=["customer_message"], conditions=conds, actions=actions)
    assert all(isinstance(p, str) and p for p in problems)


numbers = st.integers(-10**6, 10**6) | st.floats(-1e6, 1e6, allow_nan=False)


@given(numbers, numbers)
def test_numeric_ops_are_consistent(actual, value):
    f = {"followers": actual}
    held = {op: engine.condition_holds({"field": "followers", "op": op, "value": value}, f).held
            for op in (">=", "<=", ">", "<", "eq", "ne")}
    assert held[">="] == (held[">"] or held["eq"])
    assert held["<="] == (held["<"] or held["eq"])
    assert held["eq"] != held["ne"]
    assert not (held[">"] and held["<"])


@given(st.sampled_from(engine.PRIORITIES), st.sampled_from(engine.PRIORITIES))
def test_priority_compares_by_rank_not_alphabet(actual, value):
    held = engine.condition_holds({"field": "priority", "op": "<", "value": value}, {"priority": actual}).held
    assert held == (engine.PRIORITIES.index(actual) < engine.PRIORITIES.index(value))


@given(st.lists(st.text(max_size=6), max_size=5), st.text(max_size=6))
def test_tag_ops_are_complements(tags, tag):
    f = {"tags": tags}
    contains = engine.condition_holds({"field": "tags", "op": "contains", "value": tag}, f).held
    absent = engine.condition_holds({"field": "tags", "op": "not_contains", "value": tag}, f).held
    assert contains != absent


@given(st.text(max_size=40), st.text(min_size=1, max_size=5))
def test_text_contains_is_case_insensitive(text, needle):
    f = {"text": text}
    held = engine.condition_holds({"field": "text", "op": "contains", "value": needle}, f).held
    assert held == (needle.lower() in text.lower())


def test_regex_is_case_insensitive_and_broken_ones_are_refused():
    f = {"text": "I want a REFUND now"}
    assert engine.condition_holds({"field": "text", "op": "regex", "value": r"\brefund\b"}, f).held
    problems = engine.condition_problems({"field": "text", "op": "regex", "value": "(unclosed"})
    assert problems and "invalid regular expression" in problems[0]


def test_every_problem_is_named():
    problems = engine.rule_problems(
        name="", events=["whenever"],
        conditions=[{"field": "followers", "op": "contains", "value": 1}, {"field": "mood", "op": "eq", "value": 1},
                    {"field": "text", "op": "regex", "value": "["}],
        actions=[{"type": "set_priority", "value": "asap"}, {"type": "explode"}],
    )
    text = "\n".join(problems)
    for expected in ("name: required", "unknown event 'whenever'", "conditions[0]: op: 'contains'",
                     "conditions[1]: field: unknown field 'mood'", "conditions[2]: value: invalid regular expression",
                     "actions[0]: value: set_priority", "actions[1]: type: unknown action 'explode'"):
        assert expected in text, (expected, text)


def test_stop_processing_skips_later_rules_and_actions_change_later_facts():
    rules = [
        {"name": "a", "events": ["customer_message"], "conditions": [], "actions": [{"type": "escalate"}]},
        {"name": "b", "events": ["customer_message"], "conditions": [{"field": "priority", "op": "eq", "value": "high"}],
         "actions": [{"type": "add_tags", "value": ["seen"]}], "stop_processing": True},
        {"name": "c", "events": ["customer_message"], "conditions": [], "actions": [{"type": "notify"}]},
        {"name": "d", "events": ["agent_reply"], "conditions": [], "actions": [{"type": "notify"}]},
    ]
    facts = {"priority": "normal", "tags": []}
    results = engine.rules_plan(rules, event="customer_message", facts=facts, explain=True)
    assert [(r.name, r.fired, r.skipped) for r in results] == [("a", True, False), ("b", True, False), ("c", False, True)]
    assert facts["priority"] == "high" and facts["tags"] == ["escalated", "seen"]


def test_any_conditions_need_one():
    rule = {"name": "reach", "events": ["customer_message"], "conditions": [],
            "any_conditions": [{"field": "followers", "op": ">=", "value": 10000},
                               {"field": "verified", "op": "eq", "value": True}],
            "actions": [{"type": "set_priority", "value": "high"}]}
    assert engine.rule_matches(rule, {"followers": 20, "verified": True}).fired
    assert engine.rule_matches(rule, {"followers": 20000, "verified": None}).fired
    assert not engine.rule_matches(rule, {"followers": None, "verified": None}).fired


@given(st.lists(st.floats(-1, 1, allow_nan=False), max_size=8))
def test_trend_direction_agrees_with_slope(scores):
    trend = sentiment_trend(scores)
    if len(scores) < 2:
        assert trend.direction is None
    else:
        assert (trend.direction == "falling") == (trend.slope <= -0.15)
        assert (trend.direction == "rising") == (trend.slope >= 0.15)


def test_vader_scores_customer_text_only():
    assert sentiment_score(text="This is the worst service ever, I am furious!") <= -0.5
    assert sentiment_score(text="Thanks, that was great help!") >= 0.5
    assert sentiment_score(text="   ") is None
    assert message_sentiment(text="awful", automated=True, is_call=False) is None
    assert message_sentiment(text="awful", automated=False, is_call=True) is None
