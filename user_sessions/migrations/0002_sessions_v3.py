# django-user-sessions 3: sign-in time, a public handle, longer user agents and
# an index for "this user's sessions, most recent first".
#
# 2.x code may still be serving while this runs (a rolling deploy), and it
# inserts rows without created_at or handle: both get a database default, so
# its rows are complete. On PostgreSQL and MariaDB every statement here
# changes the table's definition only, not its rows. (SQLite rebuilds the
# table for most of them; it has one writer at a time in any case.)
from __future__ import annotations

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import user_sessions.models


class Migration(migrations.Migration):
    dependencies = [
        ("user_sessions", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="session",
            options={"verbose_name": "session", "verbose_name_plural": "sessions"},
        ),
        migrations.AlterField(
            model_name="session",
            name="user_agent",
            field=models.CharField(
                blank=True, max_length=400, null=True, verbose_name="user agent"
            ),
        ),
        migrations.AlterField(
            model_name="session",
            name="ip",
            field=models.GenericIPAddressField(blank=True, null=True, verbose_name="IP address"),
        ),
        migrations.AlterField(
            model_name="session",
            name="last_activity",
            field=models.DateTimeField(
                db_default=user_sessions.models.UtcNow(),
                default=django.utils.timezone.now,
                verbose_name="last activity",
            ),
        ),
        migrations.AlterField(
            model_name="session",
            name="user",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="session_set",
                to=settings.AUTH_USER_MODEL,
                verbose_name="user",
            ),
        ),
        # Both columns are added empty and get their default after: a default
        # on ADD COLUMN is written into every existing row (MariaDB copies the
        # table to do it, PostgreSQL rewrites it for a random one), blocking
        # writes meanwhile. 0003 fills the existing rows, 0004 makes them NOT NULL.
        migrations.AddField(
            model_name="session",
            name="created_at",
            field=models.DateTimeField(null=True, verbose_name="signed in"),
        ),
        migrations.AddField(
            model_name="session",
            name="handle",
            field=models.CharField(max_length=32, null=True, editable=False),
        ),
        migrations.AlterField(
            model_name="session",
            name="created_at",
            field=models.DateTimeField(
                db_default=user_sessions.models.UtcNow(),
                default=django.utils.timezone.now,
                null=True,
                verbose_name="signed in",
            ),
        ),
        migrations.AlterField(
            model_name="session",
            name="handle",
            field=models.CharField(
                db_default=user_sessions.models.RandomHandle(),
                editable=False,
                max_length=32,
                null=True,
            ),
        ),
    ]
