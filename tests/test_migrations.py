from __future__ import annotations

import datetime
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

APP = "user_sessions"


@pytest.mark.django_db
def test_no_missing_migrations():
    call_command("makemigrations", APP, "--check", "--dry-run", verbosity=0)


def migrate_to_latest() -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes(APP))


@dataclass
class LegacyTable:
    owner: Any
    name: str
    when: datetime.datetime

    def insert(self, count: int) -> None:
        expire = timezone.now() + datetime.timedelta(days=1)
        with connection.cursor() as cursor:
            for i in range(count):
                cursor.execute(
                    f"INSERT INTO {self.name} (session_key, session_data, expire_date,"
                    " user_agent, last_activity, ip, user_id)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [
                        f"legacykey{i:02d}",
                        "data",
                        expire,
                        "UA",
                        self.when,
                        "203.0.113.1",
                        self.owner.pk,
                    ],
                )


@pytest.fixture
def legacy_table(
    transactional_db: None, user_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LegacyTable]:
    """The 2.x table (migration 0001), backfilled in batches of two so a few rows take more
    than one; the schema is migrated back to the latest afterwards, whatever the test did."""
    fill = importlib.import_module("user_sessions.migrations.0003_fill_new_columns")
    monkeypatch.setattr(fill, "BATCH", 2)
    owner = user_factory()
    MigrationExecutor(connection).migrate([(APP, "0001_initial")])
    try:
        yield LegacyTable(
            owner=owner,
            name=connection.ops.quote_name("user_sessions_session"),
            when=timezone.now() - datetime.timedelta(hours=3),
        )
    finally:
        migrate_to_latest()


def test_upgrade_from_a_2x_table_keeps_rows_and_gives_each_a_handle(
    legacy_table: LegacyTable,
) -> None:
    legacy_table.insert(3)

    migrate_to_latest()
    from user_sessions.models import Session

    rows = list(Session.objects.order_by("session_key"))
    assert [r.session_key for r in rows] == ["legacykey00", "legacykey01", "legacykey02"]
    assert len({r.handle for r in rows}) == 3
    assert all(r.handle and r.handle not in r.session_key for r in rows)
    assert all(abs((r.created_at - legacy_table.when).total_seconds()) < 1 for r in rows)
    assert all(r.user_id == legacy_table.owner.pk for r in rows)


def test_an_interrupted_backfill_resumes_where_it_stopped(
    legacy_table: LegacyTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db.models import QuerySet

    table = legacy_table.name
    legacy_table.insert(5)
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

    migrate_to_latest()
    from user_sessions.models import Session

    handles = dict(Session.objects.values_list("session_key", "handle"))
    assert len(handles) == 5 and len(set(handles.values())) == 5 and all(handles.values())
    # What the first run wrote stays: a handle once shown is not changed.
    assert handles["legacykey00"] == first_run["legacykey00"]
    assert handles["legacykey01"] == first_run["legacykey01"]
