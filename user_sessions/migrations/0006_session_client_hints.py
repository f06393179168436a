# Nullable and without a default: 2.x code and this package's earlier 3.x
# releases, still serving during a rolling deploy, insert rows without it.
from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("user_sessions", "0005_database_defaults")]

    operations = [
        migrations.AddField(
            model_name="session",
            name="client_hints",
            field=models.CharField(
                blank=True, max_length=255, null=True, verbose_name="client hints"
            ),
        ),
    ]
