"""Faults from outside: the database failing, the cache down, corrupt rows, a bad GeoIP file.

Everything goes through the middleware and Django's request handler, so the
assertions are about what a visitor and an operator would see: the status,
what is stored afterwards, and what reaches exception messages and logs.
"""

from __future__ import annotations

import datetime
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.core.signals import got_request_exception
from django.db import OperationalError, connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.conftest import FIREFOX_LINUX
from tests.geoip import ZWOLLE_IP
from user_sessions.backends.cached_db import KEY_PREFIX, TOMBSTONE
from user_sessions.conf import app_settings
from user_sessions.models import Session

pytestmark = pytest.mark.django_db

TABLE = Session._meta.db_table
DOWN_REDIS = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        # Nothing listens on port 1: every call fails at once with "connection refused".
        "LOCATION": "redis://127.0.0.1:1/0",
    }
}


def session_key(client: Client) -> str:
    return str(client.cookies[django_settings.SESSION_COOKIE_NAME].value)


@contextmanager
def database_failing(statement: str, seen_params: list[Any] | None = None) -> Iterator[None]:
    """Make every ``statement`` (SELECT, INSERT, UPDATE) on the session table fail.

    The error is raised instead of running the statement, as a dropped
    connection would; ``seen_params`` collects the parameters it was given.
    """

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if TABLE in sql and sql.lstrip().upper().startswith(statement):
            if seen_params is not None:
                seen_params.append(params)
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield


@contextmanager
def request_exceptions() -> Iterator[list[BaseException]]:
    """What Django's handler turned into a 500, with everything chained to it."""
    chain: list[BaseException] = []

    def collect(sender: Any, **kwargs: Any) -> None:
        exc = sys.exc_info()[1]
        while exc is not None and exc not in chain:
            chain.append(exc)
            exc = exc.__cause__ or exc.__context__

    got_request_exception.connect(collect)
    try:
        yield chain
    finally:
        got_request_exception.disconnect(collect)


def assert_not_revealed(secret: str, exceptions: list[BaseException], caplog: Any) -> None:
    for exc in exceptions:
        assert secret not in str(exc) and secret not in repr(exc.args), exc
    for record in caplog.records:
        text = record.getMessage() + (
            logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        )
        assert secret not in text, record


# -- the database failing ---------------------------------------------------------


def test_database_failing_while_loading_is_a_500_that_reveals_nothing(
    engine: str, auth_client: Client, caplog: Any
):
    key = session_key(auth_client)
    before = Session.objects.get()
    cache.clear()  # a cached_db hit would not ask the database
    auth_client.raise_request_exception = False
    with (
        caplog.at_level(logging.DEBUG),
        request_exceptions() as raised,
        database_failing("SELECT"),
    ):
        response = auth_client.get("/read/")
    assert response.status_code == 500
    assert any(isinstance(exc, OperationalError) for exc in raised)
    assert_not_revealed(key, raised, caplog)
    assert_not_revealed(before.session_data, raised, caplog)
    after = Session.objects.get()
    assert (after.session_data, after.last_activity) == (before.session_data, before.last_activity)
    # The database is back: the session was never lost.
    assert auth_client.get("/read/").content == f"user={after.user_id}".encode()


def test_database_failing_while_signing_in_leaves_no_row_and_no_cache_entry(
    engine: str, browser_factory: Any, user: Any, caplog: Any
):
    client = browser_factory()
    client.raise_request_exception = False
    inserts: list[Any] = []
    with (
        caplog.at_level(logging.DEBUG),
        request_exceptions() as raised,
        database_failing("INSERT", inserts),
    ):
        response = client.post(
            "/login/", {"username": user.username, "password": "secret-password"}
        )
    assert response.status_code == 500
    assert django_settings.SESSION_COOKIE_NAME not in response.cookies
    assert not Session.objects.exists()
    attempted_keys = [params[0] for params in inserts]
    assert attempted_keys
    for key in attempted_keys:
        assert_not_revealed(key, raised, caplog)
        # No cache entry may outlive the insert that failed.
        assert cache.get(KEY_PREFIX + key) in (None, TOMBSTONE)
    assert client.get("/read/").content == b"user="


# Autocommit, as in production: inside the test's transaction the failed UPDATE
# would poison every later query of the test.
SAVE_FAILURES = pytest.mark.parametrize(
    ("path", "status"), [("/write/", 400), ("/read/", 200)], ids=["save", "activity"]
)


@pytest.mark.django_db(transaction=True)
@SAVE_FAILURES
def test_database_failing_while_saving_changes_nothing(
    engine: str, auth_client: Client, settings: Any, caplog: Any, path: str, status: int
):
    """A failed save is Django's answer to a failed save; a failed activity write costs nothing.

    Django turns a database error in an update into ``UpdateError`` and then
    ``SessionInterrupted`` (400), for its own store as for this one. The
    activity write of a read-only request has no Django counterpart; its
    failure is logged and the page is served. Either way the row is unchanged.
    """
    settings.USER_SESSIONS_ACTIVITY_INTERVAL = 0
    auth_client.get("/write/")
    key = session_key(auth_client)
    before = Session.objects.get()
    auth_client.defaults["REMOTE_ADDR"] = "198.51.100.99"
    auth_client.raise_request_exception = False
    with (
        caplog.at_level(logging.DEBUG),
        request_exceptions() as raised,
        database_failing("UPDATE"),
    ):
        response = auth_client.get(path)
    assert response.status_code == status
    assert caplog.records, "a failed write must leave a trace"
    assert_not_revealed(key, raised, caplog)
    assert_not_revealed(before.session_data, raised, caplog)
    after = Session.objects.get()
    assert (after.session_data, after.ip, after.last_activity) == (
        before.session_data,
        before.ip,
        before.last_activity,
    )


@pytest.mark.django_db(transaction=True)
@SAVE_FAILURES
def test_a_failed_save_does_not_sign_the_user_out(
    engine: str,
    auth_client: Client,
    settings: Any,
    user: Any,
    request: pytest.FixtureRequest,
    path: str,
    status: int,
):
    """Once the database answers again the session is still there, as with Django's stores."""
    settings.USER_SESSIONS_ACTIVITY_INTERVAL = 0
    assert auth_client.get("/write/").json() == {"counter": 1}
    auth_client.raise_request_exception = False
    with database_failing("UPDATE"):
        assert auth_client.get(path).status_code == status
    assert auth_client.get("/read/").content == f"user={user.pk}".encode()
    # Nothing half-saved either: the failed increment is not in the session.
    assert auth_client.get("/write/").json() == {"counter": 2}


def test_database_down_at_the_activity_check_keeps_serving_from_the_cache(
    settings: Any, user: Any, browser_factory: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
):
    """As Django's cached_db: a cache hit needs no database, also when a row check is due."""
    settings.SESSION_ENGINE = "user_sessions.backends.cached_db"
    laptop = browser_factory()
    laptop.post("/login/", {"username": user.username, "password": "secret-password"})
    assert laptop.get("/read/").content == f"user={user.pk}".encode()  # cached now
    real_now = timezone.now
    interval = datetime.timedelta(seconds=app_settings.ACTIVITY_INTERVAL + 1)
    monkeypatch.setattr(timezone, "now", lambda: real_now() + interval)
    seen: list[Any] = []
    with database_failing("UPDATE", seen), database_failing("SELECT"):
        assert laptop.get("/read/").content == f"user={user.pk}".encode()
        # One attempt at the activity write, not a second one at the end of
        # the request; and the entry is still there for the next request.
        assert len(seen) == 1
        assert laptop.get("/read/").content == f"user={user.pk}".encode()
    assert "unchecked" in caplog.text


# -- the cache down ------------------------------------------------------------------


def test_redis_down_requests_and_revocation_work_from_the_database(
    settings: Any, user: Any, browser_factory: Any, caplog: Any
):
    settings.SESSION_ENGINE = "user_sessions.backends.cached_db"
    settings.CACHES = DOWN_REDIS
    with caplog.at_level(logging.WARNING, logger="user_sessions.backends"):
        laptop = browser_factory()
        response = laptop.post(
            "/login/", {"username": user.username, "password": "secret-password"}
        )
        assert response.status_code == 302
        phone = browser_factory(user_agent=FIREFOX_LINUX, ip="198.51.100.5")
        phone.post("/login/", {"username": user.username, "password": "secret-password"})
        assert laptop.get("/read/").content == f"user={user.pk}".encode()
        assert laptop.get("/write/").json() == {"counter": 1}
        assert laptop.get("/write/").json() == {"counter": 2}
        assert laptop.get(reverse("user_sessions:session_list")).status_code == 200
        phone_handle = Session.objects.get(session_key=session_key(phone)).handle
        response = laptop.post(reverse("user_sessions:session_delete", args=[phone_handle]))
        assert response.status_code == 302
        assert phone.get("/read/").content == b"user="
        assert laptop.get("/read/").content == f"user={user.pk}".encode()
    assert "cache unavailable" in caplog.text.lower()
    assert Session.objects.filter(user=user).count() == 1


def test_a_session_revoked_while_redis_was_down_ends_within_an_interval_once_it_is_back(
    settings: Any, user: Any, browser_factory: Any, monkeypatch: pytest.MonkeyPatch
):
    """The revoke could not bury the cache entry; the next row check catches it.

    Inside one ``USER_SESSIONS_ACTIVITY_INTERVAL`` the entry cached before the
    outage may still be served (the package's documented bound); after it,
    the entry is checked against the row, which is gone.
    """
    settings.SESSION_ENGINE = "user_sessions.backends.cached_db"
    working = settings.CACHES
    laptop = browser_factory()
    laptop.post("/login/", {"username": user.username, "password": "secret-password"})
    phone = browser_factory(user_agent=FIREFOX_LINUX, ip="198.51.100.5")
    phone.post("/login/", {"username": user.username, "password": "secret-password"})
    assert phone.get("/read/").content == f"user={user.pk}".encode()  # cached now
    phone_key = session_key(phone)
    phone_handle = Session.objects.get(session_key=phone_key).handle

    settings.CACHES = DOWN_REDIS
    laptop.post(reverse("user_sessions:session_delete", args=[phone_handle]))
    assert not Session.objects.filter(handle=phone_handle).exists()
    assert phone.get("/read/").content == b"user="

    settings.CACHES = working
    real_now = timezone.now
    interval = datetime.timedelta(seconds=app_settings.ACTIVITY_INTERVAL + 1)
    monkeypatch.setattr(timezone, "now", lambda: real_now() + interval)
    # Whoever holds the cookie (the phone, or a thief) sends it again.
    phone.cookies[django_settings.SESSION_COOKIE_NAME] = phone_key
    assert phone.get("/read/").content == b"user="
    assert phone.get("/read/").content == b"user="  # and the cache now says so too
    assert not Session.objects.filter(handle=phone_handle).exists()


# -- corrupt rows ----------------------------------------------------------------


@pytest.mark.parametrize(
    "corrupt",
    ["this is not signed data", "", "eyJhIjoxfQ:1tAmpered:signature", "\u00e9" * 1000],
)
def test_corrupt_session_data_is_an_empty_session_through_the_middleware(
    engine: str, auth_client: Client, caplog: Any, corrupt: str
):
    key = session_key(auth_client)
    Session.objects.update(session_data=corrupt)
    cache.clear()
    with caplog.at_level(logging.WARNING):
        response = auth_client.get("/read/")
        assert response.status_code == 200
        assert response.content == b"user="
        assert auth_client.get(reverse("user_sessions:session_list")).status_code == 302
    assert any(
        record.name.startswith("django.security") and "corrupt" in record.getMessage().lower()
        for record in caplog.records
    )
    assert key not in caplog.text
    # The browser can go on: it is anonymous and can store things again.
    assert auth_client.get("/write/").json() == {"counter": 1}


# -- GeoIP database missing or broken -------------------------------------------------


@pytest.fixture
def broken_geoip(request: pytest.FixtureRequest, tmp_path: Path, settings: Any) -> str:
    if request.param == "missing":
        settings.GEOIP_PATH = str(tmp_path / "nowhere" / "GeoLite2-City.mmdb")
    else:
        corrupt = tmp_path / "GeoLite2-City.mmdb"
        corrupt.write_bytes(b"\x00garbage, not a MaxMind database\xff" * 100)
        settings.GEOIP_PATH = str(corrupt)
    return str(request.param)


@pytest.mark.parametrize("broken_geoip", ["missing", "corrupt"], indirect=True)
def test_broken_geoip_database_shows_no_location_and_warns_once(
    engine: str, broken_geoip: str, browser_factory: Any, user: Any, caplog: Any
):
    client = browser_factory(ip=ZWOLLE_IP)
    client.post("/login/", {"username": user.username, "password": "secret-password"})
    with caplog.at_level(logging.WARNING, logger="user_sessions"):
        for _ in range(3):
            page = client.get(reverse("user_sessions:session_list"))
            assert page.status_code == 200
            assert "Zwolle" not in page.content.decode()
            assert ZWOLLE_IP in page.content.decode()  # the address itself still shows
            partial = client.get(reverse("user_sessions:session_list"), HTTP_HX_REQUEST="true")
            assert partial.status_code == 200
    warnings = [r for r in caplog.records if r.name.startswith("user_sessions")]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "GeoIP" in warnings[0].getMessage()


def test_working_geoip_database_shows_the_location(
    engine: str, geoip_settings: Any, browser_factory: Any, user: Any
):
    """The counterpart of the test above, so its "no Zwolle" means something."""
    client = browser_factory(ip=ZWOLLE_IP)
    client.post("/login/", {"username": user.username, "password": "secret-password"})
    assert "Zwolle" in client.get(reverse("user_sessions:session_list")).content.decode()


# -- revoking one session object -------------------------------------------------------


def test_revoking_a_session_object_ends_it_everywhere(engine: str, auth_client: Client, user: Any):
    """``Session.revoke()`` on an instance, as a site's own code would call it."""
    Session.objects.get(user=user).revoke()
    assert not Session.objects.exists()
    assert auth_client.get("/read/").content == b"user="
