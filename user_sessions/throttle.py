"""Limit wrong passwords in the sign-out confirmation, per session.

The password is asked for so that somebody holding a stolen session cannot
sign its owner out everywhere else; unlimited guesses would defeat that. The
failures are counted in the session making them, not per account: counting
per account would let the thief lock the owner out of the very dialog that
signs the thief out.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from user_sessions.conf import app_settings

if TYPE_CHECKING:
    from django.contrib.sessions.backends.base import SessionBase

# [failures so far, time of the last one (POSIX seconds)]
SESSION_FIELD = "_user_sessions_password_failures"


def _state(session: SessionBase) -> tuple[int, float]:
    value = session.get(SESSION_FIELD)
    try:
        count, last = value  # type: ignore[misc]
        return int(count), float(last)
    except (TypeError, ValueError):
        return 0, 0.0


def locked(session: SessionBase, now: float | None = None) -> bool:
    """Whether this session has used up its attempts for now."""
    limit = app_settings.PASSWORD_ATTEMPTS
    if not limit:
        return False
    count, last = _state(session)
    if count < limit:
        return False
    now = time.time() if now is None else now
    # The wait runs from the last failure, so guessing on keeps it locked.
    return now - last < app_settings.PASSWORD_LOCKOUT


def record_failure(session: SessionBase, now: float | None = None) -> None:
    now = time.time() if now is None else now
    count, last = _state(session)
    if count >= app_settings.PASSWORD_ATTEMPTS and now - last >= app_settings.PASSWORD_LOCKOUT:
        count = 0  # a new series after the wait
    session[SESSION_FIELD] = [count + 1, now]


def reset(session: SessionBase) -> None:
    if SESSION_FIELD in session:
        del session[SESSION_FIELD]
