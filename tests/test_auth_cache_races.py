"""The cached owner (``USER_SESSIONS_CACHE_USER``) under real concurrency: threads, own connections.

SQLite's in-memory test database cannot be shared between threads, so these
tests need PostgreSQL or MariaDB (``USER_SESSIONS_TEST_DB=postgres|mysql``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.db import connection
from django.test import Client

pytestmark = [
    pytest.mark.skipif(
        django_settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"),
        reason="needs PostgreSQL or MariaDB: an in-memory SQLite database cannot be shared "
        "between the threads a race needs (USER_SESSIONS_TEST_DB=postgres|mysql)",
    ),
    pytest.mark.django_db(transaction=True),
]

READERS = 4


@pytest.fixture(autouse=True)
def cached_user(settings: Any) -> Any:
    settings.SESSION_ENGINE = "user_sessions.backends.cached_db"
    settings.USER_SESSIONS_CACHE_USER = True
    cache.clear()
    yield
    cache.clear()


def test_user_changes_while_requests_run(user: Any) -> None:
    """Readers hammer one session while the user is deactivated and reactivated.

    Whatever a request that was already running saw, every request that
    starts after the last change committed sees it: a copy read before a
    change never comes back from the cache.
    """
    signed_in = Client()
    signed_in.force_login(user)
    assert signed_in.get("/read/").content == f"user={user.pk}".encode()
    stop = threading.Event()
    served: list[tuple[float, bytes]] = []
    errors: list[BaseException] = []

    def read() -> None:
        tab = Client()
        tab.cookies = signed_in.cookies
        try:
            while not stop.is_set():
                started = time.monotonic()
                served.append((started, tab.get("/read/").content))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=read) for _ in range(READERS)]
    for thread in threads:
        thread.start()
    try:
        for active in [False, True] * 5 + [False]:
            time.sleep(0.02)
            user.is_active = active
            user.save()
        changed = time.monotonic()
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=20)
    assert not errors, errors
    after = [body for started, body in served if started > changed]
    assert after, "no request started after the last change"
    assert set(after) == {b"user="}
    assert {body for started, body in served if started < changed} >= {f"user={user.pk}".encode()}
    # And from now on, one query at most: the row is read again, never the old copy.
    assert signed_in.get("/read/").content == b"user="
