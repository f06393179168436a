"""Keyset paging of one user's sessions, most recent activity first.

A cursor names the last row shown by its sort values, not by its position,
so a page loaded after some sessions were signed out neither skips nor
repeats a row (an offset would shift by one for each sign-out). It travels in
URLs as ``<last_activity µs>.<created_at µs>.<handle>``: nothing in it is
secret (the page shows all three), and anything that does not parse is no
cursor at all.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q

from user_sessions.models import Session

__all__ = ["ORDER", "Cursor"]

#: The list's order; ``handle`` (unique) makes it total, so a cursor is exact.
ORDER = ("-last_activity", "-created_at", "-handle")

_EPOCH = datetime.datetime(1970, 1, 1)
# 9999-12-30 23:59:59.999999. A database that keeps local times (TIME_ZONE in
# DATABASES) is handed the instant in its zone, up to 14 hours east of UTC:
# a later one is past the year 9999 there, which Python cannot hold.
_LAST = datetime.datetime.max - datetime.timedelta(days=1)
_MAX_MICROSECONDS = (_LAST - _EPOCH) // datetime.timedelta(microseconds=1)
HANDLE_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")


def _microseconds(moment: datetime.datetime) -> int:
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return (moment - _EPOCH) // datetime.timedelta(microseconds=1)


def _moment(text: str) -> datetime.datetime | None:
    # isdigit() alone accepts "²" and other non-ASCII digits.
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    value = int(text)
    if value > _MAX_MICROSECONDS:
        return None
    moment = _EPOCH + datetime.timedelta(microseconds=value)
    return moment.replace(tzinfo=datetime.timezone.utc) if settings.USE_TZ else moment


@dataclass(frozen=True)
class Cursor:
    """The position just after one row in ``ORDER``."""

    last_activity: datetime.datetime
    created_at: datetime.datetime
    handle: str

    @classmethod
    def after(cls, session: Session) -> Cursor:
        return cls(session.last_activity, session.created_at, session.handle)

    @classmethod
    def decode(cls, value: str | None) -> Cursor | None:
        """The cursor in ``value``, or ``None`` for anything that is not one."""
        parts = (value or "").split(".")
        if len(parts) != 3 or not HANDLE_PATTERN.fullmatch(parts[2]):
            return None
        last_activity, created_at = _moment(parts[0]), _moment(parts[1])
        if last_activity is None or created_at is None:
            return None
        return cls(last_activity, created_at, parts[2])

    def encode(self) -> str:
        return f"{_microseconds(self.last_activity)}.{_microseconds(self.created_at)}.{self.handle}"

    def rows_after(self) -> Q:
        """The rows that come after this position in ``ORDER``."""
        same_activity = Q(last_activity=self.last_activity)
        return (
            Q(last_activity__lt=self.last_activity)
            | (same_activity & Q(created_at__lt=self.created_at))
            | (same_activity & Q(created_at=self.created_at, handle__lt=self.handle))
        )
