"""Every way a session ends goes through user_sessions.endings: one reason, one event each."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.conf import settings
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.conftest import FIREFOX_LINUX, SAFARI_IPHONE
from user_sessions import endings
from user_sessions.backends import db
from user_sessions.events import EndedBy, Reason, SessionEvent, session_ended
from user_sessions.models import EndedSession, Session

pytestmark = pytest.mark.django_db

Ended = list[SessionEvent]

#: For races: real threads, each on its own connection, outside a test transaction.
between_threads = pytest.mark.django_db(transaction=True)
needs_shared_database = pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"),
    reason="needs PostgreSQL or MariaDB: in-memory SQLite cannot be shared between threads "
    "(USER_SESSIONS_TEST_DB=postgres|mysql)",
)


@pytest.fixture
def heard(django_capture_on_commit_callbacks: Any) -> Iterator[Callable[[], Any]]:
    """``with heard() as events:`` collects the session_ended events sent on commit."""
    events: Ended = []

    def receiver(sender: Any, event: SessionEvent, **kwargs: Any) -> None:
        events.append(event)

    @contextmanager
    def listen() -> Iterator[Ended]:
        with django_capture_on_commit_callbacks(execute=True):
            yield events

    session_ended.connect(receiver)
    try:
        yield listen
    finally:
        session_ended.disconnect(receiver)


@pytest.fixture
def sign_in(browser_factory: Callable[..., Client]) -> Callable[..., Client]:
    def make(user: Any, **browser: Any) -> Client:
        client = browser_factory(**browser)
        response = client.post(
            "/login/", {"username": user.username, "password": "secret-password"}
        )
        assert response.status_code == 302
        return client

    return make


def handle_of(client: Client) -> str:
    return Session.objects.get(
        session_key=client.cookies[settings.SESSION_COOKIE_NAME].value
    ).handle


def summary(events: Ended) -> list[tuple[str, str, Reason | None, EndedBy | None, str | None]]:
    return sorted((e.user_id, e.handle, e.reason, e.ended_by, e.by_handle) for e in events)  # type: ignore[type-var]


def test_logout_ends_the_session_as_signed_out_by_itself(
    engine: str, heard: Any, sign_in: Any, user: Any
):
    client = sign_in(user)
    handle = handle_of(client)
    with heard() as events:
        client.post("/logout/")
    assert summary(events) == [(str(user.pk), handle, Reason.LOGOUT, EndedBy.USER, handle)]
    assert not Session.objects.exists()


def test_logout_on_a_request_that_read_the_row_costs_no_select(
    heard: Any, sign_in: Any, user: Any, settings: Any
):
    settings.SESSION_ENGINE = "user_sessions.backends.db"
    client = sign_in(user)
    with heard(), CaptureQueriesContext(connection) as queries:
        client.post("/logout/")
    table = Session._meta.db_table
    statements = [q["sql"].split()[0].upper() for q in queries if table in q["sql"]]
    # The read (with its owner), then the delete: what the row said is known.
    assert statements == ["SELECT", "DELETE"]


def test_signing_out_another_session_names_the_one_that_did_it(
    engine: str, heard: Any, sign_in: Any, user: Any
):
    phone = sign_in(user, user_agent=SAFARI_IPHONE)
    laptop = sign_in(user, user_agent=FIREFOX_LINUX)
    with heard() as events:
        response = laptop.post(reverse("user_sessions:session_delete", args=[handle_of(phone)]))
    assert response.status_code == 302
    assert summary(events) == [
        (
            str(user.pk),
            handle_of_gone(events),
            Reason.SIGNED_OUT_ELSEWHERE,
            EndedBy.USER,
            handle_of(laptop),
        )
    ]


def handle_of_gone(events: Ended) -> str:
    (event,) = events
    assert not Session.objects.filter(handle=event.handle).exists()
    return event.handle


def test_sign_out_all_others_ends_each_other_session(
    engine: str, heard: Any, sign_in: Any, user: Any, user_factory: Any
):
    others = [sign_in(user, user_agent=SAFARI_IPHONE) for _ in range(3)]
    other_handles = sorted(handle_of(c) for c in others)
    stranger = sign_in(user_factory())
    laptop = sign_in(user, user_agent=FIREFOX_LINUX)
    with heard() as events:
        laptop.post(reverse("user_sessions:session_delete_other"))
    me = handle_of(laptop)
    assert summary(events) == sorted(
        (str(user.pk), h, Reason.SIGNED_OUT_ALL_OTHERS, EndedBy.USER, me) for h in other_handles
    )
    assert Session.objects.filter(user=user).count() == 1
    handle_of(stranger)  # untouched


def test_a_password_change_ends_the_other_sessions_by_the_changing_one(
    engine: str, heard: Any, sign_in: Any, user: Any
):
    other = sign_in(user, user_agent=SAFARI_IPHONE)
    other_handle = handle_of(other)
    laptop = sign_in(user)
    with heard() as events:
        response = laptop.post(
            "/password/change/",
            {
                "old_password": "secret-password",
                "new_password1": "a-new-Passw0rd!",
                "new_password2": "a-new-Passw0rd!",
            },
        )
    assert response.status_code == 302
    assert summary(events) == [
        (str(user.pk), other_handle, Reason.PASSWORD_CHANGED, EndedBy.USER, handle_of(laptop))
    ]


def test_a_password_set_outside_a_request_ends_every_session_by_the_site(
    engine: str, heard: Any, sign_in: Any, user: Any
):
    handles = sorted(handle_of(sign_in(user)) for _ in range(2))
    with heard() as events:
        user.set_password("changed-elsewhere")
        user.save()
    assert summary(events) == [
        (str(user.pk), h, Reason.PASSWORD_CHANGED, EndedBy.SYSTEM, None) for h in handles
    ]


# Committed as a real request commits: the change ends sessions on commit,
# before the response decides about this one.
@pytest.mark.django_db(transaction=True)
def test_a_change_that_leaves_this_session_unverifiable_flushes_it_as_password_changed(
    engine: str, heard: Any, sign_in: Any, user: Any
):
    client = sign_in(user)
    handle = handle_of(client)
    with heard() as events:
        client.post("/password/set-only/", {"password": "another-one"})
    assert summary(events) == [
        (str(user.pk), handle, Reason.PASSWORD_CHANGED, EndedBy.USER, handle)
    ]


def test_a_hash_that_no_longer_verifies_at_the_next_request_is_password_changed(
    engine: str, heard: Any, sign_in: Any, user: Any
):
    client = sign_in(user)
    handle = handle_of(client)
    # Changed where no signal fires: the session finds out at its next request.
    get_user_model().objects.filter(pk=user.pk).update(password=make_password("elsewhere"))
    with heard() as events:
        response = client.get(reverse("user_sessions:session_list"))
    assert response.status_code == 302  # to the sign-in page
    assert summary(events) == [
        (str(user.pk), handle, Reason.PASSWORD_CHANGED, EndedBy.SYSTEM, None)
    ]
    assert not Session.objects.filter(handle=handle).exists()


def test_an_expired_session_found_at_access_ends_as_expired(
    engine: str, heard: Any, sign_in: Any, user: Any
):
    client = sign_in(user)
    handle = handle_of(client)
    Session.objects.update(expire_date=timezone.now() - datetime.timedelta(seconds=1))
    cache.clear()  # as if its cached copy had expired with it
    with heard() as events:
        client.get("/read/")
    assert summary(events) == [(str(user.pk), handle, Reason.EXPIRED, EndedBy.SYSTEM, None)]
    assert not Session.objects.filter(handle=handle).exists()


def test_a_dead_cookie_costs_no_more_when_nobody_listens(sign_in: Any, user: Any, settings: Any):
    settings.SESSION_ENGINE = "user_sessions.backends.db"
    settings.USER_SESSIONS_HISTORY_DAYS = 0
    client = sign_in(user)
    Session.objects.update(expire_date=timezone.now() - datetime.timedelta(seconds=1))
    with CaptureQueriesContext(connection) as queries:
        client.get("/read/")
    table = Session._meta.db_table
    assert [q["sql"].split()[0].upper() for q in queries if table in q["sql"]] == ["SELECT"]
    assert Session.objects.exists()  # left for clearsessions


def test_clearsessions_ends_owned_expired_sessions_as_expired(
    engine: str, heard: Any, sign_in: Any, user: Any
):
    handles = sorted(handle_of(sign_in(user)) for _ in range(3))
    anonymous = db.SessionStore()
    anonymous["cart"] = 1
    anonymous.save()
    live = sign_in(user)
    Session.objects.exclude(session_key=live.cookies[settings.SESSION_COOKIE_NAME].value).update(
        expire_date=timezone.now() - datetime.timedelta(days=1)
    )
    with heard() as events:
        call_command("clearsessions", verbosity=0)
    assert summary(events) == [
        (str(user.pk), h, Reason.EXPIRED, EndedBy.SYSTEM, None) for h in handles
    ]
    assert list(Session.objects.values_list("handle", flat=True)) == [handle_of(live)]


def test_the_admin_action_ends_sessions_as_the_admin(heard: Any, sign_in: Any, user_factory: Any):
    admin = user_factory(is_staff=True, is_superuser=True)
    victim = user_factory()
    handle = handle_of(sign_in(victim))
    staff = sign_in(admin)
    with heard() as events:
        staff.post(
            reverse("admin:user_sessions_session_changelist"),
            {"action": "revoke_sessions", ACTION_CHECKBOX_NAME: [handle], "index": "0"},
        )
    assert summary(events) == [(str(victim.pk), handle, Reason.ADMIN, EndedBy.ADMIN, None)]


def test_revoke_and_delete_default_to_ended_by_the_site(heard: Any, sign_in: Any, user: Any):
    first, second, third = (handle_of(sign_in(user)) for _ in range(3))
    with heard() as events:
        assert Session.objects.get(handle=first).revoke() is True
        assert Session.objects.get(handle=second).delete() == (1, {"user_sessions.Session": 1})
        assert Session.objects.filter(handle=third).delete() == (1, {"user_sessions.Session": 1})
        assert Session.objects.filter(handle=third).revoke() == 0
    assert summary(events) == sorted(
        (str(user.pk), h, Reason.ADMIN, EndedBy.SYSTEM, None) for h in (first, second, third)
    )


def test_a_session_revoked_twice_ends_once(heard: Any, sign_in: Any, user: Any):
    handle = handle_of(sign_in(user))
    session = Session.objects.get(handle=handle)
    stale_copy = Session.objects.get(handle=handle)
    with heard() as events:
        assert session.revoke() is True
        assert stale_copy.revoke() is False
    assert len(events) == 1


def test_deleting_a_user_ends_their_sessions_without_events(
    engine: str, heard: Any, sign_in: Any, user: Any
):
    sign_in(user)
    with heard() as events:
        user.delete()
    assert events == []
    assert not Session.objects.exists()


def test_anonymous_sessions_end_without_events(heard: Any, engine: str):
    store = db.SessionStore()
    store["cart"] = 1
    store.save()
    with heard() as events:
        store.flush()
        assert Session.objects.count() == 0
    assert events == []


def test_end_sessions_works_in_batches(
    heard: Any, sign_in: Any, user: Any, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(endings, "BATCH_SIZE", 2)
    handles = sorted(handle_of(sign_in(user)) for _ in range(5))
    table = Session._meta.db_table
    with heard() as events, CaptureQueriesContext(connection) as queries:
        ended = endings.end_sessions(Session.objects.filter(user=user), Reason.IDLE)
    assert ended == 5
    assert summary(events) == [
        (str(user.pk), h, Reason.IDLE, EndedBy.SYSTEM, None) for h in handles
    ]
    kinds = [q["sql"].split()[0].upper() for q in queries if table in q["sql"]]
    # Three rounds of 2, 2 and 1: each reads its rows, then deletes them.
    assert kinds == ["SELECT", "DELETE"] * 3


def test_end_sessions_on_a_slice_ends_that_slice(heard: Any, sign_in: Any, user: Any):
    for _ in range(4):
        sign_in(user)
    with heard() as events:
        ended = endings.end_sessions(
            Session.objects.filter(user=user).order_by("created_at")[:2], Reason.EVICTED
        )
    assert ended == 2
    assert len(events) == 2
    assert Session.objects.count() == 2


def test_queryset_delete_reads_rows_only_for_someone_listening(
    heard: Any, sign_in: Any, user: Any, settings: Any
):
    settings.SESSION_ENGINE = "user_sessions.backends.db"
    settings.USER_SESSIONS_HISTORY_DAYS = 0
    sign_in(user)
    with heard(), CaptureQueriesContext(connection) as queries:
        Session.objects.all().delete()
    assert [q["sql"].split()[0].upper() for q in queries] == ["SELECT", "DELETE"]


def test_an_async_flush_ends_the_session_the_same_way(heard: Any, sign_in: Any, user: Any):
    from asgiref.sync import async_to_sync

    client = sign_in(user)
    handle = handle_of(client)
    store = db.SessionStore(client.cookies[settings.SESSION_COOKIE_NAME].value)
    async_to_sync(store.aload)()
    with heard() as events:
        async_to_sync(store.aflush)()
    assert summary(events) == [(str(user.pk), handle, Reason.LOGOUT, EndedBy.USER, handle)]
    assert not Session.objects.exists()


@needs_shared_database
@between_threads
def test_endings_racing_over_the_same_sessions_end_and_record_each_once(
    user: Any, monkeypatch: pytest.MonkeyPatch
):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    from user_sessions.models import EndedSession

    monkeypatch.setattr(endings, "BATCH_SIZE", 7)
    for _ in range(40):
        store = db.SessionStore()
        store["_auth_user_id"] = str(user.pk)
        store.create()
    events: Ended = []
    session_ended.connect(
        lambda sender, event, **kwargs: events.append(event), weak=False, dispatch_uid="race"
    )
    start = threading.Barrier(4)

    def end(_n: int) -> int:
        try:
            start.wait()
            return endings.end_sessions(Session.objects.filter(user=user), Reason.EVICTED)
        finally:
            connections.close_all()

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            counts = list(pool.map(end, range(4)))
    finally:
        session_ended.disconnect(dispatch_uid="race")
    assert sum(counts) == 40
    assert not Session.objects.exists()
    assert EndedSession.objects.filter(user=user).count() == 40
    assert len({event.handle for event in events}) == len(events) == 40


def test_an_ending_rolled_back_leaves_the_cached_session_alive(
    heard: Any, sign_in: Any, user: Any, settings: Any
):
    from django.contrib.auth import SESSION_KEY
    from django.db import transaction

    from user_sessions.backends import cached_db

    settings.SESSION_ENGINE = "user_sessions.backends.cached_db"
    cache.clear()
    client = sign_in(user)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert cached_db.SessionStore(key).load().get(SESSION_KEY) == str(user.pk)
    with heard() as events, pytest.raises(RuntimeError), transaction.atomic():
        assert Session.objects.get(session_key=key).revoke() is True
        raise RuntimeError("the request failed after the revoke")
    assert events == []
    assert Session.objects.filter(session_key=key).exists()
    # The row lives on, so must the session: no tombstone from an ending that never was.
    assert cached_db.SessionStore(key).load().get(SESSION_KEY) == str(user.pk)
    # Committed, it ends in the cache too.
    with heard():
        assert Session.objects.get(session_key=key).revoke() is True
    assert cached_db.SessionStore(key).load() == {}


def test_a_plain_delete_never_leaves_a_cached_copy_of_a_row_it_deleted(
    sign_in: Any, user: Any, settings: Any
):
    # Nobody listens (no history, no receivers): the rows go by a plain delete.
    # A session that starts between reading the keys to bury and the DELETE
    # must not be deleted without its tombstone: cached_db would serve it on.
    from user_sessions.backends import cached_db

    settings.SESSION_ENGINE = "user_sessions.backends.cached_db"
    settings.USER_SESSIONS_HISTORY_DAYS = 0
    cache.clear()
    sign_in(user)
    assert not endings.heard()
    table = Session._meta.db_table
    started: list[Client] = []
    reads: list[str] = []

    def sign_in_after_the_read(execute: Any, sql: str, params: Any, many: bool, context: Any):
        result = execute(sql, params, many, context)
        if not reads and sql.upper().startswith("SELECT") and table in sql:
            reads.append(sql)  # first, so the sign-in's own queries pass through
            started.append(sign_in(user))
        return result

    with connection.execute_wrapper(sign_in_after_the_read):
        endings.end_sessions(Session.objects.filter(user=user), Reason.SIGNED_OUT_ALL_OTHERS)
    key = started[0].cookies[settings.SESSION_COOKIE_NAME].value
    row_lives = Session.objects.filter(session_key=key).exists()
    assert bool(cached_db.SessionStore(key).load()) == row_lives


@pytest.fixture
def atomic_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """ATOMIC_REQUESTS on for the default database, as a site may have it."""
    from django.db import connections

    monkeypatch.setitem(connections.settings["default"], "ATOMIC_REQUESTS", True)


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("session_delete_other", {}),
        ("session_delete", {"handle": "h" * 22}),
        ("api_session_others", {}),
        ("api_session", {"handle": "h" * 22}),
        ("report", {"token": "t"}),
    ],
)
def test_views_that_end_sessions_keep_out_of_atomic_requests(
    atomic_requests: None, name: str, kwargs: dict[str, str]
):
    # Their endings must commit (and be retried after a deadlock) on their own.
    from django.core.handlers.base import BaseHandler
    from django.urls import resolve

    view = resolve(reverse(f"user_sessions:{name}", kwargs=kwargs)).func
    assert BaseHandler().make_view_atomic(view) is view


@needs_shared_database
@between_threads
def test_every_device_signing_out_all_others_at_once_under_atomic_requests(
    atomic_requests: None, user: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
):
    # Inside a request's transaction MariaDB chose a deadlock victim about
    # one run in three here, and the request failed; outside it the batch is
    # retried.
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    settings.USER_SESSIONS_REQUIRE_PASSWORD = None
    monkeypatch.setattr(endings, "BATCH_SIZE", 7)
    devices = []
    for _ in range(6):
        device = Client()
        device.force_login(user)
        devices.append(device)
    for _ in range(18):
        store = db.SessionStore()
        store["_auth_user_id"] = str(user.pk)
        store.create()
    start = threading.Barrier(len(devices))

    def sign_out_others(device: Client) -> int:
        try:
            start.wait()
            return device.post(reverse("user_sessions:session_delete_other")).status_code
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        statuses = list(pool.map(sign_out_others, devices))
    assert statuses == [302] * len(devices)
    # Whoever went first ended the rest; a device whose request was already
    # under way may end that one too, so at most one device is left.
    left = Session.objects.count()
    assert left <= 1
    assert EndedSession.objects.filter(user=user).count() == 24 - left


def test_a_site_may_still_wrap_our_views_in_non_atomic_requests(atomic_requests: None):
    from django.core.handlers.base import BaseHandler
    from django.db import transaction

    from user_sessions.views import SessionDeleteOtherView

    view = transaction.non_atomic_requests(SessionDeleteOtherView.as_view())
    assert BaseHandler().make_view_atomic(view) is view
