# Fills created_at and handle of the rows that existed before 0002, while 2.x
# code may still be reading and writing them.
#
# Not atomic: each batch is one UPDATE in its own short transaction, so a row
# is locked for milliseconds, never for the whole backfill. The batches walk
# the primary key, so each costs the same however far the walk has come. The
# database computes the values (one statement per batch, no row passes through
# Python). Interrupted, it resumes where it stopped: only rows without a handle
# are written, and every row 2.x inserts since 0002 has one by default.
from __future__ import annotations

from django.db import migrations, models

from user_sessions.migrations._operations import AddMissingDatabaseDefaults
from user_sessions.models import RandomHandle

BATCH = 5000


def fill_new_columns(apps, schema_editor):
    Session = apps.get_model("user_sessions", "Session")
    sessions = Session.objects.using(schema_editor.connection.alias)
    after = ""  # session keys are never empty
    while True:
        upper = (
            sessions.filter(session_key__gt=after)
            .order_by("session_key")
            .values_list("session_key", flat=True)[BATCH - 1 : BATCH]
            .first()
        )
        batch = sessions.filter(session_key__gt=after, handle__isnull=True)
        if upper is not None:
            batch = batch.filter(session_key__lte=upper)
        # Rows without a handle are those from before 0002: their sign-in time
        # is unknown, and their last activity is the best guess there is.
        batch.update(created_at=models.F("last_activity"), handle=RandomHandle())
        if upper is None:
            return
        after = upper


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("user_sessions", "0002_sessions_v3")]

    operations = [
        # For sites that ran 0002 before it set these: 2.x code can insert again.
        AddMissingDatabaseDefaults("session", ["created_at", "last_activity", "handle"]),
        migrations.RunPython(fill_new_columns, migrations.RunPython.noop, elidable=True),
    ]
