from django.db import migrations, models

TRANSFERS = (
    "SELECT ticket_id FROM tickets_ticketevent"
    " WHERE action IN ('assignee_changed', 'group_changed') AND old IS NOT NULL AND new IS NOT NULL"
)
# float8send of each element, back to back: the same bits, so the report's numbers do not change
_TO_BYTES = (
    """CREATE FUNCTION pg_temp.float8s_send(a double precision[]) RETURNS bytea LANGUAGE sql IMMUTABLE STRICT AS
    $$ SELECT coalesce(string_agg(float8send(v), ''::bytea ORDER BY i), ''::bytea)
       FROM unnest(a) WITH ORDINALITY AS u(v, i) $$""",
    """ALTER TABLE tickets_ticket
    ALTER COLUMN next_response_samples TYPE bytea USING pg_temp.float8s_send(next_response_samples),
    ALTER COLUMN ingest_lag_samples TYPE bytea USING pg_temp.float8s_send(ingest_lag_samples)""",
    "DROP FUNCTION pg_temp.float8s_send(double precision[])",
)


def samples_to_bytes(apps, schema_editor):
    """PostgreSQL: the float8[] sample lists become bytea (SampleListField), one table rewrite; elsewhere nothing."""
    if schema_editor.connection.vendor == "postgresql":
        for sql in _TO_BYTES:
            schema_editor.execute(sql)


class Migration(migrations.Migration):

    dependencies = [
        ('tickets', '0005_drop_indexes_covered_by_composites'),
    ]

    operations = [
        migrations.AddField(
            model_name='ticket',
            name='transfer_count',
            field=models.PositiveIntegerField(default=0),
        ),
        # the transfers already recorded (counted by audit.ticket_event_record from now on)
        migrations.RunSQL(
            f"UPDATE tickets_ticket SET transfer_count = (SELECT count(*) FROM ({TRANSFERS}) e"
            f" WHERE e.ticket_id = tickets_ticket.id) WHERE id IN ({TRANSFERS})",
            migrations.RunSQL.noop,
        ),
        # the report read the transfers through it; it reads the count now
        migrations.RemoveIndex(model_name='ticketevent', name='ticketevent_transfer'),
        migrations.RunPython(samples_to_bytes, migrations.RunPython.noop),
    ]
