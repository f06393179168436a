"""Limit wrong passwords in the sign-out confirmation, per session.

The password is asked for so that somebody holding a stolen session cannot
sign its owner out everywhere else; unlimited guesses would defeat that.
Attempts are counted for the session making them, not per account: counting
per account would let the thief lock the owner out of the very dialog that
signs the thief out.

The count lives in the cache (``SESSION_CACHE_ALIAS``) and every attempt
takes its number with an atomic ``incr`` *before* the password is checked,
so requests sent in parallel cannot all slip in under the limit (a counter
in the session itself could be raced that way). A process-local cache
counts per process. When the cache fails, attempts are not limited (and a
warning is logged): signing out must keep working.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING

from user_sessions.backends.cached_db import session_cache as _cache
from user_sessions.conf import app_settings

if TYPE_CHECKING:
    from django.contrib.sessions.backends.base import SessionBase

logger = logging.getLogger("user_sessions.throttle")

KEY_PREFIX = "user_sessions.password_attempts:"
NOT_LIMITED = 0


def _key(session: SessionBase) -> str | None:
    session_key = session.session_key
    if not session_key:
        return None
    # The session key is a credential: it is not written to the cache as is.
    return KEY_PREFIX + hashlib.sha256(session_key.encode()).hexdigest()[:40]


def reserve(session: SessionBase) -> int | None:
    """Take the next attempt: its number, ``NOT_LIMITED``, or None when the session must wait."""
    limit = app_settings.PASSWORD_ATTEMPTS
    key = _key(session)
    if not limit or key is None:
        return NOT_LIMITED
    cache = _cache()
    try:
        for _ in range(2):
            # The counter starts with the first attempt and lasts until
            # PASSWORD_LOCKOUT seconds after the last wrong password.
            cache.add(key, 0, app_settings.PASSWORD_LOCKOUT)
            try:
                count = int(cache.incr(key))
                break
            except ValueError:
                continue  # expired between add and incr
        else:
            return NOT_LIMITED
    except Exception:
        logger.warning("Cache unavailable; wrong passwords are not limited meanwhile")
        return NOT_LIMITED
    return None if count > limit else count


def failed(session: SessionBase, attempt: int) -> bool:
    """Record that ``attempt`` was a wrong password; True if it was the last one allowed."""
    key = _key(session)
    if attempt == NOT_LIMITED or key is None:
        return False
    try:
        # The wait runs from the last wrong password.
        _cache().touch(key, app_settings.PASSWORD_LOCKOUT)
    except Exception:
        logger.warning("Cache unavailable; could not extend the wait after a wrong password")
    return attempt >= app_settings.PASSWORD_ATTEMPTS


def succeeded(session: SessionBase) -> None:
    key = _key(session)
    if key is None:
        return
    try:
        _cache().delete(key)
    except Exception:
        logger.warning("Cache unavailable; could not clear the count of wrong passwords")
