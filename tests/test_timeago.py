"""``last_seen``: one translated phrase per unit, the largest unit only."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone, translation

from user_sessions.timeago import ago

NOW = datetime.datetime(2026, 11, 22, 12, 0, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [
        (datetime.timedelta(seconds=5), "1 minute ago"),
        (datetime.timedelta(seconds=119), "1 minute ago"),
        (datetime.timedelta(minutes=59, seconds=59), "59 minutes ago"),
        (datetime.timedelta(hours=1), "1 hour ago"),
        (datetime.timedelta(hours=23, minutes=59), "23 hours ago"),
        (datetime.timedelta(days=1), "1 day ago"),
        (datetime.timedelta(days=6, hours=23), "6 days ago"),
        (datetime.timedelta(days=7), "1 week ago"),
        (datetime.timedelta(days=29), "4 weeks ago"),
        (datetime.timedelta(days=30), "1 month ago"),
        (datetime.timedelta(days=364), "12 months ago"),
        (datetime.timedelta(days=365), "1 year ago"),
        (datetime.timedelta(days=3 * 365 + 10), "3 years ago"),
    ],
)
def test_largest_unit_in_english(elapsed: datetime.timedelta, expected: str) -> None:
    with translation.override("en"):
        assert ago(NOW - elapsed, NOW) == expected


def test_a_clock_running_behind_reads_as_one_minute() -> None:
    with translation.override("en"):
        assert ago(NOW + datetime.timedelta(seconds=30), NOW) == "1 minute ago"


def test_defaults_to_now() -> None:
    with translation.override("en"):
        assert ago(timezone.now() - datetime.timedelta(hours=3)) == "3 hours ago"


@pytest.mark.parametrize(
    ("language", "elapsed", "expected"),
    [
        # "vor" takes the dative: Tagen, not Tage.
        ("de", datetime.timedelta(days=3), "vor 3 Tagen"),
        ("de", datetime.timedelta(days=1), "vor 1 Tag"),
        # Czech "před" takes the instrumental.
        ("cs", datetime.timedelta(minutes=5), "před 5 minutami"),
        ("ru", datetime.timedelta(minutes=21), "21 минуту назад"),
        ("ru", datetime.timedelta(minutes=22), "22 минуты назад"),
        ("ru", datetime.timedelta(minutes=25), "25 минут назад"),
    ],
)
def test_case_and_plural_forms(language: str, elapsed: datetime.timedelta, expected: str) -> None:
    with translation.override(language):
        assert ago(NOW - elapsed, NOW) == expected


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("el", "πριν από 2 ώρες"),
        ("hi", "2 घंटे पहले"),
        ("th", "2 ชั่วโมงที่แล้ว"),
        ("vi", "2 giờ trước"),
    ],
)
def test_languages_whose_django_catalogue_lacks_timesince_are_translated(
    language: str, expected: str
) -> None:
    # Django's own catalogues leave its timesince strings untranslated here,
    # so the widget showed English before it had its own phrases.
    with translation.override(language):
        assert ago(NOW - datetime.timedelta(hours=2), NOW) == expected
