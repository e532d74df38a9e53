"""The shipped default: one policy for every channel (no channel condition), in calendar time."""

from django.db import migrations

TARGETS = {
    "urgent": {"first_response": 60, "next_response": 120, "resolution": 480},
    "high": {"first_response": 120, "next_response": 240, "resolution": 1440},
    "normal": {"first_response": 240, "next_response": 480, "resolution": 2880},
    "low": {"first_response": 480, "next_response": 1440, "resolution": 7200},
}


def create(apps, schema_editor):
    Calendar = apps.get_model("sla", "Calendar")
    Policy = apps.get_model("sla", "Policy")
    Calendar.objects.get_or_create(
        name="Business hours (Mon–Fri 09–17 UTC)",
        defaults={"timezone": "UTC", "hours": {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}},
    )
    Policy.objects.get_or_create(name="Standard", defaults={"position": 1000, "conditions": {}, "targets": TARGETS})


class Migration(migrations.Migration):
    dependencies = [("sla", "0001_initial")]
    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
