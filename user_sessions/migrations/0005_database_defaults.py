# Sites that ran 0002-0004 before those set database defaults have none, so
# 2.x code (still serving during a rolling deploy, or to be rolled back to)
# cannot insert sessions. This adds them; elsewhere it finds them and does nothing.
from __future__ import annotations

from django.db import migrations

from user_sessions.migrations._operations import AddMissingDatabaseDefaults


class Migration(migrations.Migration):
    dependencies = [("user_sessions", "0004_handle_unique")]

    operations = [
        AddMissingDatabaseDefaults("session", ["created_at", "last_activity", "handle"]),
    ]
