from __future__ import annotations

import datetime
import sys
import types
from collections.abc import Callable, Iterator
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.base import SessionBase
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.crypto import get_random_string

from user_sessions.backends import db
from user_sessions.backends.db import SessionStore
from user_sessions.models import Session

pytestmark = pytest.mark.django_db

DAY = datetime.timedelta(days=1)
BACKEND = "django.contrib.auth.backends.ModelBackend"


def new_key() -> str:
    return get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789")


def add_sessions(count: int, expires_in: datetime.timedelta) -> set[str]:
    """Store ``count`` sessions that expire ``expires_in`` from now; returns their keys."""
    expire_date = timezone.now() + expires_in
    data = SessionStore().encode({"counter": 1})
    rows = [
        Session(session_key=new_key(), session_data=data, expire_date=expire_date)
        for _ in range(count)
    ]
    Session.objects.bulk_create(rows)
    return {row.session_key for row in rows}


def run(command: str, *args: Any, **options: Any) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out, **options)
    return out.getvalue()


# clearsessions ------------------------------------------------------------------


def test_clearsessions_deletes_only_expired_and_says_how_many(engine: str):
    add_sessions(3, expires_in=-DAY)
    active = add_sessions(2, expires_in=DAY)

    assert run("clearsessions") == "Deleted 3 expired sessions.\n"
    assert set(Session.objects.values_list("session_key", flat=True)) == active
    assert run("clearsessions") == "Deleted 0 expired sessions.\n"


def test_clearsessions_singular_and_quiet():
    add_sessions(1, expires_in=-DAY)
    assert run("clearsessions") == "Deleted 1 expired session.\n"

    add_sessions(1, expires_in=-DAY)
    assert run("clearsessions", verbosity=0) == ""
    assert not Session.objects.exists()


@pytest.fixture
def statements() -> Iterator[list[tuple[str, int]]]:
    """Every statement run on the default database, with how many rows it touched."""
    seen: list[tuple[str, int]] = []

    def record(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any):
        result = execute(sql, params, many, context)
        seen.append((sql, context["cursor"].rowcount))
        return result

    with connection.execute_wrapper(record):
        yield seen


def test_clearsessions_works_in_small_batches(
    monkeypatch: pytest.MonkeyPatch, statements: list[tuple[str, int]]
):
    monkeypatch.setattr(db, "CLEAR_EXPIRED_BATCH_SIZE", 3)
    add_sessions(7, expires_in=-DAY)
    active = add_sessions(2, expires_in=DAY)
    statements.clear()

    assert run("clearsessions") == "Deleted 7 expired sessions.\n"

    deletes = [rows for sql, rows in statements if sql.startswith("DELETE")]
    assert deletes == [3, 3, 1]
    table = Session._meta.db_table
    selects = [sql for sql, _rows in statements if sql.startswith("SELECT") and table in sql]
    # Each read is bounded too: no statement ever sees the whole table.
    assert len(selects) == 3
    assert all("LIMIT 3" in sql for sql in selects)
    assert set(Session.objects.values_list("session_key", flat=True)) == active


def test_clearsessions_with_an_exact_multiple_of_the_batch(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(db, "CLEAR_EXPIRED_BATCH_SIZE", 3)
    add_sessions(6, expires_in=-DAY)

    with CaptureQueriesContext(connection) as queries:
        assert run("clearsessions") == "Deleted 6 expired sessions.\n"

    # two full batches, then one empty read to learn that nothing is left;
    # then one read of history records to prune (none)
    assert len(queries.captured_queries) == 6
    assert not Session.objects.exists()


def test_clearsessions_with_another_engine(settings: Any):
    # Django's cache engine has nothing to clear: its entries expire by themselves.
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cache"

    assert run("clearsessions") == "Expired sessions cleared.\n"


def test_clearsessions_with_an_engine_that_cannot_clear(
    settings: Any, monkeypatch: pytest.MonkeyPatch
):
    engine = types.ModuleType("third_party_engine")
    engine.SessionStore = SessionBase  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, engine.__name__, engine)
    settings.SESSION_ENGINE = engine.__name__

    # Word for word Django's message (scripts and monitoring may look for it).
    with pytest.raises(CommandError) as raised:
        run("clearsessions")
    assert str(raised.value) == (
        "Session engine 'third_party_engine' doesn't support clearing expired sessions."
    )


# migratesessions ----------------------------------------------------------------


@pytest.fixture
def django_session_table(transactional_db: None) -> Iterator[Callable[..., str]]:
    """The table ``django.contrib.sessions`` would have made; returns a row adder.

    Transactional because MySQL commits on CREATE TABLE, which would break the
    rollback that ends an ordinary test.
    """
    column_types = connection.data_types
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE django_session ("
            "session_key varchar(40) NOT NULL PRIMARY KEY, "
            f"session_data {column_types['TextField']} NOT NULL, "
            f"expire_date {column_types['DateTimeField']} NOT NULL)"
        )

    def add(data: str, expires_in: datetime.timedelta = DAY, key: str | None = None) -> str:
        key = key or new_key()
        expire_date = connection.ops.adapt_datetimefield_value(timezone.now() + expires_in)
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO django_session (session_key, session_data, expire_date) "
                "VALUES (%s, %s, %s)",
                [key, data, expire_date],
            )
        return key

    yield add
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE django_session")


def signed_in(user_id: Any, **more: Any) -> str:
    return SessionStore().encode(
        {SESSION_KEY: str(user_id), BACKEND_SESSION_KEY: BACKEND, HASH_SESSION_KEY: "h", **more}
    )


def test_migratesessions_imports_once(
    django_session_table: Callable[..., str], user_factory: Callable[..., Any]
):
    alice = user_factory(username="alice")
    gone = user_factory(username="gone")
    gone_id = gone.pk
    gone.delete()
    alices = django_session_table(signed_in(alice.pk, cart=[1, 2]), expires_in=3 * DAY)
    anonymous = django_session_table(SessionStore().encode({"language": "nl"}))
    django_session_table(signed_in(alice.pk), expires_in=-DAY)
    django_session_table("not-a-signed-session")
    orphan = django_session_table(signed_in(gone_id, cart=[3]))
    before = timezone.now()

    first = run("migratesessions")

    assert first.splitlines() == [
        "Imported: 3",
        "Of those, signed out because their account no longer exists: 1",
        "Already present: 0",
        "Expired, skipped: 1",
        "Undecodable, skipped: 1",
    ]
    rows = {row.session_key: row for row in Session.objects.all()}
    assert set(rows) == {alices, anonymous, orphan}

    row = rows[alices]
    assert row.user == alice
    assert row.get_decoded()[SESSION_KEY] == str(alice.pk)
    assert row.get_decoded()["cart"] == [1, 2]
    assert row.created_at >= before
    assert row.last_activity >= before
    assert (row.ip, row.user_agent) == (None, None)
    assert abs(row.expire_date - (timezone.now() + 3 * DAY)) < datetime.timedelta(minutes=1)
    assert len(row.handle) > 10

    assert rows[anonymous].user is None
    assert rows[anonymous].get_decoded() == {"language": "nl"}
    assert rows[orphan].user is None
    assert rows[orphan].get_decoded() == {"cart": [3]}

    second = run("migratesessions")

    assert second.splitlines() == [
        "Imported: 0",
        "Already present: 3",
        "Expired, skipped: 1",
        "Undecodable, skipped: 1",
    ]
    assert Session.objects.count() == 3


def test_imported_session_keeps_its_user_signed_in(
    django_session_table: Callable[..., str],
    user_factory: Callable[..., Any],
    browser_factory: Callable[..., Any],
):
    alice = user_factory(username="alice")
    browser = browser_factory()
    signed_in_before = browser.post("/login/", {"username": "alice", "password": "secret-password"})
    assert signed_in_before.status_code == 302
    # The browser's session, as if Django's own engine had stored it.
    key = browser.cookies["sessionid"].value
    old = Session.objects.get(session_key=key)
    django_session_table(old.session_data, key=key)
    old.delete()

    run("migratesessions", verbosity=0)

    assert browser.get("/read/").content == f"user={alice.pk}".encode()
    assert Session.objects.get(session_key=key).user == alice


def test_migratesessions_reads_in_batches(
    django_session_table: Callable[..., str], statements: list[tuple[str, int]]
):
    keys = {django_session_table(signed_in(1 + n)) for n in range(5)}
    statements.clear()

    output = run("migratesessions", batch_size=2)

    assert output.splitlines()[:2] == [
        "Imported: 5",
        "Of those, signed out because their account no longer exists: 5",
    ]
    assert set(Session.objects.values_list("session_key", flat=True)) == keys
    reads = [rows for sql, rows in statements if "FROM" in sql and "django_session" in sql]
    assert len(reads) == 4  # the expired count, then 2 + 2 + 1 rows


def test_migratesessions_without_the_table():
    with pytest.raises(CommandError, match="no table 'django_session'"):
        run("migratesessions")


def test_migratesessions_rejects_a_zero_batch(django_session_table: Callable[..., str]):
    with pytest.raises(CommandError, match="at least 1"):
        run("migratesessions", batch_size=0)
