from django.db import migrations, models

import omnidesk.reports.fields

#: tickets whose lag dict names another channel than their own: those lists move to ingest_lag_elsewhere
_MOVE_ELSEWHERE = """
    UPDATE tickets_ticket t
    SET ingest_lag_elsewhere = t.ingest_lag_samples - a.kind,
        ingest_lag_samples = jsonb_build_object(a.kind, coalesce(t.ingest_lag_samples -> a.kind, '[]'::jsonb))
    FROM plugins_channelaccount a
    WHERE a.id = t.origin_account_id AND t.ingest_lag_samples - a.kind <> '{}'::jsonb
"""
# A JSON array of numbers reads as a float8[] once its brackets are braces: each element is parsed
# from the same text `->> i)::float8` parsed before, so the values are bit for bit the same.
_TO_ARRAYS = """
    ALTER TABLE tickets_ticket
    ALTER COLUMN next_response_samples TYPE double precision[]
        USING translate(next_response_samples::text, '[]', '{}')::double precision[],
    ALTER COLUMN ingest_lag_samples TYPE double precision[]
        USING translate(jsonb_path_query_array(ingest_lag_samples, '$.*[*]')::text, '[]', '{}')::double precision[]
"""


def samples_to_arrays(apps, schema_editor):
    """PostgreSQL: convert the stored JSON in place (one table rewrite); elsewhere recompute the facts."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_MOVE_ELSEWHERE)
        schema_editor.execute(_TO_ARRAYS)
        return
    from omnidesk.reports.facts import facts_backfill

    facts_backfill(ticket_model=apps.get_model("tickets", "Ticket"), message_model=apps.get_model("tickets", "Message"))


class Migration(migrations.Migration):

    dependencies = [
        ("plugins", "0001_initial"),
        ("tickets", "0003_report_facts"),
    ]

    operations = [
        migrations.AddField(
            model_name="ticket",
            name="ingest_lag_elsewhere",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="ticket",
                    name="next_response_samples",
                    field=omnidesk.reports.fields.SampleListField(blank=True, default=list),
                ),
                migrations.AlterField(
                    model_name="ticket",
                    name="ingest_lag_samples",
                    field=omnidesk.reports.fields.SampleListField(blank=True, default=list),
                ),
            ],
            database_operations=[migrations.RunPython(samples_to_arrays, migrations.RunPython.noop)],
        ),
        migrations.AddIndex(
            model_name="ticket",
            index=models.Index(
                condition=models.Q(("ingest_lag_elsewhere", {}), _negated=True),
                fields=["customer_first_message_at"],
                name="ticket_lag_elsewhere",
            ),
        ),
    ]
