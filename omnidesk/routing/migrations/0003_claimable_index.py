"""The queue's claim index: only claimable rows (unassigned, new/open), in queue order.

It lives on the tickets table but serves routing's claim alone (omnidesk.routing.queue): the
expression must stay identical to queue.PRIORITY_RANK_SQL. Claimed tickets leave the index, so
"next ticket" reads one entry whatever the number already claimed. PostgreSQL and SQLite both
support partial expression indexes.
"""

from django.db import migrations

CREATE = (
    "CREATE INDEX IF NOT EXISTS routing_ticket_claimable ON tickets_ticket "
    "(sla_due_at, (CASE \"priority\" WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END), "
    "created_at, id) WHERE assignee_id IS NULL AND status IN ('new', 'open')"
)


class Migration(migrations.Migration):
    dependencies = [("routing", "0002_rules_skills_strategy"), ("tickets", "0002_sla_outcomes_queue_sentiment")]
    operations = [migrations.RunSQL(CREATE, "DROP INDEX IF EXISTS routing_ticket_claimable")]
