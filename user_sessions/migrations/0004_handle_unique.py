from __future__ import annotations

from django.db import migrations, models

import user_sessions.models


class Migration(migrations.Migration):
    dependencies = [("user_sessions", "0003_fill_new_columns")]

    operations = [
        migrations.AlterField(
            model_name="session",
            name="handle",
            field=models.CharField(
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
