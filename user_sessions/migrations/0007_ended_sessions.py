# The history of ended sessions (user_sessions.history). A new table only:
# nothing reads or writes it until this version serves, so a rolling deploy
# may run it at any point.
from __future__ import annotations

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import user_sessions.events


class Migration(migrations.Migration):
    dependencies = [
        ("user_sessions", "0006_session_client_hints"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="EndedSession",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("handle", models.CharField(max_length=32, verbose_name="handle")),
                (
                    "ip",
                    models.GenericIPAddressField(blank=True, null=True, verbose_name="IP address"),
                ),
                (
                    "user_agent",
                    models.CharField(
                        blank=True, max_length=400, null=True, verbose_name="user agent"
                    ),
                ),
                (
                    "client_hints",
                    models.CharField(
                        blank=True, max_length=255, null=True, verbose_name="client hints"
                    ),
                ),
                (
                    "created_at",
                    models.DateTimeField(blank=True, null=True, verbose_name="signed in"),
                ),
                (
                    "last_activity",
                    models.DateTimeField(blank=True, null=True, verbose_name="last activity"),
                ),
                (
                    "ended_at",
                    models.DateTimeField(default=django.utils.timezone.now, verbose_name="ended"),
                ),
                (
                    "reason",
                    models.CharField(
                        choices=user_sessions.events.Reason.choices,
                        max_length=32,
                        verbose_name="reason",
                    ),
                ),
                (
                    "ended_by",
                    models.CharField(
                        choices=user_sessions.events.EndedBy.choices,
                        max_length=16,
                        verbose_name="ended by",
                    ),
                ),
                (
                    "by_handle",
                    models.CharField(
                        blank=True, max_length=32, null=True, verbose_name="ended from"
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="ended_sessions",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="user",
                    ),
                ),
            ],
            options={
                "verbose_name": "ended session",
                "verbose_name_plural": "ended sessions",
                "indexes": [
                    models.Index(fields=["user", "-ended_at"], name="user_sessions_ended_recent"),
                    models.Index(fields=["ended_at"], name="user_sessions_ended_at"),
                ],
            },
        ),
    ]
