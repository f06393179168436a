"""The store behind PgBouncer in transaction pooling mode, outside any test transaction.

Each statement Django runs in autocommit is its own transaction, and the
harness's PgBouncer hands each transaction the next idle server connection
(``server_round_robin``): whatever assumes a connection keeps state between
two transactions fails here every time. The store's compiled statements are
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
import threading
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


class OtherClients:
    """Clients sharing the pool with the test, each running short transactions in a loop.

    As under real load, a test's consecutive transactions then land on
    different server connections (PgBouncer, left alone, hands an idle
    client's next transaction the connection it just released).
    """

    def __init__(self, settings_dict: dict[str, Any], count: int = 3) -> None:
        import psycopg

        self.stop = threading.Event()
        self.connections = [
            psycopg.connect(
                host=settings_dict["HOST"],
                port=settings_dict["PORT"],
                user=settings_dict["USER"],
                dbname=settings_dict["NAME"],
                prepare_threshold=None,  # psycopg's default prepares: not here
            )
            for _ in range(count)
        ]
        self.threads = [
            threading.Thread(target=self.run, args=(connection,), daemon=True)
            for connection in self.connections
        ]
        for thread in self.threads:
            thread.start()

    def run(self, connection: Any) -> None:
        while not self.stop.is_set():
            connection.execute("SELECT pg_sleep(0.002)")
            connection.commit()

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)
        for connection in self.connections:
            connection.close()


@pytest.fixture
def pooled(primary_db: None) -> Iterator[str]:
    """The alias through PgBouncer, with other clients keeping the pool busy."""
    others = OtherClients(connections["pooled"].settings_dict)
    yield "pooled"
    others.close()


@pytest.fixture(
    params=["pooled", "pooled_bound"], ids=["client-side binding", "server-side binding"]
)
def alias(request: pytest.FixtureRequest, pooled: str, settings: Any) -> str:
    settings.DATABASE_ROUTERS = [To(request.param)]
    statements.clear()
    return str(request.param)


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
    assert len(backend_pids(pooled, 40)) > 1


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
        client.force_login(alice)
        for _ in range(40):
            assert signed_in_as(client) == str(alice.pk)
    except DatabaseError as exc:
        assert not supported, exc
        assert "prepared statement" in str(exc)
    else:
        assert supported, "prepared statements worked behind PgBouncer < 1.21"
    finally:
        with contextlib.suppress(DatabaseError):
            connections["pooled_prepared"].close()
