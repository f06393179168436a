"""The compiled session read must answer exactly what the ORM query answers."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from user_sessions.backends import rows
from user_sessions.backends.db import SessionStore
from user_sessions.models import Session

pytestmark = pytest.mark.django_db

FIELDS = [field.attname for field in Session._meta.concrete_fields]


@pytest.fixture(autouse=True)
def fresh_reader() -> None:
    rows.reader.clear()


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
    statement = rows.compile_statement(Session, connection)
    assert statement is not None
    assert statement.field_names == tuple(FIELDS)
    assert {statement.key_at, statement.time_at} == {0, 1}


def test_live_row_matches_the_orm_field_for_field(user: Any, django_assert_num_queries: Any):
    made = make_row(user, last_activity=timezone.now() - datetime.timedelta(hours=5))
    now = timezone.now()
    with django_assert_num_queries(1):
        got = rows.reader.get(Session, "default", made.pk, now)
    expected = Session.objects.get(session_key=made.pk, expire_date__gt=now)
    assert as_values(got) == as_values(expected)
    assert got is not None and got._state.db == "default" and not got._state.adding
    assert timezone.is_aware(got.last_activity) and timezone.is_aware(got.expire_date)


def test_expired_and_unknown_keys_read_as_none(user: Any):
    expired = make_row(user, expire_date=timezone.now() - datetime.timedelta(seconds=1))
    now = timezone.now()
    assert rows.reader.get(Session, "default", expired.pk, now) is None
    assert rows.reader.get(Session, "default", "x" * 32, now) is None


def test_the_boundary_follows_expire_date_gt_now(user: Any):
    made = make_row(user)
    assert rows.reader.get(Session, "default", made.pk, made.expire_date) is None
    before = made.expire_date - datetime.timedelta(microseconds=1000)
    assert rows.reader.get(Session, "default", made.pk, before) is not None


def test_compiled_once_per_connection(user: Any, monkeypatch: pytest.MonkeyPatch):
    made = make_row(user)
    calls = []
    real = rows.compile_statement

    def counting(*args: Any) -> Any:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(rows, "compile_statement", counting)
    for _ in range(3):
        assert rows.reader.get(Session, "default", made.pk, timezone.now()) is not None
    assert len(calls) == 1


def test_database_settings_change_recompiles(user: Any, settings: Any):
    made = make_row(user)
    rows.reader.get(Session, "default", made.pk, timezone.now())
    assert len(rows.reader._statements) == 1
    settings.USE_TZ = True  # any assignment sends setting_changed
    assert len(rows.reader._statements) == 0


def test_uncompilable_statement_falls_back_to_the_orm(
    user: Any, monkeypatch: pytest.MonkeyPatch, django_assert_num_queries: Any
):
    made = make_row(user)
    monkeypatch.setattr(rows, "_positions", lambda *args: None)
    now = timezone.now()
    with django_assert_num_queries(1):
        got = rows.reader.get(Session, "default", made.pk, now)
    assert as_values(got) == as_values(Session.objects.get(pk=made.pk))
    gone = rows.reader.get(Session, "default", made.pk, made.expire_date)
    assert gone is None


def test_positions_require_both_probes_exactly():
    assert rows._positions(["k", "t"], "k", "t") == (0, 1)
    assert rows._positions(["t", "k"], "k", "t") == (1, 0)
    assert rows._positions(["k"], "k", "t") is None
    assert rows._positions(["k", "t", 21], "k", "t") is None
    assert rows._positions(["K", "t"], "k", "t") is None


def test_store_load_uses_one_query_and_sees_the_row(user: Any, django_assert_num_queries: Any):
    made = make_row(user)
    store = SessionStore(made.pk)
    with django_assert_num_queries(1):
        assert store.load()["_auth_user_id"] == str(user.pk)
    assert store._row is not None
    assert store._row.ip == made.ip and store._row.last_activity == made.last_activity
