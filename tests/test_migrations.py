from __future__ import annotations

import datetime

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

APP = "user_sessions"


@pytest.mark.django_db
def test_no_missing_migrations():
    call_command("makemigrations", APP, "--check", "--dry-run", verbosity=0)


@pytest.mark.django_db(transaction=True)
def test_upgrade_from_a_2x_table_keeps_rows_and_gives_each_a_handle(
    user_factory, monkeypatch: pytest.MonkeyPatch
):
    import importlib

    # Batches of two, so the three rows below take more than one.
    fill = importlib.import_module("user_sessions.migrations.0003_fill_new_columns")
    monkeypatch.setattr(fill, "BATCH", 2)
    owner = user_factory()
    executor = MigrationExecutor(connection)
    executor.migrate([(APP, "0001_initial")])
    try:
        table = connection.ops.quote_name("user_sessions_session")
        when = timezone.now() - datetime.timedelta(hours=3)
        expire = timezone.now() + datetime.timedelta(days=1)
        with connection.cursor() as cursor:
            for i in range(3):
                cursor.execute(
                    f"INSERT INTO {table} (session_key, session_data, expire_date, user_agent,"
                    " last_activity, ip, user_id) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [f"legacykey{i:02d}", "data", expire, "UA", when, "203.0.113.1", owner.pk],
                )
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes(APP))
        from user_sessions.models import Session

        rows = list(Session.objects.order_by("session_key"))
        assert [r.session_key for r in rows] == ["legacykey00", "legacykey01", "legacykey02"]
        assert len({r.handle for r in rows}) == 3
        assert all(r.handle and r.handle not in r.session_key for r in rows)
        assert all(abs((r.created_at - when).total_seconds()) < 1 for r in rows)
        assert all(r.user_id == owner.pk for r in rows)
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes(APP))
