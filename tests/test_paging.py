from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from user_sessions.models import Session
from user_sessions.paging import ORDER, Cursor

MOMENT = datetime.datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=datetime.timezone.utc)


def test_a_cursor_survives_its_trip_through_a_url() -> None:
    cursor = Cursor(MOMENT, MOMENT - datetime.timedelta(days=3), "Ab-_9xYz")

    text = cursor.encode()

    assert text == "1777863721123456.1777604521123456.Ab-_9xYz"
    assert Cursor.decode(text) == cursor


def test_a_cursor_keeps_the_instant_whatever_the_time_zone() -> None:
    elsewhere = MOMENT.astimezone(datetime.timezone(datetime.timedelta(hours=-7)))

    assert Cursor(elsewhere, elsewhere, "h").encode() == Cursor(MOMENT, MOMENT, "h").encode()


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "1",
        "abc",
        "-1.-1.handle",
        "1.2",
        "1.2.3.4",
        "1.2.",
        "1.2.<script>",
        "1.2." + "h" * 33,
        "1.2.han dle",
        "1.2.han%2Fdle",
        "1e5.2.handle",
        " 1.2.handle",
        "²³.1.handle",  # digits to str.isdigit(), not to int() in every form
        "999999999999999999.1.handle",  # after the year 9999
        "1" * 19 + ".1.handle",
        "9" * 10_000 + ".1.handle",
        "1.2.handle\x00",
    ],
)
def test_anything_that_is_not_a_cursor_is_none(value: str | None) -> None:
    assert Cursor.decode(value) is None


def test_the_first_and_last_instants_are_cursors() -> None:
    assert Cursor.decode("0.0.h") is not None
    last = Cursor.decode("253402214399999999.0.h")
    assert last is not None and last.last_activity.year == 9999
    # A day later could not be written in a database that keeps local times.
    assert Cursor.decode("253402214400000000.0.h") is None


@pytest.mark.django_db
def test_rows_after_follow_the_order_through_ties(user: AbstractBaseUser) -> None:
    now = timezone.now().replace(microsecond=0)
    # Equal activity, equal sign-in times: only the handle tells them apart.
    for index in range(12):
        Session.objects.create(
            session_key=f"tie{index:029d}",
            expire_date=now + datetime.timedelta(days=1),
            user=user,
            last_activity=now - datetime.timedelta(minutes=index // 4),
            created_at=now - datetime.timedelta(hours=index // 2 % 2),
        )
    ordered = list(Session.objects.filter(user=user).order_by(*ORDER))

    for position, session in enumerate(ordered):
        after = Session.objects.filter(user=user).filter(Cursor.after(session).rows_after())
        assert list(after.order_by(*ORDER)) == ordered[position + 1 :]


def test_the_order_is_total() -> None:
    # A cursor is exact only if no two rows compare equal.
    assert ORDER[-1] == "-handle"
    assert Session._meta.get_field("handle").unique


@contextlib.contextmanager
def database_time_zone(name: str) -> Iterator[None]:
    """The default connection storing datetimes in ``name`` (DATABASES TIME_ZONE)."""
    wrapper = connections[DEFAULT_DB_ALIAS]  # not the proxy: its cached properties
    original = wrapper.settings_dict["TIME_ZONE"]
    wrapper.settings_dict["TIME_ZONE"] = name
    for cached in ("timezone", "timezone_name"):
        wrapper.__dict__.pop(cached, None)
    try:
        yield
    finally:
        wrapper.settings_dict["TIME_ZONE"] = original
        for cached in ("timezone", "timezone_name"):
            wrapper.__dict__.pop(cached, None)


@pytest.mark.django_db
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
# The zones furthest east (UTC+14) and west (UTC-11) of UTC.
@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Pacific/Pago_Pago"])
def test_cursors_at_either_end_of_time_are_no_server_error(
    auth_client: Client, htmx: bool, zone: str
) -> None:
    # A database that keeps local times (TIME_ZONE in DATABASES) is handed the
    # cursor's instant in that zone; the last instant Python can hold, moved
    # east of UTC, is past the year 9999.
    if connection.features.supports_timezones:
        pytest.skip("the database keeps time zones itself: DATABASES TIME_ZONE is refused")
    headers: dict[str, Any] = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    with database_time_zone(zone):
        for last in ("253402300799999999", "253402214399999999"):  # Python's last, ours
            for after in (f"{last}.{last}.h", f"{last}.0.h", f"0.{last}.h", "0.0.h"):
                response = auth_client.get(
                    reverse("user_sessions:session_list"), {"after": after}, **headers
                )
                assert response.status_code == 200, after
