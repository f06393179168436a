from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import AbstractBaseUser
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
    last = Cursor.decode("253402300799999999.0.h")
    assert last is not None and last.last_activity.year == 9999


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
