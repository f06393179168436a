from __future__ import annotations

import contextlib
import datetime
import logging
from collections.abc import Iterator
from importlib import import_module
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.locmem import LocMemCache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.conftest import CHROME_WINDOWS
from user_sessions.backends import cached_db, db
from user_sessions.backends.db import MAX_CREATE_ATTEMPTS
from user_sessions.models import Session

pytestmark = pytest.mark.django_db


def store_class(engine: str) -> type[db.SessionStore]:
    return cached_db.SessionStore if engine == "cached_db" else db.SessionStore


def test_constructor_accepts_djangos_calls_and_keywords(engine: str):
    cls = store_class(engine)
    assert cls().session_key is None
    assert cls("abc").session_key is None  # too short to be a key: Django's rule
    store = cls(session_key=None, user_agent="UA", ip="203.0.113.1")
    assert (store.user_agent, store.ip, store.has_client) == ("UA", "203.0.113.1", True)


def test_sync_api_records_owner_ip_and_user_agent(engine: str, user: Any):
    store = store_class(engine)(user_agent=CHROME_WINDOWS, ip="203.0.113.1")
    store[SESSION_KEY] = str(user.pk)
    store.save()
    row = Session.objects.get()
    assert (row.user, row.ip, row.user_agent) == (user, "203.0.113.1", CHROME_WINDOWS)
    assert row.get_decoded() == {SESSION_KEY: str(user.pk)}


def test_async_api_records_owner_ip_and_user_agent(engine: str, user: Any):
    cls = store_class(engine)

    async def scenario() -> dict[str, Any]:
        store = cls(user_agent=CHROME_WINDOWS, ip="2001:db8::1")
        await store.aset(SESSION_KEY, str(user.pk))
        await store.asave()
        again = cls(store.session_key, user_agent=CHROME_WINDOWS, ip="2001:db8::1")
        return {
            "user": await again.aget(SESSION_KEY),
            "exists": await again.aexists(store.session_key),
        }

    assert async_to_sync(scenario)() == {"user": str(user.pk), "exists": True}
    row = Session.objects.get()
    assert (row.user_id, row.ip, row.user_agent) == (user.pk, "2001:db8::1", CHROME_WINDOWS)


def test_async_cycle_key_and_delete(engine: str, user: Any):
    cls = store_class(engine)

    async def scenario() -> None:
        store = cls(user_agent="UA", ip="203.0.113.2")
        await store.aset("a", 1)
        await store.asave()
        old = store.session_key
        await store.acycle_key()
        assert store.session_key != old
        assert not await store.aexists(old)
        await store.adelete()

    async_to_sync(scenario)()
    assert not Session.objects.exists()


def test_store_without_client_keeps_the_rows_client_details(engine: str):
    store = store_class(engine)(user_agent="UA", ip="203.0.113.2")
    store["a"] = 1
    store.save()
    # A script or the shell loads and changes the session: the device stays.
    script = store_class(engine)(store.session_key)
    script["a"] = 2
    script.save()
    row = Session.objects.get()
    assert (row.ip, row.user_agent, row.get_decoded()) == ("203.0.113.2", "UA", {"a": 2})


def test_saving_a_deleted_session_raises_update_error(engine: str):
    cls = store_class(engine)
    store = cls(user_agent="UA", ip="203.0.113.2")
    store["a"] = 1
    store.save()
    loaded = cls(store.session_key, user_agent="UA", ip="203.0.113.2")
    assert loaded["a"] == 1
    Session.objects.filter(session_key=store.session_key).delete()
    loaded["a"] = 2
    with pytest.raises(UpdateError):
        loaded.save()
    assert not Session.objects.exists()
    assert not loaded.touch()
    assert not Session.objects.exists()


def test_owner_that_is_not_a_valid_pk_is_stored_as_none(engine: str):
    store = store_class(engine)(user_agent="UA", ip=None)
    store[SESSION_KEY] = "not-a-number"
    store.save()
    assert Session.objects.get().user_id is None


def test_corrupt_session_data_is_an_empty_session_and_logged(engine: str, caplog):
    store = store_class(engine)(user_agent="UA", ip=None)
    store["a"] = 1
    store.save()
    Session.objects.update(session_data="this is not signed data")
    from django.core.cache import cache

    cache.clear()
    with caplog.at_level(logging.WARNING):
        loaded = store_class(engine)(store.session_key)
        assert loaded.get("a") is None
    assert "corrupted" in caplog.text.lower()


def test_touch_is_one_update_and_nothing_else(engine: str):
    cls = store_class(engine)
    store = cls(user_agent="UA", ip="203.0.113.2")
    store["a"] = 1
    store.save()
    loaded = cls(store.session_key, user_agent="UA2", ip="203.0.113.3")
    loaded.load() if engine == "db" else loaded["a"]
    with CaptureQueriesContext(connection) as queries:
        assert loaded.touch()
    assert [q["sql"].split()[0].upper() for q in queries.captured_queries] == ["UPDATE"]
    row = Session.objects.get()
    assert (row.ip, row.user_agent) == ("203.0.113.3", "UA2")


def test_clear_expired_deletes_in_batches(engine: str, monkeypatch: pytest.MonkeyPatch):
    import datetime

    from django.utils import timezone

    monkeypatch.setattr(db, "CLEAR_EXPIRED_BATCH_SIZE", 3)
    past = timezone.now() - datetime.timedelta(days=1)
    Session.objects.bulk_create(
        [
            Session(session_key=f"expired{i:04d}", session_data="", expire_date=past)
            for i in range(8)
        ]
        + [
            Session(
                session_key="alive000",
                session_data="",
                expire_date=timezone.now() + datetime.timedelta(days=1),
            )
        ]
    )
    with CaptureQueriesContext(connection) as queries:
        assert store_class(engine).clear_expired() == 8
    deletes = [q for q in queries.captured_queries if q["sql"].upper().startswith("DELETE")]
    assert len(deletes) == 3
    assert list(Session.objects.values_list("session_key", flat=True)) == ["alive000"]


def test_clear_expired_spares_a_session_saved_since_its_batch_was_read():
    import datetime

    from django.utils import timezone

    past = timezone.now() - datetime.timedelta(days=1)
    Session.objects.bulk_create(
        [
            Session(session_key=f"expired{i:04d}", session_data="", expire_date=past)
            for i in range(2)
        ]
    )
    later = timezone.now() + datetime.timedelta(days=1)

    def saved_meanwhile(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        result = execute(sql, params, many, context)
        if sql.lstrip().upper().startswith("SELECT"):
            # Another request extends expired0000 right after the batch was read.
            Session.objects.filter(session_key="expired0000").update(expire_date=later)
        return result

    with connection.execute_wrapper(saved_meanwhile):
        assert db.SessionStore.clear_expired() == 1
    assert list(Session.objects.values_list("session_key", flat=True)) == ["expired0000"]


# -- cached_db specifics ------------------------------------------------------


@pytest.fixture(autouse=True)
def _cached_engine_for_cache_tests(request: pytest.FixtureRequest, settings: Any) -> None:
    if "engine" not in request.fixturenames:
        settings.SESSION_ENGINE = "user_sessions.backends.cached_db"


def test_cache_hit_needs_no_query():
    store = cached_db.SessionStore(user_agent="UA", ip=None)
    store["a"] = 1
    store.save()
    with CaptureQueriesContext(connection) as queries:
        assert cached_db.SessionStore(store.session_key)["a"] == 1
    assert queries.captured_queries == []


def test_cache_entry_round_trips_the_rows_state(settings: Any, user: Any):
    from django.core.cache import cache

    store = cached_db.SessionStore(user_agent="UA", ip="203.0.113.9")
    store[SESSION_KEY] = str(user.pk)
    store.save()
    row = Session.objects.get()
    entry = cache.get(cached_db._cache_key(store.session_key))
    assert entry[0] == cached_db.ENTRY_VERSION and entry[1] == {SESSION_KEY: str(user.pk)}
    hit = cached_db.SessionStore(store.session_key)
    assert hit.load() == {SESSION_KEY: str(user.pk)}
    assert hit._row is not None
    # Timestamps may lose sub-microsecond digits, nothing more.
    assert abs((hit._row.last_activity - row.last_activity).total_seconds()) < 1e-5
    assert abs(hit._expire_ts - row.expire_date.timestamp()) < 1e-5
    # The entry lives as long as the row (give or take the second it took).
    assert 3600 * 24 * 13 < hit._timeout() <= settings.SESSION_COOKIE_AGE
    assert (hit._row.ip, hit._row.user_agent) == ("203.0.113.9", "UA")


def test_cache_entry_without_time_zones(settings: Any, user: Any):
    settings.USE_TZ = False
    store = cached_db.SessionStore(user_agent="UA", ip=None)
    store[SESSION_KEY] = str(user.pk)
    store.save()
    hit = cached_db.SessionStore(store.session_key, user_agent="UA", ip=None)
    assert hit.get(SESSION_KEY) == str(user.pk)
    assert hit._row is not None and timezone.is_naive(hit._row.last_activity)
    assert not hit.activity_due()  # naive times compare with naive now()


@pytest.mark.parametrize("stale", [{"data": {"a": 1}}, "garbage", (2, {}, None, 0.0, None, None)])
def test_an_entry_in_another_format_is_replaced_after_one_database_read(user: Any, stale: Any):
    from django.core.cache import cache

    store = cached_db.SessionStore(user_agent="UA", ip=None)
    store[SESSION_KEY] = str(user.pk)
    store.save()
    cache.set(cached_db._cache_key(store.session_key), stale)
    with CaptureQueriesContext(connection) as queries:
        assert cached_db.SessionStore(store.session_key).get(SESSION_KEY) == str(user.pk)
    assert len(queries.captured_queries) == 1
    with CaptureQueriesContext(connection) as queries:
        assert cached_db.SessionStore(store.session_key).get(SESSION_KEY) == str(user.pk)
    assert queries.captured_queries == []


def test_revoking_through_the_orm_ends_the_cached_session_at_once(user: Any):
    store = cached_db.SessionStore(user_agent="UA", ip=None)
    store[SESSION_KEY] = str(user.pk)
    store.save()
    assert cached_db.SessionStore(store.session_key).get(SESSION_KEY) == str(user.pk)
    user.session_set.all().delete()
    assert cached_db.SessionStore(store.session_key).get(SESSION_KEY) is None


def test_a_reader_racing_a_revoke_cannot_put_the_session_back(
    monkeypatch: pytest.MonkeyPatch, user: Any, django_capture_on_commit_callbacks: Any
):
    from django.core.cache import cache

    store = cached_db.SessionStore(user_agent="UA", ip=None)
    store[SESSION_KEY] = str(user.pk)
    store.save()
    cache.clear()  # force the next reader to the database
    real_read = db.SessionStore._get_session_from_db

    def read_then_revoke(self: db.SessionStore) -> Any:
        row = real_read(self)
        Session.objects.filter(session_key=self.session_key).revoke()
        return row

    monkeypatch.setattr(db.SessionStore, "_get_session_from_db", read_then_revoke)
    # This reader saw the row before it went; it may finish its request...
    # (the revoke's transaction commits, and buries the cached copy, after it)
    with django_capture_on_commit_callbacks(execute=True):
        assert cached_db.SessionStore(store.session_key).get(SESSION_KEY) == str(user.pk)
    monkeypatch.undo()
    # ...but the cache must not serve the revoked session to anyone after it.
    assert cached_db.SessionStore(store.session_key).get(SESSION_KEY) is None


class BrokenCache(BaseCache):
    def __init__(self, host: Any, params: dict[str, Any]) -> None:
        super().__init__(params)

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("cache down")

    add = get = set = delete = set_many = get_many = delete_many = clear = touch = _fail


def test_cache_down_falls_back_to_the_database(settings, user: Any, caplog):
    store = cached_db.SessionStore(user_agent="UA", ip=None)
    store[SESSION_KEY] = str(user.pk)
    store.save()
    # Changing CACHES makes Django drop its cache connections.
    settings.CACHES = {"default": {"BACKEND": "tests.test_backends.BrokenCache"}}
    try:
        loaded = cached_db.SessionStore(store.session_key, user_agent="UA", ip=None)
        assert loaded.get(SESSION_KEY) == str(user.pk)
        loaded["x"] = 1
        loaded.save()
        assert Session.objects.get().get_decoded()["x"] == 1
        Session.objects.all().revoke()
        assert cached_db.SessionStore(store.session_key).get(SESSION_KEY) is None
    finally:
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert "cache unavailable" in caplog.text.lower()
    from django.core.cache import caches

    assert isinstance(caches["default"], LocMemCache)


def test_store_delete_buries_the_key_without_looking_it_up(
    django_capture_on_commit_callbacks: Any,
):
    from django.core.cache import cache

    store = cached_db.SessionStore(user_agent="UA", ip=None)
    store["a"] = 1
    store.save()
    with (
        django_capture_on_commit_callbacks(execute=True),
        CaptureQueriesContext(connection) as queries,
    ):
        store.delete()
    assert [q["sql"].split()[0].upper() for q in queries.captured_queries] == ["DELETE"]
    assert cache.get(cached_db._cache_key(store.session_key)) == cached_db.TOMBSTONE
    assert not Session.objects.exists()


def test_queryset_delete_skips_the_key_lookup_without_a_cache(settings):
    settings.SESSION_ENGINE = "user_sessions.backends.db"
    # Nobody hears of the ending (no history, no receiver): nothing to read first.
    settings.USER_SESSIONS_HISTORY_DAYS = 0
    store = db.SessionStore(user_agent="UA", ip=None)
    store["a"] = 1
    store.save()
    with CaptureQueriesContext(connection) as queries:
        Session.objects.filter(pk=store.session_key).delete()
    assert [q["sql"].split()[0].upper() for q in queries.captured_queries] == ["DELETE"]


@pytest.mark.django_db(transaction=True)
def test_data_naming_a_deleted_owner_ends_the_session_instead_of_erroring(
    engine: str, user_factory: Any
):
    ghost = user_factory()
    ghost_pk = ghost.pk
    ghost.delete()
    store = store_class(engine)(user_agent="UA", ip=None)
    store["a"] = 1
    store.save()
    store[SESSION_KEY] = str(ghost_pk)
    with pytest.raises(UpdateError):
        store.save()


# Creating a session: bounded, and a deleted owner makes it anonymous -----------------


@contextlib.contextmanager
def insert_guard(limit: int = 50) -> Iterator[list[str]]:
    """Count INSERTs into the sessions table; fail the test (not hang) past ``limit``."""
    table = Session._meta.db_table
    inserts: list[str] = []

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.lstrip().upper().startswith("INSERT") and table in sql:
            inserts.append(sql)
            if len(inserts) > limit:
                raise RuntimeError(f"more than {limit} INSERTs: create() does not stop")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield inserts


def owned_store(user: Any) -> Any:
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store["cart"] = ["tea"]
    return store


@pytest.mark.django_db
def test_create_for_a_deleted_owner_ends_as_anonymous(engine: str, user: Any) -> None:
    store = owned_store(user)
    user.delete()

    with insert_guard() as inserts:
        store.create()

    assert len(inserts) == 1
    row = Session.objects.get(session_key=store.session_key)
    assert row.user_id is None
    assert SESSION_KEY not in store and HASH_SESSION_KEY not in store
    # What was not about the owner is kept.
    assert store["cart"] == ["tea"]


@pytest.mark.django_db
def test_key_collisions_are_retried_a_bounded_number_of_times(engine: str) -> None:
    taken = import_module(settings.SESSION_ENGINE).SessionStore()
    taken["x"] = 1
    taken.create()
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    # Every key it draws is the one already taken.
    store._get_new_session_key = lambda: taken.session_key

    with insert_guard() as inserts, pytest.raises(CreateError):
        store.create()

    assert len(inserts) == MAX_CREATE_ATTEMPTS
    assert Session.objects.count() == 1


@pytest.mark.django_db
def test_deleting_a_user_ends_their_cached_sessions_like_db(
    engine: str,
    auth_client: Any,
    user: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    assert auth_client.get("/read/").content.decode() == f"user={user.pk}"
    key = auth_client.cookies["sessionid"].value

    with django_capture_on_commit_callbacks(execute=True):
        user.delete()

    if engine == "cached_db":
        from user_sessions.backends.cached_db import TOMBSTONE, _cache_key, session_cache

        assert session_cache().get(_cache_key(key)) == TOMBSTONE
    with insert_guard() as inserts:
        response = auth_client.get("/cycle/")
    # As the db store answers: an anonymous visitor, no error, one new row.
    assert response.status_code == 200
    assert response.content.decode() == "user="
    assert len(inserts) == 1
    assert not Session.objects.filter(session_key=key).exists()
    assert auth_client.get("/write/").status_code == 200


@pytest.fixture
def cached_engine(settings: Any) -> Iterator[None]:
    from django.core.cache import cache

    settings.SESSION_ENGINE = "user_sessions.backends.cached_db"
    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db
def test_a_stale_cached_copy_of_a_deleted_users_session_cycles_as_anonymous(
    cached_engine: None, user: Any, auth_client: Any
) -> None:
    # The cache missed the burial (down at the time, say): the copy still
    # names the deleted user when a view cycles the key.
    from user_sessions.backends.cached_db import _cache_key, session_cache

    assert auth_client.get("/write/").status_code == 200
    key = auth_client.cookies["sessionid"].value
    entry = session_cache().get(_cache_key(key))
    assert entry is not None
    user_pk = user.pk
    user.delete()
    session_cache().set(_cache_key(key), entry, 300)

    with insert_guard() as inserts:
        response = auth_client.get("/cycle/")

    assert response.status_code == 200
    # The re-key finds the row gone with its owner: the session stays ended,
    # nothing is inserted again under a new key.
    assert inserts == []
    assert not Session.objects.filter(user_id=user_pk).exists()


# -- as Django's stores: edge cases its own suite checks (issue 11) -------------------


@pytest.mark.parametrize("key", [None, ""])
def test_exists_of_no_key_is_false(engine: str, key: str | None):
    store = store_class(engine)()
    store.save()  # a row and, for cached_db, a cache entry exist
    assert store.exists(key) is False
    assert async_to_sync(store.aexists)(key) is False


def test_an_unknown_session_cache_alias_fails_as_djangos_and_check_reports_it(settings: Any):
    from django.core.cache.backends.base import InvalidCacheBackendError
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    from user_sessions.checks import check_session_cache_alias

    settings.SESSION_ENGINE = "user_sessions.backends.cached_db"
    assert check_session_cache_alias() == []
    settings.SESSION_CACHE_ALIAS = "sessions"
    with pytest.raises(InvalidCacheBackendError):
        cached_db.SessionStore()
    [error] = check_session_cache_alias()
    assert error.id == "user_sessions.E010"
    assert "'sessions'" in error.msg
    assert "'default'" in (error.hint or "")
    with pytest.raises(SystemCheckError, match=r"user_sessions\.E010"):
        call_command("check")
    # The database engine uses no cache: nothing to report.
    settings.SESSION_ENGINE = "user_sessions.backends.db"
    assert check_session_cache_alias() == []


class FailingWrites(LocMemCache):
    def set(self, *args: Any, **kwargs: Any) -> None:
        raise ConnectionError("cache write refused")


def test_a_failed_cache_write_is_logged_as_django_logs_it(settings: Any, caplog: Any):
    settings.CACHES = {"default": {"BACKEND": "tests.test_backends.FailingWrites"}}
    try:
        store = cached_db.SessionStore(user_agent="UA", ip=None)
        store["a"] = 1
        with caplog.at_level(logging.WARNING):
            store.save()
        assert Session.objects.get().get_decoded() == {"a": 1}  # the database has it
        djangos = [r for r in caplog.records if r.name == "django.contrib.sessions"]
        assert [(r.levelno, r.getMessage()) for r in djangos] == [
            (logging.ERROR, f"Error saving to cache ({store._cache})")
        ]
        assert isinstance(djangos[0].exc_info[1], ConnectionError)
        # Ours as well, saying what happens next.
        assert any(
            r.name == "user_sessions.backends" and "using the database" in r.getMessage()
            for r in caplog.records
        )
    finally:
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


def test_store_user_id_as_in_2x(engine: str, user: Any):
    cls = store_class(engine)
    store = cls(user_agent="UA", ip=None)
    assert store.user_id is None
    store[SESSION_KEY] = str(user.pk)
    assert store.user_id == user.pk  # the primary key, not the string in the data
    store.save()
    loaded = cls(store.session_key)
    loaded.load()
    assert loaded.user_id == user.pk
    loaded.clear()
    assert loaded.user_id is None


def test_manager_encode_and_save_as_djangos_keep_handle_owner_and_sign_in_time(
    engine: str, user: Any
):
    from django.core.cache import cache

    store = store_class(engine)(user_agent="UA", ip=None)
    store[SESSION_KEY] = str(user.pk)
    store["y"] = 1
    store.save()
    row = Session.objects.get()
    assert Session.objects.encode({"y": 1}) == store.encode({"y": 1})

    expires = timezone.now() + datetime.timedelta(days=3)
    saved = Session.objects.save(row.session_key, {SESSION_KEY: str(user.pk), "y": 2}, expires)
    assert (saved.handle, saved.created_at, saved.user) == (row.handle, row.created_at, user)
    assert abs(saved.expire_date - expires) < datetime.timedelta(seconds=1)
    # A cached copy does not hide what was saved.
    assert store_class(engine)(row.session_key)["y"] == 2

    # A new key makes a new row; empty data deletes the session, as Django's.
    fresh = Session.objects.save("k" * 32, {"z": 1}, expires)
    assert (fresh.user, fresh.get_decoded()) == (None, {"z": 1})
    assert fresh.handle and fresh.handle != row.handle
    Session.objects.save(row.session_key, {}, expires)
    assert not Session.objects.filter(session_key=row.session_key).exists()
    assert store_class(engine)(row.session_key).get("y") is None
    cache.clear()


# -- review: revocation is final, a cycled key included ------------------------------


def test_cycling_the_key_of_a_session_revoked_meanwhile_does_not_bring_it_back(
    engine: str, user: Any
) -> None:
    # A request loaded a signed-in session; while it ran, the owner signed
    # that device out. The view then cycles the key (update_session_auth_hash,
    # Django's fallback-secret path): the session must stay ended, not come
    # back under a new key and handle.
    cls = store_class(engine)
    owned = owned_store(user)
    owned.save()
    request_store = cls(owned.session_key, user_agent="UA", ip="203.0.113.9")
    assert request_store[SESSION_KEY] == str(user.pk)
    Session.objects.filter(session_key=owned.session_key).revoke()

    request_store.cycle_key()
    request_store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    request_store.save()

    assert not Session.objects.filter(user=user).exists()
    assert SESSION_KEY not in request_store
    assert cls(request_store.session_key).get(SESSION_KEY) is None


def test_an_anonymous_session_given_up_in_a_rolled_back_sign_in_lives_on(engine: str, user: Any):
    # The sign-in's transaction failed: the browser keeps its anonymous
    # cookie, so what the visit had stored (a basket, say) must still be there.
    from django.db import transaction

    store = store_class(engine)()
    store["basket"] = ["book"]
    store.save()
    key = store.session_key
    with pytest.raises(RuntimeError), transaction.atomic():
        visit = store_class(engine)(key)
        visit.load()
        visit.cycle_key()  # as login() does
        visit[SESSION_KEY] = str(user.pk)
        visit.save()
        raise RuntimeError("the sign-in failed after the new key was made")
    assert store_class(engine)(key).load() == {"basket": ["book"]}
    # Committed, the old key is gone from the cache as from the table.
    with transaction.atomic():
        visit = store_class(engine)(key)
        visit.load()
        visit.cycle_key()
    assert store_class(engine)(key).load() == {}
    assert store_class(engine)(visit.session_key).load() == {"basket": ["book"]}
