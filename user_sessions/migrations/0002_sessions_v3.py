# django-user-sessions 3: sign-in time, a public handle, longer user agents and
# an index for "this user's sessions, most recent first".
from __future__ import annotations

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


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
                default=django.utils.timezone.now, verbose_name="last activity"
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
        migrations.AddField(
            model_name="session",
            name="created_at",
            field=models.DateTimeField(default=django.utils.timezone.now, verbose_name="signed in"),
        ),
        migrations.AddField(
            model_name="session",
            name="handle",
            field=models.CharField(max_length=32, null=True, editable=False),
        ),
    ]
