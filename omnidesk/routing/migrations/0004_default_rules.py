"""The shipped default rules: reach, sentiment and the ignored complaint, the same for every channel.

A manager can change, deactivate or delete any of them; this migration never recreates one
that was deleted or renamed (it only runs once).
"""

from django.db import migrations

NOT_AUTOMATED = {"field": "automated", "op": "eq", "value": False}
ON_MESSAGE = ["ticket_created", "customer_message"]

RULES = [
    {
        "name": "Reach: a public message to a large audience",
        "description": "10,000+ followers or a verified author, in public: raise to high priority.",
        "position": 10,
        "events": ON_MESSAGE,
        "conditions": [
            {"field": "visibility", "op": "eq", "value": "public"},
            NOT_AUTOMATED,
            {"field": "priority", "op": "<", "value": "high"},
        ],
        "any_conditions": [
            {"field": "followers", "op": ">=", "value": 10000},
            {"field": "verified", "op": "eq", "value": True},
        ],
        "actions": [{"type": "set_priority", "value": "high"}],
    },
    {
        "name": "Missed call: call the customer back",
        "description": "A missed or abandoned call (phone metadata needs_callback=true) is tagged needs-callback.",
        "position": 20,
        "events": ON_MESSAGE,
        "conditions": [
            {"field": "metadata.needs_callback", "op": "eq", "value": "true"},
            {"field": "tags", "op": "not_contains", "value": "needs-callback"},
        ],
        "actions": [{"type": "add_tags", "value": ["needs-callback"]}],
    },
    {
        "name": "Negative sentiment",
        "description": "VADER compound ≤ -0.5 on the customer's message: tag negative.",
        "position": 30,
        "events": ON_MESSAGE,
        "conditions": [
            {"field": "sentiment", "op": "<=", "value": -0.5},
            {"field": "tags", "op": "not_contains", "value": "negative"},
        ],
        "actions": [{"type": "add_tags", "value": ["negative"]}],
    },
    {
        "name": "Falling sentiment: escalate",
        "description": "The customer's mood falls across their last messages (any channel) and is negative now.",
        "position": 40,
        "events": ON_MESSAGE,
        "conditions": [
            {"field": "tags", "op": "not_contains", "value": "escalated"},
            {"field": "sentiment", "op": "<=", "value": -0.05},
            {"field": "sentiment_trend", "op": "eq", "value": "falling"},
        ],
        "actions": [{"type": "escalate"}],
    },
    {
        "name": "The ignored complaint",
        "description": (
            "The customer wrote again while an earlier message (any channel, any ticket) is still "
            "unanswered: tag repeat-complaint and escalate, whatever channel this one came on."
        ),
        "position": 50,
        "events": ON_MESSAGE,
        "conditions": [
            {"field": "tags", "op": "not_contains", "value": "repeat-complaint"},
            NOT_AUTOMATED,
            {"field": "repeat_complaint", "op": "eq", "value": True},
        ],
        "actions": [{"type": "add_tags", "value": ["repeat-complaint"]}, {"type": "escalate"}],
    },
    {
        "name": "Acknowledge new private conversations",
        "description": "Off by default. Never sent to automated mail, at most once per ticket, only where the channel can send.",
        "position": 90,
        "active": False,
        "events": ["ticket_created"],
        "conditions": [NOT_AUTOMATED, {"field": "visibility", "op": "eq", "value": "private"}],
        "actions": [{
            "type": "auto_ack",
            "value": "Thanks for getting in touch. We have your message and will answer as soon as we can.",
        }],
    },
]


def create(apps, schema_editor):
    Rule = apps.get_model("routing", "Rule")
    for spec in RULES:
        Rule.objects.get_or_create(name=spec["name"], defaults={k: v for k, v in spec.items() if k != "name"})


def remove(apps, schema_editor):
    apps.get_model("routing", "Rule").objects.filter(name__in=[r["name"] for r in RULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("routing", "0003_claimable_index")]
    operations = [migrations.RunPython(create, remove)]
