"""Write-through cached database store.

A cache hit serves a request with no query at all, like Django's own
``cached_db``. Two extra rules keep revocation instant and final:

* revoking writes a short-lived tombstone over the cache entry (instead of
  only deleting it), and a request that had to read the database only *adds*
  its entry, so a request that loaded the row just before it was deleted
  cannot put it back into the cache;
* a writer puts the new entry in the cache *before* writing the row and puts
  the tombstone back when the row turns out to be gone.

Cache errors are logged and the database answers instead (Redis down must not
sign anybody out or keep a revoked session alive). A failed write is also
logged as Django's store logs it, so alerts set up for Django's keep working.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.cache import BaseCache, caches
from django.db import DatabaseError, models
from django.utils import timezone

from user_sessions.backends import db
from user_sessions.client import anonymize_ip
from user_sessions.models import Session

KEY_PREFIX = "user_sessions.cached_db"
# Cache entries are (ENTRY_VERSION, data, expire timestamp, last activity
# timestamp, ip, user agent); anything else is ignored and replaced.
ENTRY_VERSION = 3
Entry = tuple[int, dict[str, Any], "float | None", "float | None", "str | None", "str | None"]
TOMBSTONE = "revoked"
# Longer than any request can take between reading the row and caching it.
TOMBSTONE_TIMEOUT = 300

logger = logging.getLogger("user_sessions.backends")
# Where django.contrib.sessions' cached_db reports a failed cache write.
django_logger = logging.getLogger("django.contrib.sessions")
# Cache calls that write the session's entry (a tombstone is reported apart).
CACHE_WRITES = frozenset({"set", "add"})


def session_cache() -> BaseCache:
    """The cache of ``SESSION_CACHE_ALIAS``, as Django's cached stores use it."""
    return caches[settings.SESSION_CACHE_ALIAS]


def _cache_key(session_key: str) -> str:
    return KEY_PREFIX + session_key


def _from_timestamp(value: float | None) -> datetime.datetime | None:
    if value is None:
        return None  # the model keeps no activity
    # Naive local time when USE_TZ is off, as timezone.now() gives then.
    if settings.USE_TZ:
        return datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc)
    return datetime.datetime.fromtimestamp(value)


class SessionStore(db.SessionStore):
    # The row's expire_date as a POSIX timestamp (what the entry holds).
    _expire_ts: float | None = None

    def __init__(
        self,
        session_key: str | None = None,
        user_agent: str | None = None,
        ip: str | None = None,
    ) -> None:
        super().__init__(session_key, user_agent, ip)
        # As Django's: a SESSION_CACHE_ALIAS naming no cache fails here
        # (InvalidCacheBackendError) instead of quietly using the database
        # alone, and ``manage.py check`` reports it (user_sessions.E010).
        self._cache = session_cache()

    @property
    def cache_key(self) -> str:
        return _cache_key(self._get_or_create_session_key())  # type: ignore[attr-defined]

    def _entry(self, data: dict[str, Any], row: db.RowState) -> Entry:
        # Times as POSIX timestamps: an aware datetime costs several times
        # more to unpickle, and every cache hit unpickles the entry.
        return (
            ENTRY_VERSION,
            data,
            self._expire_ts,
            row.last_activity.timestamp() if row.last_activity is not None else None,
            row.ip,
            row.user_agent,
        )

    def _timeout(self) -> int:
        # Seconds the entry may live: until the row expires (whole seconds,
        # as Django's get_expiry_age counts them).
        if self._expire_ts is None:
            return 0
        return max(0, int(self._expire_ts - timezone.now().timestamp()))

    def _cache_call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self._cache, method)(*args, **kwargs)
        except Exception:
            if method in CACHE_WRITES:
                django_logger.exception("Error saving to cache (%s)", self._cache)
            logger.warning("Session cache unavailable (%s); using the database", method)
            return None

    def load(self) -> dict[str, Any]:
        if self.session_key is None:
            return {}
        cache_key = self.cache_key
        entry = self._cache_call("get", cache_key)
        if entry == TOMBSTONE:
            self._session_key = None
            return {}
        if type(entry) is tuple and len(entry) == 6 and entry[0] == ENTRY_VERSION:
            _, data, expire_ts, activity_ts, ip, user_agent = entry
            self._row = db.RowState(_from_timestamp(activity_ts), ip, user_agent)
            self._expire_ts = expire_ts
            self._loaded_at = timezone.now()
            # Once per activity interval a hit is checked against the row
            # (the activity write does it for free): a revoke that could not
            # reach the cache, because it was down, is noticed here before
            # the session is used.
            if self.activity_due() and not self._refresh_checked(data):
                self._session_key = None
                self._row = None
                return {}
            return data  # type: ignore[no-any-return]
        if entry is not None:
            # Written by another version (or corrupted): removed first, so
            # that the ``add`` below can replace it while a revoke's
            # tombstone, written any time after this, still wins.
            self._cache_call("delete", cache_key)
        obj = self._get_session_from_db()
        if obj is None:
            return {}
        data = self.decode(obj.session_data)
        self._expire_ts = obj.expire_date.timestamp()
        assert self._row is not None
        # ``add``, not ``set``: a tombstone written by a revoke that happened
        # after our read must win.
        self._cache_call("add", cache_key, self._entry(data, self._row), self._timeout())
        return data

    def _refresh_checked(self, data: dict[str, Any]) -> bool:
        try:
            return self._refresh(data)
        except DatabaseError:
            # The database is down: keep serving what the cache holds, as
            # Django's cached_db does; nothing can be revoked meanwhile.
            logger.warning("Database unavailable; session served from the cache unchecked")
            return True

    def exists(self, session_key: str | None) -> bool:
        if not session_key:
            return False
        entry = self._cache_call("get", _cache_key(session_key))
        return (entry is not None and entry != TOMBSTONE) or super().exists(session_key)

    def _write(self, obj: Session, must_create: bool) -> None:
        row = db.RowState.of(obj)
        data = self._get_session(no_load=must_create)  # type: ignore[attr-defined]
        previous, self._expire_ts = self._expire_ts, obj.expire_date.timestamp()
        # The entry goes in before the row is written, so that a revoke
        # racing this save always has the last word (see the module doc).
        self._cache_call("set", self.cache_key, self._entry(data, row), self._timeout())
        try:
            super()._write(obj, must_create)
        except db.SessionGone:
            self._bury([obj.session_key])
            raise
        except Exception:
            # Not revoked, just not saved: drop our copy so the next request
            # reads the row as it is.
            self._expire_ts = previous
            self._cache_call("delete", self.cache_key)
            raise

    def _rekeyed(self, old_key: str, data: dict[str, Any], expire_date: datetime.datetime) -> None:
        self._expire_ts = expire_date.timestamp()
        if self._row is not None:
            self._cache_call("set", self.cache_key, self._entry(data, self._row), self._timeout())
        # The old key must not come back from the cache.
        self._bury([old_key])

    def _refresh(self, data: dict[str, Any], now: datetime.datetime | None = None) -> bool:
        now = now or timezone.now()
        key = self._get_or_create_session_key()  # type: ignore[attr-defined]
        row = db.RowState(now, anonymize_ip(self.ip), self.user_agent)
        self._cache_call("set", self.cache_key, self._entry(data, row), self._timeout())
        try:
            alive = super().touch(now)
        except DatabaseError:
            # The database is down: the entry stays, so the cache keeps
            # serving the session (checked again an interval from now), and
            # this request does not try again.
            self._touched = True
            raise
        except Exception:
            self._cache_call("delete", self.cache_key)
            raise
        if not alive:
            self._bury([key])
        return alive

    def touch(self, now: datetime.datetime | None = None) -> bool:
        return self._refresh(self._get_session(), now)  # type: ignore[attr-defined]

    def delete(self, session_key: str | None = None) -> None:
        key = self.session_key if session_key is None else session_key
        if key is None:
            return
        # The key is known: the plain delete, then the tombstone, without the
        # key lookup the queryset's delete needs to find what to bury.
        models.QuerySet.delete(self.model._base_manager.filter(session_key=key))
        self._bury([key])

    @staticmethod
    def _bury(session_keys: Iterable[str]) -> None:
        tombstones = {_cache_key(key): TOMBSTONE for key in session_keys}
        if not tombstones:
            return
        try:
            session_cache().set_many(tombstones, TOMBSTONE_TIMEOUT)
        except Exception:
            logger.warning("Session cache unavailable; could not mark sessions revoked")

    @classmethod
    def discard(cls, session_keys: Iterable[str]) -> None:
        """Called when rows changed outside a store (``Session.objects.save()``): read them anew."""
        try:
            session_cache().delete_many([_cache_key(key) for key in session_keys])
        except Exception:
            logger.warning("Session cache unavailable; could not drop changed sessions")

    @classmethod
    def forget(cls, session_keys: Iterable[str]) -> None:
        """Called by ``Session`` deletes: the cached copies end with the rows."""
        cls._bury(session_keys)
