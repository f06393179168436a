"""Fixtures for the scale-out tests: the test database on the primary, replication control.

These tests need the servers ``python -m tests.scaleout`` starts (it runs
them with ``tests.scaleout.settings``); in any other run they are skipped,
with that reason.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import caches

CATCH_UP_TIMEOUT = 15.0
# Aliases that reach the test database through another server (no test
# database of their own is made there).
FOLLOWERS = ("replica", "pooled", "pooled_bound", "pooled_prepared")
NEEDS = {
    "replica": ("SCALEOUT_PG_REPLICA_PORT", "a PostgreSQL primary and streaming replica"),
    "redis_replica": ("SCALEOUT_REDIS_REPLICA_PORT", "a Redis primary and replica"),
    "pooled": ("SCALEOUT_PGBOUNCER_PORT", "PgBouncer in front of a PostgreSQL primary"),
    # test_pgbouncer's parametrised alias (PgBouncer with and without server-side binding).
    "alias": ("SCALEOUT_PGBOUNCER_PORT", "PgBouncer in front of a PostgreSQL primary"),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if not str(item.path).startswith(here):
            continue
        for fixture, (variable, what) in NEEDS.items():
            if fixture in getattr(item, "fixturenames", ()) and (
                variable not in os.environ or "replica" not in settings.DATABASES
            ):
                item.add_marker(
                    pytest.mark.skip(reason=f"needs {what}: run python -m tests.scaleout")
                )


def _wait(condition: Any, what: str) -> None:
    deadline = time.monotonic() + CATCH_UP_TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {CATCH_UP_TIMEOUT:.0f} s")
        time.sleep(0.02)


class PostgresReplication:
    """The streaming replica's replay, paused and resumed at will.

    While replay is paused the replica answers reads with what it had: a lag
    that lasts exactly as long as the test wants (``recovery_min_apply_delay``
    would give a lag of a fixed length instead).
    """

    def __init__(self) -> None:
        import psycopg

        primary, replica = settings.DATABASES["default"], settings.DATABASES["replica"]
        self.primary = psycopg.connect(
            host=primary["HOST"],
            port=primary["PORT"],
            user="postgres",
            dbname="postgres",
            autocommit=True,
        )
        self.replica = psycopg.connect(
            host=replica["HOST"],
            port=replica["PORT"],
            user="postgres",
            dbname="postgres",
            autocommit=True,
        )

    def close(self) -> None:
        self.resume()
        self.primary.close()
        self.replica.close()

    def catch_up(self) -> None:
        """Return once the replica has replayed everything the primary committed."""
        lsn = self.primary.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]  # type: ignore[index]
        _wait(
            lambda: self.replica.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (str(lsn),)
            ).fetchone()[0],  # type: ignore[index]
            "replay on the replica",
        )

    def pause(self) -> None:
        self.catch_up()
        self.replica.execute("SELECT pg_wal_replay_pause()")
        _wait(
            lambda: (
                self.replica.execute("SELECT pg_get_wal_replay_pause_state()").fetchone()[0]  # type: ignore[index]
                == "paused"
            ),
            "pausing replay",
        )

    def resume(self) -> None:
        self.replica.execute("SELECT pg_wal_replay_resume()")


@pytest.fixture(scope="session")
def django_db_setup(django_db_blocker: Any) -> Iterator[None]:
    """The test database, made and migrated on the primary only; the replica follows by itself."""
    from django.db import connections

    if "replica" not in settings.DATABASES:
        yield
        return
    with django_db_blocker.unblock():
        default = connections["default"]
        old_name = default.settings_dict["NAME"]
        name = default.creation.create_test_db(verbosity=0, autoclobber=True)
        for alias in FOLLOWERS:
            if alias in connections:
                connections[alias].settings_dict["NAME"] = name
    yield
    with django_db_blocker.unblock():
        for alias in connections:
            connections[alias].close()
        # PgBouncer keeps server connections to it: Django's plain DROP
        # DATABASE would wait for them.
        with default._nodb_cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        default.settings_dict["NAME"] = old_name


@pytest.fixture
def primary_db(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Database access outside a test transaction: the replica sees only what commits.

    Rows are removed on the primary afterwards (a replica takes no flush).
    """
    from django.contrib.auth import get_user_model

    from user_sessions.models import get_session_model

    with django_db_blocker.unblock():
        yield
        get_session_model()._base_manager.using("default").all()._raw_delete("default")
        get_user_model()._base_manager.using("default").all().delete()


@pytest.fixture
def replica(primary_db: None) -> Iterator[PostgresReplication]:
    replication = PostgresReplication()
    replication.catch_up()
    yield replication
    replication.close()


class RedisReplication:
    """The Redis replica, cut off from its primary at will (``REPLICAOF NO ONE``).

    Cut off, it keeps answering reads with what it had; ``attach()`` makes
    it a replica again and waits until it has caught up.
    """

    def __init__(self) -> None:
        import redis

        primary_url, replica_url = settings.CACHES["default"]["LOCATION"]
        self.primary = redis.Redis.from_url(primary_url)
        self.replica = redis.Redis.from_url(replica_url)
        self.primary_port = int(primary_url.rsplit(":", 1)[1].split("/")[0])

    def synced(self) -> None:
        """Return once the replica acknowledged every write so far."""
        _wait(lambda: self.primary.execute_command("WAIT", 1, 1000) >= 1, "replication to Redis")

    def detach(self) -> None:
        self.synced()
        self.replica.execute_command("REPLICAOF", "NO", "ONE")

    def attach(self) -> None:
        self.replica.execute_command("REPLICAOF", "127.0.0.1", self.primary_port)
        _wait(
            lambda: self.replica.info("replication").get("master_link_status") == "up",
            "the Redis replica reconnecting",
        )
        self.synced()


@pytest.fixture
def redis_replica(primary_db: None, settings: Any) -> Iterator[RedisReplication]:
    settings.SESSION_ENGINE = "user_sessions.backends.cached_db"
    replication = RedisReplication()
    replication.primary.flushdb()
    replication.attach()
    yield replication
    replication.attach()
    caches["default"].clear()
