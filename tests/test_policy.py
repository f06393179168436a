"""Session policy: the cap at sign-in, the idle timeout and the lifetime, the adapter, E012."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from django.contrib.auth.signals import user_logged_in
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.conftest import FIREFOX_LINUX, SAFARI_IPHONE
from user_sessions import policy
from user_sessions.adapter import SessionsAdapter, get_adapter
from user_sessions.checks import check_policy, check_setup
from user_sessions.events import EndedBy, Reason, SessionEvent, session_ended
from user_sessions.models import Session

pytestmark = pytest.mark.django_db

ON_SQLITE = django_settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
# Long enough for a loaded CI machine, short enough that a deadlock fails the test.
TIMEOUT = 20


class StaffPolicy(SessionsAdapter):
    """Staff get one session, 5 idle minutes and an hour; everybody else the settings."""

    def max_sessions(self, user: Any) -> int:
        return 1 if user.is_staff else super().max_sessions(user)

    def idle_timeout(self, user: Any) -> int | None:
        return 300 if user.is_staff else super().idle_timeout(user)

    def lifetime(self, user: Any) -> int | None:
        return 3600 if user.is_staff else super().lifetime(user)


class NotAnAdapter:
    pass


# -- fixtures and helpers ---------------------------------------------------------


@pytest.fixture
def ended(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[SessionEvent]]:
    """Every ``session_ended`` event, delivered at once.

    The test's own transaction never commits: callbacks run as they would
    outside one, which is where a request without ATOMIC_REQUESTS makes them.
    """
    events: list[SessionEvent] = []

    def receive(sender: Any, event: SessionEvent, **kwargs: Any) -> None:
        events.append(event)

    monkeypatch.setattr(transaction, "on_commit", lambda func, using=None, robust=False: func())
    session_ended.connect(receive, dispatch_uid="tests.test_policy")
    yield events
    session_ended.disconnect(dispatch_uid="tests.test_policy")


class Clock:
    """``timezone.now`` frozen where the test puts it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = timezone.now()
        monkeypatch.setattr(timezone, "now", lambda: self.now)

    def set(self, moment: datetime.datetime) -> None:
        self.now = moment


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


def sign_in(client: Client, user: Any) -> Client:
    response = client.post("/login/", {"username": user.username, "password": "secret-password"})
    assert response.status_code == 302, response.content
    return client


def signed_in_as(client: Client) -> str:
    return client.get("/read/").content.decode().removeprefix("user=")


def handle_of(client: Client) -> str:
    key = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    return Session.objects.get(session_key=key).handle


def cookie_deleted(response: Any) -> bool:
    cookie = response.cookies.get(django_settings.SESSION_COOKIE_NAME)
    return cookie is not None and cookie.value == "" and cookie["max-age"] == 0


def set_last_activity(client: Client, moment: datetime.datetime) -> None:
    key = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    Session.objects.filter(session_key=key).update(last_activity=moment)


def without_receivers(patch: pytest.MonkeyPatch, *dispatch_uids: str) -> None:
    """Sign-ins without these ``user_logged_in`` receivers; the order of the rest is kept."""
    kept = [entry for entry in user_logged_in.receivers if entry[0][0] not in dispatch_uids]
    patch.setattr(user_logged_in, "receivers", kept)


def without_policy(patch: pytest.MonkeyPatch) -> None:
    without_receivers(
        patch,
        "user_sessions.policy.on_user_logging_in",
        "user_sessions.policy.on_user_logged_in",
    )


def reasons(events: list[SessionEvent]) -> list[tuple[Reason | None, str]]:
    return [(event.reason, event.handle) for event in events]


# -- the adapter ----------------------------------------------------------------


def test_the_default_adapter_answers_from_the_settings(settings, user: Any):
    adapter = get_adapter()
    assert type(adapter) is SessionsAdapter
    assert (adapter.max_sessions(user), adapter.idle_timeout(user), adapter.lifetime(user)) == (
        0,
        None,
        None,
    )
    settings.USER_SESSIONS_MAX_SESSIONS = 3
    settings.USER_SESSIONS_IDLE_TIMEOUT = 1800
    settings.USER_SESSIONS_LIFETIME = 0  # 0 is off, as None
    assert (adapter.max_sessions(user), adapter.idle_timeout(user), adapter.lifetime(user)) == (
        3,
        1800,
        None,
    )


def test_the_adapter_setting_names_the_class_and_is_read_at_access_time(settings):
    settings.USER_SESSIONS_ADAPTER = "tests.test_policy.StaffPolicy"
    assert type(get_adapter()) is StaffPolicy
    assert get_adapter() is get_adapter()
    settings.USER_SESSIONS_ADAPTER = "user_sessions.adapter.SessionsAdapter"
    assert type(get_adapter()) is SessionsAdapter


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("tests.test_policy.NotAnAdapter", ImproperlyConfigured),
        ("tests.test_policy.NoSuchAdapter", ImportError),
    ],
)
def test_an_adapter_that_is_not_one_is_reported(settings, path: str, error: type[Exception]):
    settings.USER_SESSIONS_ADAPTER = path
    with pytest.raises(error):
        get_adapter()
    assert [message.id for message in check_policy()] == ["user_sessions.E005"]


@pytest.mark.parametrize("name", ["MAX_SESSIONS", "IDLE_TIMEOUT", "LIFETIME"])
@pytest.mark.parametrize("value", [-1, "600", True, 1.5])
def test_invalid_policy_settings_are_reported(settings, name: str, value: object):
    setattr(settings, f"USER_SESSIONS_{name}", value)
    with pytest.raises(ImproperlyConfigured):
        getattr(get_adapter(), name.lower())(None)
    assert "user_sessions.E005" in [message.id for message in check_setup()]


def test_max_sessions_may_not_be_none(settings):
    settings.USER_SESSIONS_MAX_SESSIONS = None
    with pytest.raises(ImproperlyConfigured):
        get_adapter().max_sessions(None)  # type: ignore[arg-type]


# -- E012 -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "idle_timeout", "reported"),
    [
        (60, None, False),
        (60, 0, False),
        (60, 120, True),  # exactly twice is not more than twice
        (60, 121, False),
        (60, 30, True),
        (0, 1, False),  # activity written on every request
        (300, 1800, False),
    ],
)
def test_e012_idle_timeout_must_exceed_twice_the_activity_interval(
    settings, interval: int, idle_timeout: int | None, reported: bool
):
    settings.USER_SESSIONS_ACTIVITY_INTERVAL = interval
    settings.USER_SESSIONS_IDLE_TIMEOUT = idle_timeout
    messages = check_policy()
    assert [message.id for message in messages] == (["user_sessions.E012"] if reported else [])
    if reported:
        assert str(idle_timeout) in messages[0].msg
        assert str(2 * interval) in (messages[0].hint or "")


def test_e012_is_silent_when_a_setting_is_invalid(settings):
    settings.USER_SESSIONS_IDLE_TIMEOUT = "soon"
    assert check_policy() == []  # E005 reports the setting itself


# -- the cap ----------------------------------------------------------------------


def test_at_the_cap_nothing_ends_and_one_more_ends_the_least_recently_active(
    engine: str,
    settings,
    user: Any,
    browser_factory: Callable[..., Client],
    ended: list[SessionEvent],
):
    settings.USER_SESSIONS_MAX_SESSIONS = 3
    laptop = sign_in(browser_factory(), user)
    phone = sign_in(browser_factory(user_agent=SAFARI_IPHONE, ip="198.51.100.3"), user)
    tablet = sign_in(browser_factory(user_agent=FIREFOX_LINUX, ip="198.51.100.4"), user)
    assert ended == []  # exactly at the cap
    assert Session.objects.filter(user=user).count() == 3
    now = timezone.now()
    # Least recently active: the phone, then the laptop (whatever the sign-in order).
    set_last_activity(laptop, now - datetime.timedelta(hours=2))
    set_last_activity(phone, now - datetime.timedelta(hours=3))
    set_last_activity(tablet, now - datetime.timedelta(hours=1))
    phone_handle = handle_of(phone)

    desktop = sign_in(browser_factory(ip="198.51.100.5"), user)

    assert reasons(ended) == [(Reason.EVICTED, phone_handle)]
    assert ended[0].ended_by == EndedBy.SYSTEM
    assert Session.objects.filter(user=user).count() == 3
    assert signed_in_as(phone) == ""
    for client in (laptop, tablet, desktop):
        assert signed_in_as(client) == str(user.pk)


def test_a_lowered_cap_ends_every_session_beyond_it_oldest_first(
    engine: str,
    settings,
    user: Any,
    browser_factory: Callable[..., Client],
    ended: list[SessionEvent],
):
    clients = [sign_in(browser_factory(ip=f"198.51.100.{n}"), user) for n in range(1, 6)]
    now = timezone.now()
    for age, client in enumerate(clients, start=1):
        set_last_activity(client, now - datetime.timedelta(minutes=age))
    settings.USER_SESSIONS_MAX_SESSIONS = 2

    oldest_four = sorted(handle_of(client) for client in clients[1:])

    newest = sign_in(browser_factory(ip="198.51.100.9"), user)

    # The new session and the most recently active other stay.
    assert sorted(handle for _, handle in reasons(ended)) == oldest_four
    assert {event.reason for event in ended} == {Reason.EVICTED}
    assert [signed_in_as(client) for client in (newest, *clients)] == [
        str(user.pk),
        str(user.pk),
        "",
        "",
        "",
        "",
    ]


def test_expired_sessions_and_other_users_do_not_count(
    settings,
    user_factory: Callable[..., Any],
    browser_factory: Callable[..., Client],
    ended: list[SessionEvent],
):
    alice, bob = user_factory(), user_factory()
    settings.USER_SESSIONS_MAX_SESSIONS = 2
    stale = sign_in(browser_factory(), alice)
    key = stale.cookies[django_settings.SESSION_COOKIE_NAME].value
    Session.objects.filter(session_key=key).update(
        expire_date=timezone.now() - datetime.timedelta(seconds=1)
    )
    sign_in(browser_factory(), bob)
    sign_in(browser_factory(), bob)
    phone = sign_in(browser_factory(user_agent=SAFARI_IPHONE), alice)
    laptop = sign_in(browser_factory(), alice)
    assert ended == []
    assert signed_in_as(phone) == signed_in_as(laptop) == str(alice.pk)


def test_the_cap_per_user_through_the_adapter(
    settings,
    user_factory: Callable[..., Any],
    browser_factory: Callable[..., Client],
    ended: list[SessionEvent],
):
    settings.USER_SESSIONS_ADAPTER = "tests.test_policy.StaffPolicy"
    settings.USER_SESSIONS_MAX_SESSIONS = 0
    admin, member = user_factory(is_staff=True), user_factory()
    first_admin = sign_in(browser_factory(), admin)
    members = [sign_in(browser_factory(), member) for _ in range(3)]
    second_admin = sign_in(browser_factory(user_agent=FIREFOX_LINUX), admin)
    assert reasons(ended) == [(Reason.EVICTED, ended[0].handle)]
    assert signed_in_as(first_admin) == ""
    assert signed_in_as(second_admin) == str(admin.pk)
    assert all(signed_in_as(client) == str(member.pk) for client in members)


def test_a_sign_in_without_a_cap_costs_no_query(
    engine: str, settings, user: Any, browser_factory: Callable[..., Client]
):
    def sign_in_queries() -> list[str]:
        client = browser_factory()
        with CaptureQueriesContext(connection) as queries:
            sign_in(client, user)
        return [query["sql"] for query in queries.captured_queries]

    sign_in_queries()  # the first sign-in of a user differs (no last_login yet)
    with_receivers = sign_in_queries()
    with pytest.MonkeyPatch.context() as patch:
        without_policy(patch)
        without_receivers = sign_in_queries()
    assert len(with_receivers) == len(without_receivers)


def test_the_cap_costs_its_own_queries_only_at_sign_in(
    engine: str, settings, user: Any, browser_factory: Callable[..., Client]
):
    settings.USER_SESSIONS_MAX_SESSIONS = 5
    sign_in(browser_factory(), user)
    client = browser_factory()
    with CaptureQueriesContext(connection) as queries:
        sign_in(client, user)
    statements = [query["sql"] for query in queries.captured_queries]
    locks = [sql for sql in statements if "FOR UPDATE" in sql or "FOR NO KEY UPDATE" in sql]
    picks = [sql for sql in statements if "last_activity" in sql.partition("ORDER BY")[2]]
    assert len(locks) == (0 if ON_SQLITE else 1)
    assert len(picks) == 1  # one query finds what to end (here: nothing)


# -- idle timeout and lifetime ---------------------------------------------------------


def test_an_idle_session_ends_at_its_next_request_past_the_timeout(
    engine: str,
    settings,
    user: Any,
    auth_client: Client,
    clock: Clock,
    ended: list[SessionEvent],
):
    settings.USER_SESSIONS_IDLE_TIMEOUT = 600
    session = Session.objects.get(user=user)
    clock.set(session.last_activity + datetime.timedelta(seconds=600))
    assert signed_in_as(auth_client) == str(user.pk)  # exactly at the timeout: alive
    assert ended == []
    # That request was activity (written: the interval had passed).
    session.refresh_from_db()
    assert session.last_activity == clock.now

    clock.set(session.last_activity + datetime.timedelta(seconds=600, microseconds=1))
    response = auth_client.get("/read/")
    assert response.content == b"user="
    assert cookie_deleted(response)
    assert reasons(ended) == [(Reason.IDLE, session.handle)]
    assert ended[0].ended_by == EndedBy.SYSTEM
    assert not Session.objects.filter(user=user).exists()
    assert signed_in_as(auth_client) == ""


def test_a_session_ends_at_its_lifetime_however_active(
    engine: str,
    settings,
    user: Any,
    auth_client: Client,
    clock: Clock,
    ended: list[SessionEvent],
):
    settings.USER_SESSIONS_LIFETIME = 3600
    settings.USER_SESSIONS_IDLE_TIMEOUT = 900
    session = Session.objects.get(user=user)
    for minutes in range(10, 61, 10):
        clock.set(session.created_at + datetime.timedelta(minutes=minutes))
        assert signed_in_as(auth_client) == str(user.pk)
    assert ended == []  # exactly at the lifetime: alive
    clock.set(session.created_at + datetime.timedelta(seconds=3600, microseconds=1))
    assert signed_in_as(auth_client) == ""
    assert reasons(ended) == [(Reason.LIFETIME, session.handle)]


def test_the_lifetime_counts_from_sign_in_across_a_password_change(
    engine: str,
    settings,
    user: Any,
    auth_client: Client,
    clock: Clock,
    ended: list[SessionEvent],
):
    settings.USER_SESSIONS_LIFETIME = 3600
    session = Session.objects.get(user=user)
    clock.set(session.created_at + datetime.timedelta(minutes=30))
    response = auth_client.post(
        "/password/change/",
        {
            "old_password": "secret-password",
            "new_password1": "a-new-password-42",
            "new_password2": "a-new-password-42",
        },
    )
    assert response.status_code == 302
    # Django cycled the key; the session (handle, sign-in time) goes on.
    assert Session.objects.get(user=user).handle == session.handle
    clock.set(session.created_at + datetime.timedelta(seconds=3600))
    assert signed_in_as(auth_client) == str(user.pk)
    clock.set(session.created_at + datetime.timedelta(seconds=3601))
    assert signed_in_as(auth_client) == ""
    assert reasons(ended) == [(Reason.LIFETIME, session.handle)]


def test_each_policy_ending_leaves_a_history_record(
    engine: str,
    settings,
    user_factory: Callable[..., Any],
    browser_factory: Callable[..., Client],
    clock: Clock,
):
    from user_sessions.models import EndedSession

    settings.USER_SESSIONS_MAX_SESSIONS = 1
    settings.USER_SESSIONS_IDLE_TIMEOUT = 600
    settings.USER_SESSIONS_LIFETIME = 3600
    evicted_user, idle_user, old_user = user_factory(), user_factory(), user_factory()
    first = sign_in(browser_factory(user_agent=SAFARI_IPHONE), evicted_user)
    evicted = Session.objects.get(user=evicted_user)
    sign_in(browser_factory(), evicted_user)
    idle_client = sign_in(browser_factory(), idle_user)
    idle = Session.objects.get(user=idle_user)
    old_client = sign_in(browser_factory(), old_user)
    old = Session.objects.get(user=old_user)
    for minutes in range(5, 61, 5):  # busy, so only the lifetime can end it
        clock.set(old.created_at + datetime.timedelta(minutes=minutes))
        assert signed_in_as(old_client) == str(old_user.pk)
    clock.set(old.created_at + datetime.timedelta(seconds=3601))
    assert signed_in_as(old_client) == ""
    assert signed_in_as(idle_client) == ""
    assert signed_in_as(first) == ""

    records = {
        record.user_id: record for record in EndedSession.objects.filter(ended_by=EndedBy.SYSTEM)
    }
    expected = {
        evicted_user.pk: (Reason.EVICTED, evicted),
        idle_user.pk: (Reason.IDLE, idle),
        old_user.pk: (Reason.LIFETIME, old),
    }
    assert set(records) == set(expected)
    for user_id, (reason, session) in expected.items():
        record = records[user_id]
        assert (record.reason, record.handle) == (reason, session.handle)
        assert record.created_at == session.created_at
    assert "iPhone" in (records[evicted_user.pk].user_agent or "")


def test_the_limit_reached_first_names_the_reason(user: Any):
    adapter = StaffPolicy()  # user is not staff: the settings, below
    start = timezone.now()

    def reason(now: datetime.datetime, **times: datetime.datetime) -> Reason | None:
        return policy.reason_to_end(
            adapter,
            user,
            last_activity=times.get("last_activity", start),
            signed_in_at=times.get("signed_in_at", start),
            now=now,
        )

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SessionsAdapter, "idle_timeout", lambda self, user: 600)
        patch.setattr(SessionsAdapter, "lifetime", lambda self, user: 3600)
        later = start + datetime.timedelta(hours=2)
        # Idle since 10 minutes after sign-in: idle ended it before the lifetime.
        assert reason(later, last_activity=start + datetime.timedelta(minutes=10)) is Reason.IDLE
        # Active until 55 minutes: the lifetime came first.
        assert (
            reason(later, last_activity=start + datetime.timedelta(minutes=55)) is Reason.LIFETIME
        )
        assert reason(start + datetime.timedelta(seconds=600)) is None


def test_timeouts_per_user_through_the_adapter(
    engine: str,
    settings,
    user_factory: Callable[..., Any],
    browser_factory: Callable[..., Client],
    clock: Clock,
    ended: list[SessionEvent],
):
    settings.USER_SESSIONS_ADAPTER = "tests.test_policy.StaffPolicy"
    settings.USER_SESSIONS_IDLE_TIMEOUT = 3600
    admin, member = user_factory(is_staff=True), user_factory()
    admin_client = sign_in(browser_factory(), admin)
    member_client = sign_in(browser_factory(), member)
    clock.set(clock.now + datetime.timedelta(seconds=301))
    assert signed_in_as(member_client) == str(member.pk)
    assert signed_in_as(admin_client) == ""
    assert [event.reason for event in ended] == [Reason.IDLE]
    assert ended[0].user_id == str(admin.pk)


def test_an_anonymous_session_is_never_judged(
    engine: str, settings, browser_factory: Callable[..., Client], clock: Clock
):
    settings.USER_SESSIONS_IDLE_TIMEOUT = 600
    settings.USER_SESSIONS_LIFETIME = 600
    client = browser_factory()
    assert client.get("/write/").json() == {"counter": 1}
    clock.set(clock.now + datetime.timedelta(days=1))
    assert client.get("/write/").json() == {"counter": 2}


def test_async_requests_end_idle_sessions_too(
    engine: str,
    settings,
    user: Any,
    auth_client: Client,
    clock: Clock,
    ended: list[SessionEvent],
):
    settings.USER_SESSIONS_IDLE_TIMEOUT = 600
    assert auth_client.get("/async/read/").content == f"user={user.pk}".encode()
    clock.set(clock.now + datetime.timedelta(seconds=601))
    assert auth_client.get("/async/read/").content == b"user="
    assert [event.reason for event in ended] == [Reason.IDLE]


@pytest.mark.django_db(transaction=True)
def test_an_asgi_request_ends_an_idle_session(
    engine: str, settings, user: Any, clock: Clock, ended: list[SessionEvent]
):
    settings.USER_SESSIONS_IDLE_TIMEOUT = 600

    async def scenario() -> tuple[bytes, bytes]:
        client = AsyncClient()
        await client.aforce_login(user)
        before = (await client.get("/async/read/")).content
        clock.set(clock.now + datetime.timedelta(seconds=700))
        after = (await client.get("/async/read/")).content
        return before, after

    assert async_to_sync(scenario)() == (f"user={user.pk}".encode(), b"user=")
    assert [event.reason for event in ended] == [Reason.IDLE]
    assert not Session.objects.exists()


def test_a_normal_request_costs_the_same_with_every_limit_on(
    engine: str, settings, user: Any, auth_client: Client
):
    def read_queries() -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            assert signed_in_as(auth_client) == str(user.pk)
        # Without the values (the read compares expiry with the time).
        return [query["sql"].partition(" WHERE ")[0] for query in queries.captured_queries]

    read_queries()  # the cached store's first read fills the cache
    off = read_queries()
    settings.USER_SESSIONS_MAX_SESSIONS = 3
    settings.USER_SESSIONS_IDLE_TIMEOUT = 1800
    settings.USER_SESSIONS_LIFETIME = 86400
    on = read_queries()
    assert on == off
    # The db store reads session and owner in one query; the cached one reads the owner only.
    assert len(on) == 1


def test_a_per_user_adapter_costs_no_query_with_the_owner_joined(
    settings, user: Any, auth_client: Client
):
    settings.USER_SESSIONS_ADAPTER = "tests.test_policy.StaffPolicy"
    settings.USER_SESSIONS_IDLE_TIMEOUT = 1800
    with CaptureQueriesContext(connection) as queries:
        assert signed_in_as(auth_client) == str(user.pk)
    assert len(queries.captured_queries) == 1


def test_a_cached_entry_of_the_previous_version_is_read_anew(
    settings, user: Any, auth_client: Client, clock: Clock, ended: list[SessionEvent]
):
    from django.core.cache import cache

    from user_sessions.backends import cached_db

    settings.SESSION_ENGINE = "user_sessions.backends.cached_db"
    settings.USER_SESSIONS_LIFETIME = 3600
    session = Session.objects.get(user=user)
    entry_key = cached_db._cache_key(session.session_key)
    cache.set(entry_key, (3, {}, None, None, None, None))  # version 3: no sign-in time
    clock.set(session.created_at + datetime.timedelta(seconds=3601))
    assert signed_in_as(auth_client) == ""
    assert [event.reason for event in ended] == [Reason.LIFETIME]


# -- races: parallel sign-ins of one user ------------------------------------------------

needs_threads = pytest.mark.skipif(
    ON_SQLITE,
    reason="needs PostgreSQL or MariaDB: an in-memory SQLite database cannot be shared "
    "between the threads a race needs (USER_SESSIONS_TEST_DB=postgres|mysql)",
)


@contextmanager
def held_before_the_lock(arrived: threading.Barrier) -> Iterator[None]:
    """In this thread, wait at the cap's lock until every racing sign-in got there.

    By then each has saved its new session (committed), so each could see all of them.
    """
    held = False

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal held
        if not held and ("FOR UPDATE" in sql or "FOR NO KEY UPDATE" in sql):
            held = True
            arrived.wait(TIMEOUT)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield


def race_sign_ins(clients: list[Client], user: Any, *, hold: bool = True) -> list[Any]:
    arrived = threading.Barrier(len(clients))
    results: list[Any] = [None] * len(clients)

    def run(index: int) -> None:
        try:
            with held_before_the_lock(arrived) if hold else nullcontext():
                results[index] = clients[index].post(
                    "/login/", {"username": user.username, "password": "secret-password"}
                )
        except BaseException as exc:  # reported by the test, not lost in the thread
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a sign-in never finished"
    return results


@needs_threads
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("cap", "racing"), [(1, 2), (2, 4)])
def test_parallel_sign_ins_keep_to_the_cap_and_never_end_each_other_all(
    engine: str,
    settings,
    user: Any,
    browser_factory: Callable[..., Client],
    cap: int,
    racing: int,
):
    settings.USER_SESSIONS_MAX_SESSIONS = cap
    events: list[SessionEvent] = []

    def receive(sender: Any, event: SessionEvent, **kwargs: Any) -> None:
        events.append(event)

    session_ended.connect(receive, dispatch_uid="tests.test_policy.race")
    try:
        old = sign_in(browser_factory(ip="198.51.100.1"), user)
        clients = [browser_factory(ip=f"198.51.100.{10 + n}") for n in range(racing)]
        results = race_sign_ins(clients, user)
    finally:
        session_ended.disconnect(dispatch_uid="tests.test_policy.race")
    # A sign-in whose session the other ended before its response saved it
    # answers as any request whose session was revoked in flight (400).
    assert all(getattr(result, "status_code", None) in (302, 400) for result in results), results
    signed_in = [client for client in clients if signed_in_as(client) == str(user.pk)]
    assert len(signed_in) == cap
    assert signed_in_as(old) == ""
    assert Session.objects.filter(user=user).count() == cap
    assert len(events) == racing + 1 - cap
    assert {event.reason for event in events} == {Reason.EVICTED}


@needs_threads
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("records_last_login", [True, False])
def test_parallel_sign_ins_with_atomic_requests_keep_to_the_cap(
    engine: str,
    settings,
    user: Any,
    browser_factory: Callable[..., Client],
    monkeypatch: pytest.MonkeyPatch,
    records_last_login: bool,
):
    """Each sign-in in one transaction: its lock is held to the end, and nothing deadlocks.

    Not held at the lock here: with ``last_login``, Django's update_last_login
    already makes the second sign-in wait for the first to commit. Without it
    (a user model that has none), saving the session takes a shared lock on
    the user's row on MariaDB, and the cap's lock, if it came after, would
    deadlock there: user_sessions.policy.on_user_logging_in takes it first.
    """
    from django.db import connections

    monkeypatch.setitem(connections.settings["default"], "ATOMIC_REQUESTS", True)
    settings.USER_SESSIONS_MAX_SESSIONS = 2
    old = sign_in(browser_factory(ip="198.51.100.1"), user)
    clients = [browser_factory(ip=f"198.51.100.{10 + n}") for n in range(4)]
    if not records_last_login:
        without_receivers(monkeypatch, "update_last_login")
    results = race_sign_ins(clients, user, hold=False)
    assert all(getattr(result, "status_code", None) in (302, 400) for result in results), results
    assert len([client for client in clients if signed_in_as(client) == str(user.pk)]) == 2
    assert signed_in_as(old) == ""
    assert Session.objects.filter(user=user).count() == 2
