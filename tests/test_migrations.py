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


@pytest.mark.django_db(transaction=True)
def test_an_interrupted_backfill_resumes_where_it_stopped(
    user_factory, monkeypatch: pytest.MonkeyPatch
):
    import importlib

    from django.db.models import QuerySet

    fill = importlib.import_module("user_sessions.migrations.0003_fill_new_columns")
    monkeypatch.setattr(fill, "BATCH", 2)
    owner = user_factory()
    executor = MigrationExecutor(connection)
    executor.migrate([(APP, "0001_initial")])
    table = connection.ops.quote_name("user_sessions_session")
    when = timezone.now() - datetime.timedelta(hours=3)
    expire = timezone.now() + datetime.timedelta(days=1)
    try:
        with connection.cursor() as cursor:
            for i in range(5):
                cursor.execute(
                    f"INSERT INTO {table} (session_key, session_data, expire_date, user_agent,"
                    " last_activity, ip, user_id) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [f"legacykey{i:02d}", "data", expire, "UA", when, "203.0.113.1", owner.pk],
                )
        # The second batch fails (a deploy killed, a lock timeout): 0003 is not recorded.
        update = QuerySet.update
        calls = []

        def failing_update(self, **kwargs):
            calls.append(kwargs)
            if len(calls) == 2:
                raise RuntimeError("interrupted")
            return update(self, **kwargs)

        monkeypatch.setattr(QuerySet, "update", failing_update)
        executor = MigrationExecutor(connection)
        with pytest.raises(RuntimeError, match="interrupted"):
            executor.migrate([(APP, "0003_fill_new_columns")])
        monkeypatch.setattr(QuerySet, "update", update)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT session_key, handle FROM {table} ORDER BY session_key")
            first_run = dict(cursor.fetchall())
        assert [key for key, handle in first_run.items() if handle] == [
            "legacykey00",
            "legacykey01",
        ]
        recorded = MigrationExecutor(connection).loader.applied_migrations
        assert (APP, "0003_fill_new_columns") not in recorded

        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes(APP))
        from user_sessions.models import Session

        handles = dict(Session.objects.values_list("session_key", "handle"))
        assert len(handles) == 5 and len(set(handles.values())) == 5 and all(handles.values())
        # What the first run wrote stays: a handle once shown is not changed.
        assert handles["legacykey00"] == first_run["legacykey00"]
        assert handles["legacykey01"] == first_run["legacykey01"]
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes(APP))
