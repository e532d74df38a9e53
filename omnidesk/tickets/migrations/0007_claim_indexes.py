"""Four indexes fewer for every claim to write.

A claim's UPDATE changes assignee_id, which other indexes hold, so it is never a HOT update and writes
an entry into every index of the table. These three served no query: `ticket_queue_order` (the
queue pages filter on status, which the (status, group) index serves as well, and no index gives
their order, an IN list then the priority rank; claims read routing_ticket_claimable), and the two
policy FKs, looked up only when a policy is deleted. bench/claim.py: PostgreSQL CPU per claim
-13 to -16 % (docs/benchmarks.md). And the audit event a claim (and every change) writes: the
event's ticket FK index is covered by (ticket, at).
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('sla', '0001_initial'),
        ('tickets', '0006_report_columns'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='ticket',
            name='ticket_queue_order',
        ),
        migrations.AlterField(
            model_name='ticket',
            name='sla_policy',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='sla.policy'),
        ),
        migrations.AlterField(
            model_name='ticket',
            name='sla_policy_override',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='sla.policy'),
        ),
        migrations.AlterField(
            model_name='ticketevent',
            name='ticket',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='events', to='tickets.ticket'),
        ),
    ]
