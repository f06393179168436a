# Data only, in a migration of its own: PostgreSQL refuses ALTER TABLE in the
# transaction that just updated the rows.
from __future__ import annotations

import secrets

from django.db import migrations, models

BATCH = 1000


def fill_new_columns(apps, schema_editor):
    Session = apps.get_model("user_sessions", "Session")
    db = schema_editor.connection.alias
    # Existing rows began no later than their last activity: the best
    # sign-in time we can give them.
    Session.objects.using(db).update(created_at=models.F("last_activity"))
    while True:
        keys = list(
            Session.objects.using(db)
            .filter(handle__isnull=True)
            .values_list("session_key", flat=True)[:BATCH]
        )
        if not keys:
            break
        # One statement per batch, not per row: 2.x tables can be large.
        Session.objects.using(db).bulk_update(
            [Session(session_key=key, handle=secrets.token_urlsafe(16)) for key in keys],
            ["handle"],
        )


class Migration(migrations.Migration):
    dependencies = [("user_sessions", "0002_sessions_v3")]

    operations = [
        migrations.RunPython(fill_new_columns, migrations.RunPython.noop, elidable=True),
    ]
