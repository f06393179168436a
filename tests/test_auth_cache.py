"""The owner's row from the cache (``USER_SESSIONS_CACHE_USER``), case by case against Django.

Each case runs with the setting on and off: the outcome (who the request is,
whether the session survives) must be the same; only the queries differ.
"""

from __future__ import annotations

import datetime
from importlib import import_module
from typing import Any
from unittest import mock

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY
from django.core.cache import cache
from django.db import connection, transaction
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from user_sessions.backends import cached_db
from user_sessions.backends.statements import statements
from user_sessions.models import Session

pytestmark = pytest.mark.django_db(transaction=True)

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


@pytest.fixture(autouse=True)
def cached_engine(settings: Any) -> Any:
    settings.SESSION_ENGINE = "user_sessions.backends.cached_db"
    statements.clear()
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(params=[True, False], ids=["cached_user", "django"])
def cache_user(request: pytest.FixtureRequest, settings: Any) -> bool:
    settings.USER_SESSIONS_CACHE_USER = request.param
    return bool(request.param)


@pytest.fixture
def cached_user(settings: Any) -> None:
    settings.USER_SESSIONS_CACHE_USER = True


def login(client: Client, user: Any, backend: str = MODEL_BACKEND) -> str:
    client.force_login(user, backend=backend)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def edit_session(key: str, **values: Any) -> None:
    store = import_module(settings.SESSION_ENGINE).SessionStore(key)
    for name, value in values.items():
        store[name] = value
    store.save()


def whoami(client: Client, path: str = "/read/") -> tuple[str, int]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200
    return response.content.decode(), len(queries)


def warm(client: Client, user: Any, path: str = "/read/") -> None:
    """Serve requests until the owner is cached: the first reads it, the next runs nothing."""
    assert whoami(client, path) == (f"user={user.pk}", 1)
    assert whoami(client, path) == (f"user={user.pk}", 0)


def later(seconds: float) -> Any:
    """The clock ``seconds`` ahead (an activity interval passing)."""
    now = timezone.now() + datetime.timedelta(seconds=seconds)
    return mock.patch("django.utils.timezone.now", lambda: now)


# -- queries -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/read/", "/async/read/"])
def test_warm_signed_in_read_runs_no_query(cache_user: bool, user: Any, path: str) -> None:
    client = Client()
    login(client, user)
    expected = [1, 0, 0] if cache_user else [1, 1, 1]
    assert [whoami(client, path) for _ in expected] == [(f"user={user.pk}", n) for n in expected]


def test_asgi_warm_request_runs_no_query(cached_user: None, user: Any) -> None:
    client = AsyncClient()
    client.force_login(user)
    counts = []
    for _ in range(3):
        with CaptureQueriesContext(connection) as queries:
            response = async_to_sync(client.get)("/async/read/")
        assert response.content == f"user={user.pk}".encode()
        counts.append(len(queries))
    assert counts == [1, 0, 0]


def test_cache_miss_caches_the_joined_owner(cached_user: None, user: Any) -> None:
    client = Client()
    login(client, user)
    cache.clear()
    # The joined read brings the owner; both go to the cache.
    assert whoami(client) == (f"user={user.pk}", 1)
    assert whoami(client) == (f"user={user.pk}", 0)


def test_off_without_the_join(cached_user: None, user: Any, settings: Any) -> None:
    settings.USER_SESSIONS_JOIN_USER = False
    client = Client()
    login(client, user)
    assert [whoami(client)[1] for _ in range(3)] == [1, 1, 1]


def test_no_password_hash_in_the_cache(cached_user: None, user: Any) -> None:
    client = Client()
    key = login(client, user)
    warm(client, user)
    entry = cache.get(cached_db._owner_key(key))
    assert user.password not in repr(entry)
    assert user.get_session_auth_hash() in entry
    # The request's user loads it when asked, with one query.
    store = cached_db.SessionStore(key)
    store.load()
    with CaptureQueriesContext(connection) as queries:
        assert store.owner_row is not None and store.owner_row.password == user.password
    assert len(queries) == 1


# -- Django's checks, each with the owner cached -----------------------------------


def test_backend_not_listed_is_anonymous(cache_user: bool, user: Any) -> None:
    client = Client()
    key = login(client, user)
    warm(client, user) if cache_user else None
    edit_session(key, **{BACKEND_SESSION_KEY: "tests.nowhere.Backend"})
    assert whoami(client)[0] == "user="
    assert Session.objects.filter(pk=key).exists()


def test_backend_removed_from_settings(cache_user: bool, user: Any, settings: Any) -> None:
    client = Client()
    login(client, user)
    warm(client, user) if cache_user else None
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.AllowAllUsersModelBackend"]
    assert whoami(client)[0] == "user="


def test_user_deactivated_by_save_is_out_at_the_next_request(cache_user: bool, user: Any) -> None:
    client = Client()
    key = login(client, user)
    warm(client, user) if cache_user else None
    user.is_active = False
    user.save()
    assert whoami(client)[0] == "user="
    assert Session.objects.filter(pk=key).exists()


def test_hash_mismatch_flushes(cache_user: bool, user: Any) -> None:
    client = Client()
    key = login(client, user)
    warm(client, user) if cache_user else None
    edit_session(key, **{HASH_SESSION_KEY: "0" * 64})
    response = client.get("/read/")
    assert response.content == b"user="
    assert not Session.objects.filter(pk=key).exists()
    assert response.cookies[settings.SESSION_COOKIE_NAME].value == ""


def test_password_changed_on_another_device(cache_user: bool, user: Any) -> None:
    client = Client()
    key = login(client, user)
    warm(client, user) if cache_user else None
    user.set_password("another-password")
    user.save()
    assert whoami(client)[0] == "user="
    assert not Session.objects.filter(pk=key).exists()


def test_fallback_secret_cycles_the_key(cache_user: bool, user: Any, settings: Any) -> None:
    client = Client()
    key = login(client, user)
    warm(client, user) if cache_user else None
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-" + "x" * 40
    response = client.get("/read/")
    assert response.content == f"user={user.pk}".encode()
    new_key = response.cookies[settings.SESSION_COOKIE_NAME].value
    assert new_key and new_key != key
    assert not Session.objects.filter(pk=key).exists()
    if cache_user:
        warm(client, user)


def test_deleted_user(cache_user: bool, user: Any) -> None:
    client = Client()
    key = login(client, user)
    warm(client, user) if cache_user else None
    user.delete()
    assert whoami(client)[0] == "user="
    assert not Session.objects.filter(pk=key).exists()


def test_asgi_deactivated_user(cache_user: bool, user: Any) -> None:
    client = AsyncClient()
    client.force_login(user)
    for _ in range(2):
        assert async_to_sync(client.get)("/async/read/").content == f"user={user.pk}".encode()
    user.is_active = False
    user.save()
    assert async_to_sync(client.get)("/async/read/").content == b"user="


def test_asgi_hash_mismatch_flushes(cache_user: bool, user: Any) -> None:
    client = AsyncClient()
    client.force_login(user)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    for _ in range(2):
        async_to_sync(client.get)("/async/read/")
    edit_session(key, **{HASH_SESSION_KEY: "0" * 64})
    assert async_to_sync(client.get)("/async/read/").content == b"user="
    assert not Session.objects.filter(pk=key).exists()


# -- changes that bypass the signals: seen within the activity interval -----------


def test_update_behind_the_orm_is_seen_within_the_interval(cached_user: None, user: Any) -> None:
    client = Client()
    key = login(client, user)
    warm(client, user)
    type(user)._default_manager.filter(pk=user.pk).update(is_active=False)
    # The stated bound: no signal, so the cached row serves until the check.
    assert whoami(client) == (f"user={user.pk}", 0)
    with later(61):
        assert whoami(client)[0] == "user="
        assert whoami(client)[0] == "user="
    assert Session.objects.filter(pk=key).exists()


def test_password_update_behind_the_orm_flushes_within_the_interval(
    cached_user: None, user: Any
) -> None:
    client = Client()
    key = login(client, user)
    warm(client, user)
    user.set_password("another-password")
    type(user)._default_manager.filter(pk=user.pk).update(password=user.password)
    with later(61):
        assert whoami(client)[0] == "user="
    assert not Session.objects.filter(pk=key).exists()


def test_interval_check_keeps_an_unchanged_copy(cached_user: None, user: Any) -> None:
    client = Client()
    login(client, user)
    warm(client, user)
    with later(61):
        # The activity write and the owner's row, then nothing again.
        assert whoami(client) == (f"user={user.pk}", 2)
        assert whoami(client) == (f"user={user.pk}", 0)


# -- races, transactions, faults ------------------------------------------------------


def test_a_row_read_before_a_change_is_not_cached_after_it(
    cached_user: None, user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Client()
    key = login(client, user)
    assert whoami(client)[0] == f"user={user.pk}"
    cache.delete(cached_db._owner_key(key))
    # A parallel request read the row, then the user was deactivated (and
    # the change committed) before that request put its copy in the cache.
    before = type(user)._default_manager.get(pk=user.pk)
    real_fetch = cached_db.SessionStore._fetch_owner

    def fetch_then_change(self: Any, data: Any) -> Any:
        user.is_active = False
        user.save()
        return before

    monkeypatch.setattr(cached_db.SessionStore, "_fetch_owner", fetch_then_change)
    # That request may finish as the user it read...
    assert whoami(client)[0] == f"user={user.pk}"
    monkeypatch.setattr(cached_db.SessionStore, "_fetch_owner", real_fetch)
    # ...but nobody after it is served the old row.
    assert whoami(client)[0] == "user="
    assert whoami(client)[0] == "user="


def test_change_in_a_transaction_acts_on_commit(cached_user: None, user: Any) -> None:
    client = Client()
    key = login(client, user)
    warm(client, user)
    owner_key = cached_db._owner_key(key)
    with transaction.atomic():
        user.first_name = "Alice"
        user.save()
        # Not committed: other requests still see the old row, rightly.
        assert cache.get(owner_key) != cached_db.STALE
    assert cache.get(owner_key) == cached_db.STALE
    assert whoami(client) == (f"user={user.pk}", 1)


def test_rolled_back_change_keeps_the_copy(cached_user: None, user: Any) -> None:
    client = Client()
    key = login(client, user)
    warm(client, user)
    with pytest.raises(RuntimeError), transaction.atomic():
        user.is_active = False
        user.save()
        raise RuntimeError
    assert cache.get(cached_db._owner_key(key)) != cached_db.STALE
    assert whoami(client) == (f"user={user.pk}", 0)


@pytest.mark.parametrize(
    "entry",
    [
        # Written for a user model with another column (a rolling deploy).
        lambda e: (e[0], "0" * 16, *e[2:]),
        # ...by another version of this package, or under another secret.
        lambda e: (2, *e[1:]),
        lambda e: (*e[:3], "0" * 16, *e[4:]),
        # Damaged.
        lambda e: (*e[:5], e[5][:-1]),
        lambda e: "something else",
        lambda e: (1,),
    ],
    ids=["layout", "version", "secret", "short", "string", "tuple"],
)
def test_an_entry_it_cannot_read_is_replaced(cached_user: None, user: Any, entry: Any) -> None:
    client = Client()
    key = login(client, user)
    warm(client, user)
    owner_key = cached_db._owner_key(key)
    good = cache.get(owner_key)
    cache.set(owner_key, entry(good))
    assert whoami(client) == (f"user={user.pk}", 1)
    assert cache.get(owner_key) == good
    assert whoami(client) == (f"user={user.pk}", 0)


def test_cache_down(cached_user: None, user: Any, settings: Any) -> None:
    client = Client()
    login(client, user)
    warm(client, user)
    settings.CACHES = {"default": {"BACKEND": "tests.test_backends.BrokenCache"}}
    try:
        # The database answers: the joined read, every time.
        assert whoami(client) == (f"user={user.pk}", 1)
        assert whoami(client) == (f"user={user.pk}", 1)
    finally:
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


def test_cache_down_when_the_user_changes(
    cached_user: None, user: Any, settings: Any, caplog: Any
) -> None:
    client = Client()
    login(client, user)
    warm(client, user)
    real = settings.CACHES
    settings.CACHES = {"default": {"BACKEND": "tests.test_backends.BrokenCache"}}
    user.is_active = False
    user.save()  # the marker cannot be written
    settings.CACHES = real
    assert "could not mark" in caplog.text
    # The stated bound: the interval's check sees it.
    with later(61):
        assert whoami(client)[0] == "user="


def test_parallel_requests_fill_the_cache_once(cached_user: None, user: Any) -> None:
    client = Client()
    key = login(client, user)
    # Two requests both miss the owner, both read it; either copy is right.
    first, second = cached_db.SessionStore(key), cached_db.SessionStore(key)
    first.load(), second.load()
    assert first.wants_owner and second.wants_owner
    assert first.read_owner() and second.read_owner()
    assert whoami(client) == (f"user={user.pk}", 0)


def test_session_naming_another_user_than_its_row(
    cache_user: bool, user: Any, user_factory: Any
) -> None:
    # Data and owner column disagree (edited by hand): the data decides, as in Django.
    other = user_factory()
    client = Client()
    key = login(client, user)
    Session.objects.filter(pk=key).update(user=other)
    cache.clear()
    for _ in range(3):
        assert whoami(client)[0] == f"user={user.pk}"
    cached = cache.get(cached_db._owner_key(key))
    assert cached is None or other.get_session_auth_hash() not in cached


@pytest.mark.parametrize(
    ("engine_name", "join", "warned"),
    [
        ("user_sessions.backends.cached_db", True, False),
        ("user_sessions.backends.db", True, True),
        ("user_sessions.backends.cached_db", False, True),
    ],
)
def test_check_warns_when_the_setting_does_nothing(
    settings: Any, engine_name: str, join: bool, warned: bool
) -> None:
    from user_sessions.checks import check_cache_user

    settings.SESSION_ENGINE = engine_name
    settings.USER_SESSIONS_JOIN_USER = join
    settings.USER_SESSIONS_CACHE_USER = True
    assert [m.id for m in check_cache_user()] == (["user_sessions.W013"] if warned else [])
    settings.USER_SESSIONS_CACHE_USER = False
    assert check_cache_user() == []
