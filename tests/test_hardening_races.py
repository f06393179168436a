"""Races between requests of one user, run for real: threads, each with its own connection.

The views below pause a request after it has loaded its session, so a test can
change the world (revoke, sign in, save from another tab) while the request is
in flight and then let it finish. This module is its own URLconf.

SQLite's in-memory test database cannot be shared between threads, so these
tests need PostgreSQL or MariaDB (``USER_SESSIONS_TEST_DB=postgres|mysql``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import Client
from django.urls import path, reverse

from tests.conftest import FIREFOX_LINUX, SAFARI_IPHONE
from tests.urls import urlpatterns as test_urlpatterns
from user_sessions.backends.cached_db import KEY_PREFIX, TOMBSTONE
from user_sessions.models import Session

pytestmark = [
    pytest.mark.skipif(
        django_settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"),
        reason="needs PostgreSQL or MariaDB: an in-memory SQLite database cannot be shared "
        "between the threads a race needs (USER_SESSIONS_TEST_DB=postgres|mysql)",
    ),
    pytest.mark.django_db(transaction=True),
]

# Long enough for a loaded CI machine, short enough that a deadlock fails the test.
TIMEOUT = 20


# -- pausing views ----------------------------------------------------------------


@dataclass
class Pause:
    """Holds requests after they loaded their session until the test releases them."""

    arrived: threading.Barrier
    release: threading.Event = field(default_factory=threading.Event)

    def hold(self) -> None:
        self.arrived.wait(timeout=TIMEOUT)
        if not self.release.wait(timeout=TIMEOUT):
            raise RuntimeError("the test never released this request")


PAUSES: dict[str, Pause] = {}


def paused_read(request: HttpRequest, pause: str) -> HttpResponse:
    user_pk = request.user.pk  # loads the session
    PAUSES[pause].hold()
    return HttpResponse(f"user={user_pk or ''}")


def paused_write(request: HttpRequest, pause: str) -> HttpResponse:
    counter = request.session.get("counter", 0)
    PAUSES[pause].hold()
    request.session["counter"] = counter + 1
    request.session[f"tab-{pause}"] = True
    return JsonResponse({"counter": counter + 1})


urlpatterns = [
    *test_urlpatterns,
    path("race/<str:pause>/read/", paused_read),
    path("race/<str:pause>/write/", paused_write),
]


@pytest.fixture(autouse=True)
def _race_urls(settings: Any) -> Iterator[None]:
    settings.ROOT_URLCONF = __name__
    yield
    PAUSES.clear()


# -- helpers -------------------------------------------------------------------


def sign_in(client: Client, user: Any) -> Client:
    response = client.post("/login/", {"username": user.username, "password": "secret-password"})
    assert response.status_code == 302
    return client


def copy_of(client: Client) -> Client:
    """Another request of the same browser: same cookie, same headers."""
    twin = Client(raise_request_exception=False, **client.defaults)
    for name, morsel in client.cookies.items():
        twin.cookies[name] = morsel.value
    return twin


@contextmanager
def in_threads(calls: list[Callable[[], Any]]) -> Iterator[list[Any]]:
    """Run each call in its own thread (own DB connection); results once the block ends."""
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            results[index] = call()
        except BaseException as exc:  # reported by the test, not lost in the thread
            results[index] = exc
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(index, call), daemon=True)
        for index, call in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    try:
        yield results
    finally:
        for pause in PAUSES.values():
            pause.release.set()  # never leave a thread waiting, also when the test fails
        for thread in threads:
            thread.join(TIMEOUT)
        assert not any(thread.is_alive() for thread in threads), "a request never finished"


def cookie_deleted(response: Any) -> bool:
    cookie = response.cookies.get(django_settings.SESSION_COOKIE_NAME)
    return cookie is not None and cookie.value == "" and cookie["max-age"] == 0


# -- a session revoked while requests of it are in flight ----------------------


IN_FLIGHT = 8


def test_revoked_while_many_requests_are_in_flight(
    engine: str, settings: Any, user: Any, browser_factory: Callable[..., Client]
):
    """None of the in-flight requests writes the session back; each is signed out after.

    Readers are due an activity write (interval 0), writers changed the data.
    A reader answers its page (it was let in before the revoke); a writer gets
    Django's own answer to a session deleted mid-request (``SessionInterrupted``,
    400). No row and no cache entry comes back.
    """
    settings.USER_SESSIONS_ACTIVITY_INTERVAL = 0
    victim = sign_in(browser_factory(), user)
    revoker = sign_in(browser_factory(user_agent=FIREFOX_LINUX, ip="198.51.100.9"), user)
    victim.get("/write/")
    handle = Session.objects.get(session_key=victim.cookies["sessionid"].value).handle
    PAUSES["flight"] = Pause(threading.Barrier(IN_FLIGHT + 1))
    kinds = ["read", "write"] * (IN_FLIGHT // 2)
    tabs = [copy_of(victim) for _ in kinds]
    calls = [
        (lambda tab=tab, kind=kind: tab.get(f"/race/flight/{kind}/"))
        for tab, kind in zip(tabs, kinds, strict=True)
    ]
    with in_threads(calls) as responses:
        PAUSES["flight"].arrived.wait(timeout=TIMEOUT)  # all eight loaded the session
        response = revoker.post(reverse("user_sessions:session_delete", args=[handle]))
        assert response.status_code == 302
        assert not Session.objects.filter(handle=handle).exists()
        PAUSES["flight"].release.set()

    assert not Session.objects.filter(handle=handle).exists()
    assert Session.objects.filter(user=user).count() == 1  # the revoker's
    # Nor did any of them put it back into the cache (cached_db).
    assert cache.get(KEY_PREFIX + victim.cookies["sessionid"].value) in (None, TOMBSTONE)
    for kind, response in zip(kinds, responses, strict=True):
        assert not isinstance(response, BaseException), response
        if kind == "read":
            assert response.status_code == 200
            assert response.content == f"user={user.pk}".encode()
            # The db store's activity write at the end finds no row and drops
            # the cookie. cached_db wrote activity when it loaded the session
            # (checking a cache hit against the row), so it learns on the next request.
            assert cookie_deleted(response) or engine == "cached_db"
        else:
            assert response.status_code == 400
    for tab in tabs:
        assert tab.get("/read/").content == b"user="
        assert tab.get("/write/").status_code == 200  # a fresh anonymous session
    assert Session.objects.filter(user=user).count() == 1
    assert not Session.objects.filter(handle=handle).exists()


# -- two tabs saving the same session ----------------------------------------------


def test_two_tabs_saving_one_session_last_write_wins(engine: str, auth_client: Client, user: Any):
    """Concurrent saves of one session are not merged: the last save wins.

    That is what ``django.contrib.sessions`` does too: a save writes the whole
    session dictionary the request loaded and changed. Tab A and tab B both
    read ``counter`` = 1; A saves 2 with its mark, then B saves 2 with its own
    mark, overwriting A's. One increment and A's mark are lost; the session is
    still whole and signed in.
    """
    assert auth_client.get("/write/").json() == {"counter": 1}
    PAUSES["a"] = Pause(barrier := threading.Barrier(3))
    PAUSES["b"] = Pause(barrier)
    tab_a, tab_b = copy_of(auth_client), copy_of(auth_client)
    with in_threads(
        [lambda: tab_a.get("/race/a/write/"), lambda: tab_b.get("/race/b/write/")]
    ) as responses:
        barrier.wait(timeout=TIMEOUT)  # both tabs loaded counter = 1
        PAUSES["a"].release.set()
        deadline = time.monotonic() + TIMEOUT
        while responses[0] is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert responses[0] is not None, "tab A never finished"
        PAUSES["b"].release.set()
    assert [r.json() for r in responses] == [{"counter": 2}, {"counter": 2}]
    data = Session.objects.get(user=user).get_decoded()
    assert data["counter"] == 2
    assert data["tab-b"] is True
    assert "tab-a" not in data
    assert auth_client.get("/read/").content == f"user={user.pk}".encode()
    assert auth_client.get("/write/").json() == {"counter": 3}


# -- "sign out all others" racing a new sign-in --------------------------------------


@contextmanager
def paused_before_selecting_sessions_by_owner(reached: threading.Event, go: threading.Event):
    """In this thread, hold the first statement that picks a user's sessions.

    That is the moment "sign out all others" decides what to revoke, whatever
    shape its queries take (a DELETE, or a SELECT of the keys to forget first).
    """
    table = Session._meta.db_table
    held = False

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal held
        where = sql.partition(" WHERE ")[2]
        if not held and table in sql and "user_id" in where:
            held = True
            reached.set()
            if not go.wait(TIMEOUT):
                raise RuntimeError("never released")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield


def test_sign_out_others_never_ends_a_sign_in_that_raced_it(
    engine: str, user: Any, browser_factory: Callable[..., Client]
):
    laptop = sign_in(browser_factory(), user)
    old_phone = sign_in(browser_factory(user_agent=SAFARI_IPHONE, ip="198.51.100.3"), user)
    reached, go = threading.Event(), threading.Event()

    def sign_out_others() -> Any:
        with paused_before_selecting_sessions_by_owner(reached, go):
            return laptop.post(reverse("user_sessions:session_delete_other"))

    with in_threads([sign_out_others]) as responses:
        assert reached.wait(TIMEOUT), "the view never looked for the user's sessions"
        # Signed in after "sign out all others" was clicked, before it revoked.
        new_tablet = sign_in(browser_factory(user_agent=FIREFOX_LINUX, ip="198.51.100.4"), user)
        go.set()
    assert responses[0].status_code == 302, responses[0]
    assert laptop.get("/read/").content == f"user={user.pk}".encode()
    assert new_tablet.get("/read/").content == f"user={user.pk}".encode()
    assert old_phone.get("/read/").content == b"user="
    assert Session.objects.filter(user=user).count() == 2


def test_sign_out_others_after_the_sign_in_does_end_it(
    engine: str, user: Any, browser_factory: Callable[..., Client]
):
    """Without the race the same sign-in is signed out: the test above means something."""
    laptop = sign_in(browser_factory(), user)
    tablet = sign_in(browser_factory(user_agent=FIREFOX_LINUX, ip="198.51.100.4"), user)
    assert laptop.post(reverse("user_sessions:session_delete_other")).status_code == 302
    assert tablet.get("/read/").content == b"user="
    assert Session.objects.filter(user=user).count() == 1
