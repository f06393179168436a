"""Upgrading a 2.x table while 2.x code keeps serving (a rolling deploy).

2.x code knows only the columns of migration 0001. Its ORM inserts a session
with all of them (``save(force_insert=True)``) and updates one by writing them
all again (``save(force_update=True)``); the statements below are those, in
raw SQL, because the 2.x model class no longer exists here.
"""

from __future__ import annotations

import datetime
import itertools
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import IntegrityError, connection, migrations, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from user_sessions.backends.db import SessionStore
from user_sessions.migrations._operations import has_database_default, without_db_default
from user_sessions.models import RandomHandle, Session

APP = "user_sessions"
TABLE = "user_sessions_session"
BACKFILL = "0003_fill_new_columns"
LEGACY_COLUMNS = ("session_data", "expire_date", "user_id", "user_agent", "last_activity", "ip")

# Rows in the table while the backfill runs, and the longest another
# connection may wait for a row lock meanwhile.
BACKFILL_ROWS = 50_000
LOCK_WAIT_SECONDS = 1


def migrate_to(target: str) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([(APP, target)])


def steps_after_initial() -> list[str]:
    """This app's migrations after 0001, in the order ``migrate`` applies them."""
    graph = MigrationExecutor(connection).loader.graph
    plan = graph.forwards_plan(graph.leaf_nodes(APP)[0])
    return [name for app, name in plan if app == APP and name != "0001_initial"]


@pytest.fixture
def at_2x_schema(db: None) -> Iterator[None]:
    """The table as 2.x left it; the latest schema again afterwards."""
    migrate_to("0001_initial")
    try:
        yield
    finally:
        if connection.vendor == "mysql":
            with connection.cursor() as cursor:
                cursor.execute("SET time_zone = DEFAULT")
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes(APP))


def legacy_values(
    user_id: int | None, *, data: str = "", when: datetime.datetime | None = None
) -> list[Any]:
    ops = connection.ops
    when = when or timezone.now()
    expire = when + datetime.timedelta(days=14)
    return [
        data or SessionStore().encode({"written_by": "2.x"}),
        ops.adapt_datetimefield_value(expire),
        user_id,
        "Mozilla/5.0 (2.x)",
        ops.adapt_datetimefield_value(when),
        "203.0.113.7",
    ]


def insert_2x(cursor: Any, rows: list[tuple[str, list[Any]]]) -> None:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(c) for c in ("session_key", *LEGACY_COLUMNS))
    marks = ", ".join(["%s"] * (len(LEGACY_COLUMNS) + 1))
    cursor.executemany(
        f"INSERT INTO {quote(TABLE)} ({columns}) VALUES ({marks})",
        [[key, *values] for key, values in rows],
    )


def update_2x(cursor: Any, key: str, values: list[Any]) -> int:
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(c)} = %s" for c in LEGACY_COLUMNS)
    cursor.execute(
        f"UPDATE {quote(TABLE)} SET {assignments} WHERE {quote('session_key')} = %s",
        [*values, key],
    )
    return int(cursor.rowcount)


# -- every step accepts what 2.x writes --------------------------------------


@pytest.mark.django_db(transaction=True)
def test_2x_code_can_insert_and_update_sessions_after_every_migration_step(
    at_2x_schema: None, user_factory: Any
) -> None:
    owner = user_factory()
    long_ago = timezone.now() - datetime.timedelta(days=3)
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            # 2.x leaves the connection in the server's time zone, and Django
            # stores UTC: the default for created_at must not depend on it.
            cursor.execute("SET time_zone = '+05:00'")
        insert_2x(
            cursor,
            [
                ("untouched2x", legacy_values(owner.pk, when=long_ago)),
                ("updated2x", legacy_values(owner.pk, when=long_ago)),
            ],
        )
    steps = steps_after_initial()
    assert steps, "no migration after 0001: the loop below would check nothing"
    written = ["untouched2x", "updated2x"]
    for step in steps:
        migrate_to(step)
        key = f"insertedafter{step[:4]}"
        with connection.cursor() as cursor:
            try:
                insert_2x(cursor, [(key, legacy_values(owner.pk))])
                for earlier in written[1:]:
                    assert update_2x(cursor, earlier, legacy_values(owner.pk)) == 1, earlier
            except Exception as exc:
                pytest.fail(f"after {step}, 2.x's write failed: {type(exc).__name__}: {exc}")
        written.append(key)

    rows = {row.session_key: row for row in Session.objects.all()}
    assert sorted(rows) == sorted(written)
    handles = [row.handle for row in rows.values()]
    assert all(handles) and len(set(handles)) == len(handles)
    assert all(row.user_id == owner.pk for row in rows.values())
    # A row from before the upgrade began at its last activity (the best guess
    # there is); one 2.x wrote meanwhile began when it was inserted.
    assert abs(rows["untouched2x"].created_at - long_ago) < datetime.timedelta(seconds=1)
    for key in written[2:]:
        assert abs(timezone.now() - rows[key].created_at) < datetime.timedelta(minutes=5), key
    for key in written:
        assert SessionStore(session_key=key).load() == {"written_by": "2.x"}, key


# -- sites that ran 0002-0004 before they set database defaults ---------------


def remove_database_defaults(step: str) -> None:
    """Make the table what the earlier 0002 or 0004 left: columns without defaults."""
    state = MigrationExecutor(connection).loader.project_state((APP, step))
    with connection.schema_editor() as editor:
        for name in ("created_at", "last_activity", "handle"):
            before = state.clone()
            bare = without_db_default(before.apps.get_model(APP, "Session")._meta.get_field(name))
            if name == "created_at":
                bare.null = False  # the earlier 0002 added it NOT NULL
            # As a migration would, so that SQLite's rebuild keeps the earlier changes.
            alter = migrations.AlterField("session", name, bare)
            alter.state_forwards(APP, state)
            alter.database_forwards(APP, editor, before, state)


def column_defaults() -> dict[str, bool]:
    with connection.cursor() as cursor:
        description = connection.introspection.get_table_description(cursor, TABLE)
    return {column.name: has_database_default(column) for column in description}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("ran_earlier", "mends"),
    [("0002_sessions_v3", BACKFILL), ("0004_handle_unique", "0005_database_defaults")],
)
def test_a_site_that_ran_the_earlier_migrations_gets_the_defaults(
    at_2x_schema: None, user_factory: Any, ran_earlier: str, mends: str
) -> None:
    owner = user_factory()
    with connection.cursor() as cursor:
        insert_2x(cursor, [("before", legacy_values(owner.pk))])
    migrate_to(ran_earlier)
    remove_database_defaults(ran_earlier)
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        insert_2x(cursor, [("rejected", legacy_values(owner.pk))])  # the 500s of the report

    migrate_to(mends)
    defaults = column_defaults()
    assert defaults["created_at"] and defaults["last_activity"] and defaults["handle"]
    with connection.cursor() as cursor:
        insert_2x(cursor, [("accepted", legacy_values(owner.pk))])
    migrate_to(steps_after_initial()[-1])
    rows = list(Session.objects.order_by("session_key"))
    assert [row.session_key for row in rows] == ["accepted", "before"]
    assert rows[0].handle and rows[1].handle and rows[0].handle != rows[1].handle


@pytest.mark.django_db(transaction=True)
def test_every_database_default_is_set_on_a_fresh_install() -> None:
    defaults = column_defaults()
    assert defaults["created_at"] and defaults["last_activity"] and defaults["handle"]


# -- the handle the database makes ---------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("old_mariadb", [False, True])
def test_the_database_makes_a_fresh_handle_for_every_row(
    user_factory: Any, monkeypatch: pytest.MonkeyPatch, old_mariadb: bool
) -> None:
    if old_mariadb:
        if connection.vendor != "mysql" or not connection.mysql_is_mariadb:
            pytest.skip("the MariaDB < 10.10 expression runs on MariaDB only")
        # Any MariaDB runs the expression that versions without RANDOM_BYTES() get.
        monkeypatch.setattr(connection, "mysql_version", (10, 6, 0))
    owner = user_factory()
    for n in range(50):
        Session.objects.create(
            session_key=f"key{n:05d}", session_data="", expire_date=timezone.now(), user=owner
        )
    made = list(Session.objects.annotate(made=RandomHandle()).values_list("made", flat=True))
    assert len(made) == 50 and len(set(made)) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22,32}", handle) for handle in made), made[:3]


# -- the backfill never holds rows for long ----------------------------------


def limit_lock_waits(cursor: Any) -> None:
    """Make a wait on a row lock longer than LOCK_WAIT_SECONDS an error, not a delay."""
    if connection.vendor == "postgresql":
        cursor.execute(f"SET lock_timeout = '{LOCK_WAIT_SECONDS}s'")
        # Not a lock, and still stuck: an error too (later, so a lock wait
        # reports itself as one).
        cursor.execute(f"SET statement_timeout = '{LOCK_WAIT_SECONDS + 1}s'")
    else:
        cursor.execute(f"SET SESSION innodb_lock_wait_timeout = {LOCK_WAIT_SECONDS}")
        if connection.mysql_is_mariadb:
            cursor.execute(f"SET SESSION max_statement_time = {LOCK_WAIT_SECONDS + 1}")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("step", [BACKFILL, "0004_handle_unique"])
def test_other_connections_update_sessions_while_a_step_runs(
    at_2x_schema: None, user_factory: Any, step: str
) -> None:
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has one writer at a time: there are no row locks to wait on")
    owner = user_factory()
    keys = [f"legacy{i:06d}" for i in range(BACKFILL_ROWS)]
    when = timezone.now() - datetime.timedelta(hours=1)
    values = legacy_values(owner.pk, when=when)
    with connection.cursor() as cursor:
        for start in range(0, len(keys), 5000):
            insert_2x(cursor, [(key, values) for key in keys[start : start + 5000]])
    steps = steps_after_initial()
    migrate_to(steps[steps.index(step) - 1])

    go, step_done = threading.Event(), threading.Event()
    updates: list[tuple[float, int, int]] = []  # (seconds, rows updated, rows not yet filled)
    failures: list[BaseException] = []

    def update_sessions_meanwhile() -> None:
        quote = connection.ops.quote_name
        unfilled = f"SELECT COUNT(*) FROM {quote(TABLE)} WHERE {quote('handle')} IS NULL"
        # Spread over the table, so some fall in the batch being filled.
        spread = itertools.cycle(keys[::997])
        try:
            with connection.cursor() as cursor:
                limit_lock_waits(cursor)
                go.wait()
                while not step_done.is_set():
                    started = time.monotonic()
                    changed = update_2x(cursor, next(spread), legacy_values(owner.pk))
                    seconds = time.monotonic() - started
                    cursor.execute(unfilled)
                    updates.append((seconds, changed, cursor.fetchone()[0]))
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures.append(exc)
        finally:
            connection.close()

    other = threading.Thread(target=update_sessions_meanwhile, daemon=True)
    other.start()
    try:
        go.set()
        migrate_to(step)
    finally:
        step_done.set()
        other.join(60)
    assert not other.is_alive()
    assert not failures, f"an update from another connection failed: {failures[0]!r}"
    assert updates, f"no update ran while {step} did"
    assert all(changed == 1 for _seconds, changed, _unfilled in updates)
    slowest = max(seconds for seconds, _changed, _unfilled in updates)
    assert slowest < LOCK_WAIT_SECONDS, f"an update waited {slowest:.2f} s"
    if step == BACKFILL:
        # The other connection saw the backfill part done: it commits batch by batch.
        assert any(0 < unfilled < BACKFILL_ROWS for _s, _c, unfilled in updates), updates[:5]
    assert not Session.objects.filter(handle__isnull=True).exists()


# -- PostgreSQL's own way through 0004 ----------------------------------------


def schema() -> tuple[Any, ...]:
    with connection.cursor() as cursor:
        columns = connection.introspection.get_table_description(cursor, TABLE)
        constraints = connection.introspection.get_constraints(cursor, TABLE)
    return (
        sorted((c.name, c.null_ok, c.default) for c in columns),
        sorted((name, sorted(c.items())) for name, c in constraints.items()),
    )


@pytest.mark.django_db(transaction=True)
def test_0004_on_postgresql_ends_in_the_schema_djangos_operations_make(at_2x_schema: None) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the statements of its own are PostgreSQL's only")
    migrate_to(BACKFILL)
    loader = MigrationExecutor(connection).loader
    online = loader.get_migration(APP, "0004_handle_unique").operations[0]
    before = loader.project_state((APP, BACKFILL))
    after = before.clone()
    online.state_forwards(APP, after)
    with connection.schema_editor(atomic=False) as editor:
        # Django's own statements for the same operations, then back to 0003.
        migrations.SeparateDatabaseAndState.database_forwards(online, APP, editor, before, after)
    djangos = schema()
    with connection.schema_editor(atomic=False) as editor:
        online.database_backwards(APP, editor, after, before)
        online.database_forwards(APP, editor, before, after)
    assert schema() == djangos
    # And run again, as after an interruption: the same schema once more.
    with connection.schema_editor(atomic=False) as editor:
        online.database_forwards(APP, editor, before, after)
    assert schema() == djangos
