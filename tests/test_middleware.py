from __future__ import annotations

import datetime
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from django.db import connection
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.conftest import FIREFOX_LINUX
from user_sessions.models import Session

pytestmark = pytest.mark.django_db(transaction=False)


def writes(queries: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE"))
    ]


def session_queries(queries: CaptureQueriesContext) -> list[str]:
    table = Session._meta.db_table
    return [q["sql"] for q in queries.captured_queries if table in q["sql"]]


def shift_clock(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + datetime.timedelta(seconds=seconds))


def test_login_records_owner_ip_and_user_agent(engine: str, auth_client: Client, user: Any):
    session = Session.objects.get()
    assert session.user == user
    assert session.ip == "203.0.113.10"
    assert "Chrome/131" in (session.user_agent or "")
    assert session.handle and session.handle != session.session_key
    assert session.session_key not in session.handle
    assert auth_client.get("/read/").content == f"user={user.pk}".encode()


def test_identical_requests_inside_the_interval_write_nothing(engine: str, auth_client: Client):
    auth_client.get("/read/")
    with CaptureQueriesContext(connection) as queries:
        for _ in range(25):
            assert auth_client.get("/read/").status_code == 200
    assert writes(queries) == []
    if engine == "cached_db":
        # Served from the cache: the session table is not touched at all.
        assert session_queries(queries) == []


def test_activity_is_written_once_the_interval_has_passed(
    engine: str, auth_client: Client, monkeypatch: pytest.MonkeyPatch
):
    before = Session.objects.get().last_activity
    shift_clock(monkeypatch, 61)
    with CaptureQueriesContext(connection) as queries:
        auth_client.get("/read/")
        auth_client.get("/read/")
    assert len(writes(queries)) == 1
    assert writes(queries)[0].lstrip().upper().startswith("UPDATE")
    session = Session.objects.get()
    assert session.last_activity > before + datetime.timedelta(seconds=60)


def test_interval_setting_is_read_at_access_time(engine: str, auth_client: Client, settings):
    settings.USER_SESSIONS_ACTIVITY_INTERVAL = 0
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            auth_client.get("/read/")
    assert len(writes(queries)) == 3


def test_changed_ip_and_user_agent_are_written_with_the_next_activity(
    engine: str, auth_client: Client, monkeypatch: pytest.MonkeyPatch
):
    auth_client.defaults["REMOTE_ADDR"] = "2001:db8::42"
    auth_client.defaults["HTTP_USER_AGENT"] = FIREFOX_LINUX
    with CaptureQueriesContext(connection) as queries:
        auth_client.get("/read/")
    assert writes(queries) == []  # rate limited like any activity
    shift_clock(monkeypatch, 61)
    auth_client.get("/read/")
    session = Session.objects.get()
    assert session.ip == "2001:db8::42"
    assert session.user_agent == FIREFOX_LINUX


def test_a_modified_session_saves_due_activity_in_the_same_update(
    engine: str, auth_client: Client, monkeypatch: pytest.MonkeyPatch
):
    handle, created, login_ip = Session.objects.values_list("handle", "created_at", "ip").get()
    auth_client.defaults["REMOTE_ADDR"] = "198.51.100.4"
    with CaptureQueriesContext(connection) as queries:
        assert auth_client.get("/write/").json() == {"counter": 1}
    # Inside the interval: the data only, like Django's own UPDATE.
    assert len(writes(queries)) == 1
    assert "last_activity" not in writes(queries)[0]
    assert Session.objects.get().ip == login_ip
    shift_clock(monkeypatch, 61)
    with CaptureQueriesContext(connection) as queries:
        assert auth_client.get("/write/").json() == {"counter": 2}
    # Activity due: written with the data in one statement (cached_db first
    # checks its cached copy against the row, which is the activity write).
    assert len(writes(queries)) == (1 if engine == "db" else 2)
    session = Session.objects.get()
    assert session.ip == "198.51.100.4"
    # An update never changes what identifies the sign-in.
    assert (session.handle, session.created_at) == (handle, created)
    assert auth_client.get("/write/").json() == {"counter": 3}


def test_revoked_while_in_flight_is_not_written_back_by_activity(
    engine: str, auth_client: Client, monkeypatch: pytest.MonkeyPatch, user: Any
):
    shift_clock(monkeypatch, 61)
    response = auth_client.get("/revoked/read/")
    assert response.content == f"user={user.pk}".encode()
    assert not Session.objects.exists()
    if engine == "db":
        # The activity write at the end of the request finds no row.
        cookie = response.cookies[django_settings.SESSION_COOKIE_NAME]
        assert cookie.value == "" and cookie["max-age"] == 0
    else:
        # cached_db checked the row when it loaded the session (still there
        # then) and writes nothing at the end.
        assert django_settings.SESSION_COOKIE_NAME not in response.cookies
    assert auth_client.get("/read/").content == b"user="
    assert not Session.objects.exists()


def test_cached_session_is_checked_against_the_row_once_per_interval(
    browser_factory: Any, user: Any, monkeypatch: pytest.MonkeyPatch, settings
):
    """A revoke that could not reach the cache is noticed within one interval."""
    settings.SESSION_ENGINE = "user_sessions.backends.cached_db"
    auth_client = browser_factory()
    auth_client.post("/login/", {"username": user.username, "password": "secret-password"})
    auth_client.get("/read/")  # cached now
    # Delete the row behind the cache's back, as a revoke does while the
    # cache is unreachable.
    Session.objects.filter(pk=Session.objects.get().pk)._raw_delete("default")
    assert auth_client.get("/read/").content != b"user="  # inside the interval
    shift_clock(monkeypatch, 61)
    assert auth_client.get("/read/").content == b"user="
    assert not Session.objects.exists()


def test_revoked_while_in_flight_is_not_written_back_by_a_save(engine: str, auth_client: Client):
    response = auth_client.get("/revoked/write/")
    # Django's own answer to a session deleted mid-request.
    assert response.status_code == 400
    assert not Session.objects.exists()
    assert auth_client.get("/read/").content == b"user="
    assert not Session.objects.exists()


@pytest.mark.parametrize(
    "cookie", ["garbage", "x" * 4000, "a" * 32, "", "../../etc/passwd", "\u00e9t\u00e9"]
)
def test_unknown_cookies_create_no_rows(engine: str, browser_factory: Any, cookie: str):
    client = browser_factory()
    client.cookies[django_settings.SESSION_COOKIE_NAME] = cookie
    response = client.get("/read/")
    assert response.status_code == 200
    assert not Session.objects.exists()


def test_another_users_handle_as_cookie_is_nobody(
    engine: str, auth_client: Client, browser_factory
):
    handle = Session.objects.get().handle
    stranger = browser_factory()
    stranger.cookies[django_settings.SESSION_COOKIE_NAME] = handle
    assert stranger.get("/read/").content == b"user="
    assert Session.objects.count() == 1


def test_expired_session_is_nobody_and_not_extended(engine: str, auth_client: Client):
    Session.objects.update(expire_date=timezone.now() - datetime.timedelta(seconds=1))
    from django.core.cache import cache

    cache.clear()
    assert auth_client.get("/read/").content == b"user="
    # Ended there and then (user_sessions.endings, EXPIRED), or left expired.
    assert not Session.objects.filter(expire_date__gt=timezone.now()).exists()


def test_anonymous_session_gets_a_row_only_when_the_view_stores_something(
    engine: str, browser_factory: Any
):
    client = browser_factory()
    client.get("/read/")
    client.get("/untouched/")
    assert not Session.objects.exists()
    client.get("/write/")
    session = Session.objects.get()
    assert session.user is None
    assert session.ip == "203.0.113.10"


def test_server_errors_save_nothing(engine: str, browser_factory: Any):
    client = browser_factory()
    client.raise_request_exception = False
    assert client.get("/fail/").status_code == 500
    assert not Session.objects.exists()


def test_long_user_agent_is_truncated_not_rejected(engine: str, browser_factory: Any, user):
    client = browser_factory(user_agent="Mozilla/5.0 " + "x" * 5000)
    client.post("/login/", {"username": user.username, "password": "secret-password"})
    assert len(Session.objects.get().user_agent or "") == 400


def test_ipv6_and_privacy_setting(engine: str, browser_factory: Any, user, settings):
    settings.USER_SESSIONS_IP_PRIVACY = "truncate"
    client = browser_factory(ip="2001:db8:1:2:3:4:5:6")
    client.post("/login/", {"username": user.username, "password": "secret-password"})
    assert Session.objects.get().ip == "2001:db8:1::"
    Session.objects.all().delete()
    settings.USER_SESSIONS_IP_PRIVACY = "none"
    client = browser_factory(ip="203.0.113.8")
    client.post("/login/", {"username": user.username, "password": "secret-password"})
    assert Session.objects.get().ip is None


def test_forged_forwarded_header_is_not_stored(engine: str, browser_factory: Any, user):
    client = browser_factory(HTTP_X_FORWARDED_FOR="6.6.6.6")
    client.post("/login/", {"username": user.username, "password": "secret-password"})
    assert Session.objects.get().ip == "203.0.113.10"


def test_django_cookie_semantics_are_kept(engine: str, auth_client: Client, settings):
    settings.SESSION_COOKIE_SAMESITE = "Strict"
    settings.SESSION_COOKIE_SECURE = True
    response = auth_client.get("/write/")
    cookie = response.cookies[django_settings.SESSION_COOKIE_NAME]
    assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Strict"
    assert "Cookie" in response["Vary"]
    settings.SESSION_EXPIRE_AT_BROWSER_CLOSE = True
    response = auth_client.get("/write/")
    assert response.cookies[django_settings.SESSION_COOKIE_NAME]["max-age"] == ""


def test_save_every_request_is_honoured(engine: str, auth_client: Client, settings):
    settings.SESSION_SAVE_EVERY_REQUEST = True
    with CaptureQueriesContext(connection) as queries:
        auth_client.get("/read/")
        auth_client.get("/read/")
    assert len(writes(queries)) == 2


def test_logout_deletes_the_row(engine: str, auth_client: Client):
    auth_client.post("/logout/")
    assert not Session.objects.exists()
    assert auth_client.get("/read/").content == b"user="


def test_stock_test_client_login_and_force_login_make_one_row(engine: str, user: Any):
    client = Client()
    assert client.login(username=user.username, password="secret-password")
    assert client.get("/read/").content == f"user={user.pk}".encode()
    other = Client()
    other.force_login(user)
    assert other.get("/read/").content == f"user={user.pk}".encode()
    assert Session.objects.filter(user=user).count() == 2


def test_old_test_client_import_still_works(engine: str, user: Any):
    from user_sessions.utils.tests import Client as OldClient

    client = OldClient()
    client.force_login(user)
    assert client.get("/read/").content == f"user={user.pk}".encode()


def test_async_views_read_and_write(engine: str, auth_client: Client, user: Any):
    assert auth_client.get("/async/read/").content == f"user={user.pk}".encode()
    assert auth_client.get("/async/write/").json() == {"counter": 1}
    assert auth_client.get("/async/write/").json() == {"counter": 2}


@pytest.mark.django_db(transaction=True)
def test_async_client_login_records_client_details(engine: str, user: Any):
    async def scenario() -> Session:
        client = AsyncClient()
        await client.aforce_login(user)
        # AsyncClient takes the peer address from the ASGI scope (127.0.0.1).
        response = await client.get("/async/write/", headers={"user-agent": FIREFOX_LINUX})
        assert response.json() == {"counter": 1}
        return await Session.objects.aget()

    session = async_to_sync(scenario)()
    assert session.user_id == user.pk
    assert session.user_agent == FIREFOX_LINUX
    assert session.ip == "127.0.0.1"


def test_client_details_are_resolved_only_when_a_write_needs_them(
    engine: str, auth_client: Client, monkeypatch: pytest.MonkeyPatch
):
    from user_sessions.backends import db as db_backend

    calls: list[str] = []
    real = db_backend.get_client_ip

    def counting(request: Any) -> str | None:
        calls.append(request.path)
        return real(request)

    monkeypatch.setattr(db_backend, "get_client_ip", counting)
    auth_client.get("/read/")
    auth_client.get("/untouched/")
    auth_client.get("/write/")
    assert calls == []
    shift_clock(monkeypatch, 61)
    auth_client.get("/read/")
    auth_client.get("/read/")
    assert calls == ["/read/"]


def test_the_user_agent_parser_is_warmed_when_the_middleware_starts(
    monkeypatch: pytest.MonkeyPatch,
):
    from django.http import HttpResponse

    from user_sessions import devices
    from user_sessions.middleware import SessionMiddleware

    calls: list[None] = []
    monkeypatch.setattr(devices, "warm_up", lambda: calls.append(None))
    SessionMiddleware(lambda request: HttpResponse())
    assert calls == [None]
