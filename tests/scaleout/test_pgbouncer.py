"""The store behind PgBouncer in transaction pooling mode, outside any test transaction.

Each statement Django runs in autocommit is its own transaction, and here
consecutive ones run on different server connections (``SwitchServers``):
whatever assumes a connection keeps state between two transactions fails
here every time. The store's compiled statements are
plain parameterised SQL run through Django's cursor, so they hold no state on
the server: they run with client-side binding (Django's default) and with
psycopg's server-side binding. Prepared statements need PgBouncer 1.21 or
later (``max_prepared_statements``); Django leaves them off by default.
Server-side cursors (``QuerySet.iterator()``, which the sweep after a
password change uses) need ``DISABLE_SERVER_SIDE_CURSORS``, as Django
documents for transaction pooling: the aliases here set it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connections
from django.test import Client

from tests.scaleout.harness import pgbouncer_version, version_tuple
from tests.scaleout.test_replica import PASSWORD, sign_in, signed_in_as
from user_sessions.backends.statements import statements
from user_sessions.models import Session


class To:
    """Every model, read and written, on one alias."""

    def __init__(self, alias: str) -> None:
        self.alias = alias

    def db_for_read(self, model: type[Any], **hints: Any) -> str:
        return self.alias

    db_for_write = db_for_read

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == "default"


class SwitchServers:
    """After each statement the test's connection runs outside a transaction, take its server.

    PgBouncer hands a transaction the server connection released last. Two
    other clients take turns: one starts a transaction, which takes the
    server the test's statement just released; the other ends its own,
    releasing the server the test used the time before. So the test's
    consecutive statements alternate between two server connections, every
    time (as under load, where they would land anywhere).
    """

    def __init__(self, settings_dict: dict[str, Any]) -> None:
        import psycopg

        self.holders = [
            psycopg.connect(
                host=settings_dict["HOST"],
                port=settings_dict["PORT"],
                user=settings_dict["USER"],
                dbname=settings_dict["NAME"],
                prepare_threshold=None,  # psycopg's default prepares: not here
            )
            for _ in range(2)
        ]
        self.turn = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        try:
            return execute(sql, params, many, context)
        finally:
            connection = context["connection"]
            if connection.get_autocommit() and not connection.in_atomic_block:
                taker, releaser = self.holders[self.turn], self.holders[1 - self.turn]
                taker.execute("SELECT 1")
                releaser.commit()
                self.turn = 1 - self.turn

    def close(self) -> None:
        for holder in self.holders:
            holder.close()


@contextlib.contextmanager
def switching_servers(alias: str) -> Iterator[None]:
    """The alias's statements (in this thread) move between server connections."""
    switch = SwitchServers(connections[alias].settings_dict)
    try:
        with connections[alias].execute_wrapper(switch):
            yield
    finally:
        switch.close()


@pytest.fixture
def pooled(primary_db: None) -> Iterator[str]:
    """The alias through PgBouncer, its statements moving between server connections."""
    with switching_servers("pooled"):
        yield "pooled"


@pytest.fixture(
    params=["pooled", "pooled_bound"], ids=["client-side binding", "server-side binding"]
)
def alias(request: pytest.FixtureRequest, primary_db: None, settings: Any) -> Iterator[str]:
    settings.DATABASE_ROUTERS = [To(request.param)]
    statements.clear()
    with switching_servers(request.param):
        yield str(request.param)


@pytest.fixture(params=["db", "cached_db"])
def engine(request: pytest.FixtureRequest, settings: Any) -> str:
    settings.SESSION_ENGINE = f"user_sessions.backends.{request.param}"
    from django.core.cache import cache

    cache.clear()
    return str(request.param)


def backend_pids(alias: str, count: int) -> set[int]:
    with connections[alias].cursor() as cursor:
        pids = set()
        for _ in range(count):
            cursor.execute("SELECT pg_backend_pid()")
            pids.add(cursor.fetchone()[0])
    return pids


def test_transactions_move_between_server_connections(pooled: str) -> None:
    pids = backend_pids(pooled, 6)
    assert len(pids) == 2


def test_sessions_through_pgbouncer(alias: str, engine: str) -> None:
    alice = get_user_model().objects.db_manager(alias).create_user("alice", password=PASSWORD)
    laptop, phone = Client(), Client()
    sign_in(laptop, alice)
    sign_in(phone, alice)
    # Enough requests that every statement runs many times, on several connections.
    assert [laptop.get("/write/").json()["counter"] for _ in range(12)] == list(range(1, 13))
    assert laptop.get("/async/write/").json()["counter"] == 13
    assert signed_in_as(phone) == str(alice.pk)
    handle = Session.objects.get(session_key=phone.cookies["sessionid"].value).handle
    assert laptop.post(f"/account/sessions/{handle}/delete/").status_code in (200, 302)
    assert signed_in_as(phone) == ""
    sign_in(phone, alice)
    response = laptop.post(
        "/password/change/",
        {
            "old_password": PASSWORD,
            "new_password1": "n3w-Passw0rd!",
            "new_password2": "n3w-Passw0rd!",
        },
    )
    assert response.status_code == 302, response.content[:300]
    assert signed_in_as(laptop) == str(alice.pk)
    assert signed_in_as(phone) == ""
    assert laptop.get("/async/read/").content == f"user={alice.pk}".encode()


def test_prepared_statements_need_pgbouncer_1_21(pooled: str, settings: Any) -> None:
    """``prepare_threshold`` set: PgBouncer before 1.21 loses the prepared statements.

    What user_sessions.W031 warns about; from 1.21 on, with
    ``max_prepared_statements`` (the harness sets it), they work.
    """
    alice = get_user_model().objects.db_manager("pooled").create_user("alice")
    settings.DATABASE_ROUTERS = [To("pooled_prepared")]
    statements.clear()
    supported = version_tuple(pgbouncer_version("pgbouncer")) >= (1, 21)
    client = Client()
    try:
        with switching_servers("pooled_prepared"):
            client.force_login(alice)
            for _ in range(8):
                assert signed_in_as(client) == str(alice.pk)
    except DatabaseError as exc:
        assert not supported, exc
        assert "prepared statement" in str(exc)
    else:
        assert supported, "prepared statements worked behind PgBouncer < 1.21"
    finally:
        with contextlib.suppress(DatabaseError):
            connections["pooled_prepared"].close()


def _conninfo(alias: str) -> str:
    entry = connections.settings[alias]
    return f"host={entry['HOST']} port={entry['PORT']} user={entry['USER']} dbname={entry['NAME']}"


def _hub_starts(settings: Any, alias: str) -> bool:
    import asyncio
    import uuid

    from user_sessions import push

    settings.USER_SESSIONS_PUSH = {
        "BROKER": "postgres",
        "URL": _conninfo(alias),
        "CHANNEL": f"user_sessions_test_{uuid.uuid4().hex[:12]}",
    }

    async def scenario() -> bool:
        hub = push.get_hub()
        assert hub is not None
        try:
            return await hub.start()
        finally:
            await hub.stop()

    return asyncio.run(scenario())


def test_the_postgres_push_broker_says_it_cannot_listen_through_pgbouncer(
    pooled: str, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # LISTEN is accepted through transaction pooling, and nothing is heard
    # afterwards: the broker finds out at once, and the widgets poll.
    assert _hub_starts(settings, pooled) is False
    assert "through PgBouncer in transaction pooling?" in caplog.text
    caplog.clear()
    # Straight to PostgreSQL it listens.
    assert _hub_starts(settings, "default") is True
    assert "PgBouncer" not in caplog.text
