"""The compiled read and update must do exactly what the ORM queries do."""

from __future__ import annotations

import datetime
import gc
import threading
import weakref
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.utils import timezone

from user_sessions.backends import statements as compiled
from user_sessions.backends.db import SessionStore
from user_sessions.models import Session

pytestmark = pytest.mark.django_db

FIELDS = [field.attname for field in Session._meta.concrete_fields]


@pytest.fixture(autouse=True)
def fresh_reader() -> None:
    compiled.statements.clear()


def make_row(user: Any, *, expires_in: int = 3600, **extra: Any) -> Session:
    store = SessionStore(user_agent="Firefox", ip="2001:db8::5")
    store["_auth_user_id"] = str(user.pk)
    store.set_expiry(expires_in)
    store.save()
    Session.objects.filter(pk=store.session_key).update(**extra)
    return Session.objects.get(pk=store.session_key)


def as_values(obj: Session | None) -> list[Any] | None:
    return None if obj is None else [getattr(obj, name) for name in FIELDS]


def test_the_read_is_compiled_on_this_backend():
    # A None here would mean every request falls back to the ORM query.
    statement = compiled.compile_read(Session, connection)
    assert statement is not None
    assert statement.field_names == tuple(FIELDS)
    assert sorted(slot.name for slot in statement.slots) == ["expire_date", "session_key"]


def test_live_row_matches_the_orm_field_for_field(user: Any, django_assert_num_queries: Any):
    made = make_row(user, last_activity=timezone.now() - datetime.timedelta(hours=5))
    now = timezone.now()
    with django_assert_num_queries(1):
        got = compiled.statements.read(Session, "default", made.pk, now)
    expected = Session.objects.get(session_key=made.pk, expire_date__gt=now)
    assert as_values(got) == as_values(expected)
    assert got is not None and got._state.db == "default" and not got._state.adding
    assert timezone.is_aware(got.last_activity) and timezone.is_aware(got.expire_date)


def test_expired_and_unknown_keys_read_as_none(user: Any):
    expired = make_row(user, expire_date=timezone.now() - datetime.timedelta(seconds=1))
    now = timezone.now()
    assert compiled.statements.read(Session, "default", expired.pk, now) is None
    assert compiled.statements.read(Session, "default", "x" * 32, now) is None


def test_the_boundary_follows_expire_date_gt_now(user: Any):
    made = make_row(user)
    assert compiled.statements.read(Session, "default", made.pk, made.expire_date) is None
    before = made.expire_date - datetime.timedelta(microseconds=1000)
    assert compiled.statements.read(Session, "default", made.pk, before) is not None


def test_compiled_once_per_database(user: Any, monkeypatch: pytest.MonkeyPatch):
    made = make_row(user)
    calls = []
    real = compiled.compile_read

    def counting(*args: Any) -> Any:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(compiled, "compile_read", counting)
    for _ in range(3):
        assert compiled.statements.read(Session, "default", made.pk, timezone.now()) is not None
    assert len(calls) == 1


def test_database_settings_change_recompiles(user: Any, settings: Any):
    made = make_row(user)
    compiled.statements.read(Session, "default", made.pk, timezone.now())
    assert len(compiled.statements._kept) == 1
    settings.USE_TZ = True  # any assignment sends setting_changed
    assert len(compiled.statements._kept) == 0
    # The next read compiles again and still finds the row.
    assert compiled.statements.read(Session, "default", made.pk, timezone.now()) is not None
    assert len(compiled.statements._kept) == 1


def test_uncompilable_statement_falls_back_to_the_orm(
    user: Any, monkeypatch: pytest.MonkeyPatch, django_assert_num_queries: Any
):
    made = make_row(user)
    monkeypatch.setattr(compiled, "_slots", lambda params: None)
    now = timezone.now()
    with django_assert_num_queries(1):
        got = compiled.statements.read(Session, "default", made.pk, now)
    assert as_values(got) == as_values(Session.objects.get(pk=made.pk))
    gone = compiled.statements.read(Session, "default", made.pk, made.expire_date)
    assert gone is None


def test_only_slot_parameters_are_accepted():
    slot = compiled.Slot("pk", Session._meta.pk, saving=False)  # type: ignore[arg-type]
    assert compiled._slots([slot, slot]) == (slot, slot)
    assert compiled._slots([slot, 21]) is None
    assert compiled._slots([]) == ()


def test_store_load_uses_one_query_and_sees_the_row(user: Any, django_assert_num_queries: Any):
    made = make_row(user)
    store = SessionStore(made.pk)
    with django_assert_num_queries(1):
        assert store.load()["_auth_user_id"] == str(user.pk)
    assert store._row is not None
    assert store._row.ip == made.ip and store._row.last_activity == made.last_activity


UPDATE_COLUMNS = ("session_data", "expire_date", "user_id")


def test_the_update_is_compiled_on_this_backend():
    statement = compiled.compile_update(Session, connection, UPDATE_COLUMNS)
    assert statement is not None
    assert [slot.name for slot in statement.slots] == [*UPDATE_COLUMNS, "pk"]
    assert statement.sql.upper().startswith("UPDATE ")


@pytest.mark.parametrize("owner", ["user", None])
def test_update_writes_exactly_the_given_columns(
    user: Any, owner: Any, django_assert_num_queries: Any
):
    made = make_row(user)
    expires = timezone.now() + datetime.timedelta(days=3)
    values = {"session_data": "new-data", "expire_date": expires, "user_id": owner and user.pk}
    with django_assert_num_queries(1):
        assert compiled.statements.update(Session, "default", made.pk, values) == 1
    after = Session.objects.get(pk=made.pk)
    assert (after.session_data, after.expire_date, after.user_id) == tuple(values.values())
    # Everything else is as it was.
    assert (after.ip, after.user_agent, after.handle, after.created_at, after.last_activity) == (
        made.ip,
        made.user_agent,
        made.handle,
        made.created_at,
        made.last_activity,
    )


def test_update_of_activity_columns_and_of_a_missing_row(user: Any):
    made = make_row(user)
    seen = timezone.now() + datetime.timedelta(minutes=5)
    values = {"ip": "198.51.100.7", "user_agent": "Safari", "last_activity": seen}
    assert compiled.statements.update(Session, "default", made.pk, values) == 1
    after = Session.objects.get(pk=made.pk)
    assert (after.ip, after.user_agent, after.last_activity) == ("198.51.100.7", "Safari", seen)
    # Matched, not changed, rows count: an identical write is no "row gone"
    # (MySQL reports changed rows unless the connection asks otherwise).
    assert compiled.statements.update(Session, "default", made.pk, values) == 1
    assert compiled.statements.update(Session, "default", "y" * 32, values) == 0


def test_update_falls_back_to_the_orm(user: Any, monkeypatch: pytest.MonkeyPatch):
    made = make_row(user)
    monkeypatch.setattr(compiled, "_slots", lambda params: None)
    values = {"session_data": "fallback", "expire_date": made.expire_date, "user_id": None}
    assert compiled.statements.update(Session, "default", made.pk, values) == 1
    assert Session.objects.get(pk=made.pk).session_data == "fallback"
    assert compiled.statements.update(Session, "default", "z" * 32, values) == 0


@pytest.mark.django_db(transaction=True)
def test_replayed_statements_work_with_postgresql_server_side_binding(user: Any):
    # Django 4.2+ lets PostgreSQL sites bind parameters on the server, where
    # a parameter's type is inferred from the SQL around it.
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only (USER_SESSIONS_TEST_DB=postgres)")
    from django.db.backends.postgresql.base import DatabaseWrapper

    made = make_row(user)
    options = {**connection.settings_dict.get("OPTIONS", {}), "server_side_binding": True}
    server_bound = DatabaseWrapper({**connection.settings_dict, "OPTIONS": options}, "server")
    try:
        read = compiled.compile_read(Session, server_bound)
        update = compiled.compile_update(Session, server_bound, UPDATE_COLUMNS)
        assert read is not None and update is not None
        server_bound.ensure_connection()
        from django.db.backends.postgresql.base import ServerBindingCursor

        assert server_bound.connection.cursor_factory is ServerBindingCursor
        with server_bound.cursor() as cursor:
            now = timezone.now()
            cursor.execute(
                read.sql, read.params({"session_key": made.pk, "expire_date": now}, server_bound)
            )
            row = cursor.fetchone()
            assert row is not None and row[0] == made.pk
            joined = compiled.compile_read(Session, server_bound, with_owner=True)
            assert joined is not None
            cursor.execute(
                joined.sql,
                joined.params({"session_key": made.pk, "expire_date": now}, server_bound),
            )
            row = cursor.fetchone()
            assert row is not None and row[len(joined.field_names)] == user.pk
            values = {"session_data": "bound", "expire_date": made.expire_date, "user_id": None}
            cursor.execute(update.sql, update.params({**values, "pk": made.pk}, server_bound))
            assert cursor.rowcount == 1
    finally:
        server_bound.close()
    assert Session.objects.get(pk=made.pk).session_data == "bound"


@pytest.mark.django_db(transaction=True)
def test_kept_statements_keep_no_connection_alive(user: Any):
    # Under ASGI every request may get a new connection wrapper: one kept
    # alive by the cache keeps its database connection open for good.
    made = make_row(user)
    seen: list[weakref.ref[Any]] = []

    def request_in_another_thread() -> None:
        wrapper = connections["default"]
        seen.append(weakref.ref(wrapper))
        try:
            read = compiled.statements.read(Session, "default", made.pk, timezone.now())
            assert read is not None and timezone.is_aware(read.last_activity)
            joined, owner = compiled.statements.read_with_owner(
                Session, "default", made.pk, timezone.now()
            )
            assert joined is not None and owner is not None and owner.pk == user.pk
            values = {"session_data": "elsewhere", "expire_date": made.expire_date, "user_id": None}
            assert compiled.statements.update(Session, "default", made.pk, values) == 1
        finally:
            wrapper.close()

    thread = threading.Thread(target=request_in_another_thread)
    thread.start()
    thread.join()
    kept = dict(compiled.statements._kept)
    assert len(kept) == 3, "the thread's reads and update were not kept"
    gc.collect()
    assert seen[0]() is None, "a kept statement holds the thread's connection wrapper"
    # What the thread compiled serves this thread's connection as it is.
    assert compiled.statements.read(Session, "default", made.pk, timezone.now()) is not None
    assert compiled.statements._kept == kept


USER_FIELDS = [field.attname for field in get_user_model()._meta.concrete_fields]


def test_the_read_with_owner_is_compiled_on_this_backend():
    statement = compiled.compile_read(Session, connection, with_owner=True)
    assert statement is not None
    assert statement.field_names == tuple(FIELDS)
    assert statement.owner_field_names == tuple(USER_FIELDS)
    assert "JOIN" in statement.sql.upper()


def test_read_with_owner_matches_the_orm(
    user: Any, user_factory: Any, django_assert_num_queries: Any
):
    made = make_row(user, last_activity=timezone.now() - datetime.timedelta(hours=5))
    now = timezone.now()
    with django_assert_num_queries(1):
        got, owner = compiled.statements.read_with_owner(Session, "default", made.pk, now)
    expected = Session.objects.select_related("user").get(pk=made.pk)
    assert as_values(got) == as_values(expected)
    assert owner is not None and not owner._state.adding and owner._state.db == "default"
    fresh = get_user_model().objects.get(pk=user.pk)
    assert [getattr(owner, name) for name in USER_FIELDS] == [
        getattr(fresh, name) for name in USER_FIELDS
    ]
    assert timezone.is_aware(owner.date_joined)


def test_read_with_owner_of_anonymous_expired_and_unknown_sessions(user: Any):
    anonymous = SessionStore()
    anonymous["counter"] = 1
    anonymous.save()
    now = timezone.now()
    got, owner = compiled.statements.read_with_owner(Session, "default", anonymous.session_key, now)
    assert got is not None and got.pk == anonymous.session_key and owner is None
    expired = make_row(user, expire_date=now - datetime.timedelta(seconds=1))
    assert compiled.statements.read_with_owner(Session, "default", expired.pk, now) == (
        None,
        None,
    )
    assert compiled.statements.read_with_owner(Session, "default", "x" * 32, now) == (None, None)


def test_owner_that_does_not_compile_gives_the_plain_read(
    user: Any, monkeypatch: pytest.MonkeyPatch, django_assert_num_queries: Any
):
    made = make_row(user)
    real = compiled._field_names

    def only_sessions(columns: Any, model: Any) -> Any:
        # As for a user model whose row spans tables (multi-table inheritance).
        return real(columns, model) if model is Session else None

    monkeypatch.setattr(compiled, "_field_names", only_sessions)
    assert compiled.compile_read(Session, connection, with_owner=True) is None
    with django_assert_num_queries(1):
        got, owner = compiled.statements.read_with_owner(
            Session, "default", made.pk, timezone.now()
        )
    assert got is not None and got.pk == made.pk and owner is None


def test_store_keeps_the_owner_row_unless_turned_off(user: Any, settings: Any):
    made = make_row(user)
    store = SessionStore(made.pk)
    assert store.load()["_auth_user_id"] == str(user.pk)
    assert store.owner_row is not None and store.owner_row.pk == user.pk
    settings.USER_SESSIONS_JOIN_USER = False
    plain = SessionStore(made.pk)
    plain.load()
    assert plain.owner_row is None
