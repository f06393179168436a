# NOT NULL and unique are safe while 2.x code still inserts: its rows get
# created_at and a handle from the database defaults. A row still without them
# (0003 filled every row there was) gets them first, from the same defaults.
from __future__ import annotations

import django.utils.timezone
from django.db import migrations, models

import user_sessions.models


class Migration(migrations.Migration):
    dependencies = [("user_sessions", "0003_fill_new_columns")]

    operations = [
        migrations.AlterField(
            model_name="session",
            name="created_at",
            field=models.DateTimeField(
                db_default=user_sessions.models.UtcNow(),
                default=django.utils.timezone.now,
                verbose_name="signed in",
            ),
        ),
        migrations.AlterField(
            model_name="session",
            name="handle",
            field=models.CharField(
                db_default=user_sessions.models.RandomHandle(),
                default=user_sessions.models.new_handle,
                editable=False,
                max_length=32,
                unique=True,
                verbose_name="handle",
            ),
        ),
        migrations.AddIndex(
            model_name="session",
            index=models.Index(fields=["user", "-last_activity"], name="user_sessions_user_recent"),
        ),
    ]
