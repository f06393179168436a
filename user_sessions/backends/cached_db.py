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

With ``USER_SESSIONS_CACHE_USER`` the owner's row is cached too, under a key
of its own beside the session's (one ``get_many``, one round trip), so a warm
signed-in request runs no query at all; ``user_sessions.auth`` still decides,
check by check, whether the request may use it. The owner's entry holds field
values (never the password hash: the session auth hash it gives instead,
with a tag of the ``SECRET_KEY`` it was computed under), and a layout
fingerprint of the user model, so an entry written by another version of the
model is read anew rather than misread. It is only ever *added* from a row
just read, or overwritten by a short-lived ``STALE`` marker: a user saved
through the ORM marks every session of theirs on commit, so the next request
reads the row again, and a request that read the row before the change cannot
put its copy back (the marker outlives any request, as a tombstone does).
Changes that bypass the signals (``QuerySet.update()``) are seen by the
once-per-interval row check, which re-reads the owner.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.core.cache import BaseCache
from django.db import DatabaseError, models, router, transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from user_sessions import endings
from user_sessions.backends import db
from user_sessions.backends.primary_cache import primary_cache
from user_sessions.client import anonymize_ip
from user_sessions.conf import app_settings
from user_sessions.models import Session

if TYPE_CHECKING:
    from user_sessions.endings import Forget

KEY_PREFIX = "user_sessions.cached_db"
# Cache entries are (ENTRY_VERSION, data, expire timestamp, last activity
# timestamp, ip, user agent, sign-in timestamp); anything else is ignored and
# replaced.
ENTRY_VERSION = 4
Entry = tuple[
    int, dict[str, Any], "float | None", "float | None", "str | None", "str | None", "float | None"
]
TOMBSTONE = "revoked"
# Longer than any request can take between reading the row and caching it.
TOMBSTONE_TIMEOUT = 300

# The owner's entries (USER_SESSIONS_CACHE_USER) are (OWNER_VERSION, layout
# fingerprint, database alias, SECRET_KEY tag, session auth hash, values), or
# STALE for TOMBSTONE_TIMEOUT seconds after the user changed.
OWNER_PREFIX = KEY_PREFIX + ".owner"
OWNER_VERSION = 1
OwnerEntry = tuple[int, str, str, str, str, tuple[Any, ...]]
STALE = "stale"
# Never cached: a password hash has no business in a cache (the session auth
# hash derived from it, which the session holds anyway, stands in for it).
UNCACHED_FIELDS = frozenset({"password"})

logger = logging.getLogger("user_sessions.backends")
# Where django.contrib.sessions' cached_db reports a failed cache write.
django_logger = logging.getLogger("django.contrib.sessions")
# Cache calls that write the session's entry (a tombstone is reported apart).
CACHE_WRITES = frozenset({"set", "add"})


def session_cache() -> BaseCache:
    """The cache of ``SESSION_CACHE_ALIAS``, as Django's cached stores use it.

    For Django's Redis cache with replicas, reads go to the primary as writes
    do: a replica may lag behind a revoke or a save (see ``primary_cache``).
    """
    return primary_cache(settings.SESSION_CACHE_ALIAS)


def _cache_key(session_key: str) -> str:
    return KEY_PREFIX + session_key


def _owner_key(session_key: str) -> str:
    return OWNER_PREFIX + session_key


@functools.cache
def _owner_layout(user_model: type[models.Model]) -> tuple[tuple[str, ...], str]:
    """The attnames an owner entry holds, and a fingerprint of the model's columns.

    A model that gained, lost or retyped a column (a rolling deploy) has
    another fingerprint, so entries written for the old one are read anew.
    """
    fields = [f for f in user_model._meta.concrete_fields if f.name not in UNCACHED_FIELDS]
    names = tuple(field.attname for field in fields)
    described = repr(
        (
            user_model._meta.label,
            [(f.attname, f.get_internal_type()) for f in user_model._meta.concrete_fields],
        )
    )
    return names, hashlib.sha256(described.encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=4)
def _secret_tag(secret: str) -> str:
    # Which SECRET_KEY an entry's auth hash was computed under, without the key.
    return salted_hmac(OWNER_PREFIX, "", secret=secret, algorithm="sha256").hexdigest()[:16]


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
        # The session auth hash of a cached owner (USER_SESSIONS_CACHE_USER);
        # None when ``owner_row`` came from the database.
        self.owner_auth_hash: str | None = None
        # The owner entry this request found, and whether it still needs a row.
        self._owner_entry: Any = None
        self.wants_owner = False

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
            self.signed_in_at.timestamp() if self.signed_in_at is not None else None,
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
        self.owner_auth_hash = self._owner_entry = None
        self.wants_owner = False
        if self.session_key is None:
            return {}
        cache_key = self.cache_key
        caches_owner = self._caches_owner()
        if caches_owner:
            # One round trip for both.
            owner_key = _owner_key(self.session_key)
            found = self._cache_call("get_many", [cache_key, owner_key]) or {}
            entry, self._owner_entry = found.get(cache_key), found.get(owner_key)
        else:
            entry = self._cache_call("get", cache_key)
        if entry == TOMBSTONE:
            self._session_key = None
            return {}
        if type(entry) is tuple and len(entry) == 7 and entry[0] == ENTRY_VERSION:
            _, data, expire_ts, activity_ts, ip, user_agent, signed_in_ts = entry
            self.signed_in_at = _from_timestamp(signed_in_ts)
            self._row = db.RowState(_from_timestamp(activity_ts), ip, user_agent)
            self._expire_ts = expire_ts
            self._loaded_at = timezone.now()
            if self._ended_by_policy(data):
                return {}
            # Once per activity interval a hit is checked against the row
            # (the activity write does it for free): a revoke that could not
            # reach the cache, because it was down, is noticed here before
            # the session is used.
            if self.activity_due():
                if not self._refresh_checked(data):
                    self._session_key = None
                    self._row = None
                    return {}
                if caches_owner:
                    # The same check for the owner's row: a change that
                    # bypassed the signals (QuerySet.update()) is seen here.
                    self._recheck_owner(data)
            elif caches_owner:
                self._use_owner(data)
            return data  # type: ignore[no-any-return]
        if entry is not None:
            # Written by another version (or corrupted): removed first, so
            # that the ``add`` below can replace it while a revoke's
            # tombstone, written any time after this, still wins.
            self._cache_call("delete", cache_key)
        if caches_owner:
            self._clear_unusable_owner()
        obj = self._get_session_from_db()
        if obj is None:
            return {}
        data = self.decode(obj.session_data)
        self._expire_ts = obj.expire_date.timestamp()
        if self._ended_by_policy(data):
            return {}
        assert self._row is not None
        # ``add``, not ``set``: a tombstone written by a revoke that happened
        # after our read must win.
        self._cache_call("add", cache_key, self._entry(data, self._row), self._timeout())
        if caches_owner and self.owner_row is not None:
            self._offer_owner(self.owner_row, data)
        return data

    # -- the owner's row (USER_SESSIONS_CACHE_USER) --------------------------

    def _caches_owner(self) -> bool:
        if not (app_settings.CACHE_USER and app_settings.JOIN_USER and self._has_owner):
            return False
        from user_sessions.auth import plain_manager

        # A default manager of its own may hide rows: user_sessions.auth
        # never uses a cached row then, so none is kept.
        return plain_manager(self._user_model._default_manager)

    @property
    def _user_model(self) -> type[models.Model]:
        return self.model._meta.get_field("user").related_model  # type: ignore[return-value]

    def _owner_snapshot(self, owner: models.Model) -> OwnerEntry | None:
        names, fingerprint = _owner_layout(type(owner))
        if owner._state.db is None or not hasattr(owner, "get_session_auth_hash"):
            return None
        if owner.get_deferred_fields() & set(names):
            return None
        return (
            OWNER_VERSION,
            fingerprint,
            owner._state.db,
            _secret_tag(settings.SECRET_KEY),
            owner.get_session_auth_hash(),
            tuple(getattr(owner, name) for name in names),
        )

    def _owner_from_entry(self, entry: Any) -> tuple[models.Model, str] | None:
        """The owner and auth hash an entry holds, if this process can trust its layout."""
        if type(entry) is not tuple or len(entry) != 6 or entry[0] != OWNER_VERSION:
            return None
        _version, fingerprint, using, tag, auth_hash, values = entry
        user_model = self._user_model
        names, expected = _owner_layout(user_model)
        if (
            fingerprint != expected
            or tag != _secret_tag(settings.SECRET_KEY)
            or using != router.db_for_write(user_model)
            or type(values) is not tuple
            or len(values) != len(names)
            or not isinstance(auth_hash, str)
        ):
            return None
        return user_model.from_db(using, names, values), auth_hash

    def _use_owner(self, data: dict[str, Any]) -> None:
        """Take the owner from the entry found, or note that a row is wanted."""
        if data.get(SESSION_KEY) is None:
            return
        found = self._owner_from_entry(self._owner_entry)
        if found is None:
            # No entry, a STALE marker or another layout: user_sessions.auth
            # reads the row (read_owner), as Django's get_user() would.
            self.wants_owner = True
            return
        self.owner_row, self.owner_auth_hash = found

    def _fetch_owner(self, data: dict[str, Any]) -> models.Model | None:
        """The owner's row as ``ModelBackend.get_user()`` reads it (one query).

        From the database users are written to, as the session itself is
        read: a read replica's row may predate a password change.
        """
        user_id = self._owner_id(data)
        if user_id is None:
            return None
        user_model = self._user_model
        manager = user_model._default_manager.using(router.db_for_write(user_model))
        return manager.filter(pk=user_id).first()  # type: ignore[no-any-return]

    def read_owner(self) -> bool:
        """Read the owner a cache hit lacked, for ``user_sessions.auth``; False if none.

        The row is cached for the requests after this one.
        """
        if not self.wants_owner:
            return False
        self.wants_owner = False
        self._clear_unusable_owner()
        data = self._get_session()  # type: ignore[attr-defined]
        owner = self._fetch_owner(data)
        if owner is None:
            return False
        self.owner_row, self.owner_auth_hash = owner, None
        self._offer_owner(owner, data)
        return True

    def _offer_owner(self, owner: models.Model, data: dict[str, Any]) -> None:
        """Cache a row just read, unless a marker says the user changed since."""
        # Only the user the data names: the row's owner column, which the
        # join follows, could name another if it was edited by hand.
        if self._owner_entry == STALE or owner.pk != self._owner_id(data):
            return
        snapshot = self._owner_snapshot(owner)
        if snapshot is None:
            return
        owner_key = _owner_key(self._get_or_create_session_key())  # type: ignore[attr-defined]
        # ``add``, never ``set``: a STALE marker written after our read wins.
        self._cache_call("add", owner_key, snapshot, self._timeout())

    def _clear_unusable_owner(self) -> None:
        """Remove an entry of another layout or secret, *before* the row is read.

        Then ``add`` can replace it, and a marker it could have hidden was
        written after a change the coming read sees.
        """
        entry = self._owner_entry
        if entry is None or entry == STALE or self._owner_from_entry(entry) is not None:
            return
        self._cache_call("delete", _owner_key(self._get_or_create_session_key()))  # type: ignore[attr-defined]
        self._owner_entry = None

    def _recheck_owner(self, data: dict[str, Any]) -> None:
        """Once per activity interval: the owner read anew, its cached copy checked."""
        if data.get(SESSION_KEY) is None:
            return
        cached = self._owner_entry
        usable = self._owner_from_entry(cached) is not None
        self._clear_unusable_owner()
        try:
            owner = self._fetch_owner(data)
        except DatabaseError:
            logger.warning("Database unavailable; owner served from the cache unchecked")
            self._use_owner(data)
            return
        if owner is None:
            return  # gone: Django's get_user() finds no one either
        self.owner_row, self.owner_auth_hash = owner, None
        if not usable:
            self._offer_owner(owner, data)
        elif cached != self._owner_snapshot(owner):
            # Changed behind the ORM's back. A marker rather than the new
            # copy: a change committing while this request runs would
            # otherwise be overwritten by what this request read before it.
            self.mark_owners_stale([self._get_or_create_session_key()])  # type: ignore[attr-defined]

    @staticmethod
    def mark_owners_stale(session_keys: Iterable[str]) -> None:
        """The cached owner of these sessions is read anew for a while (the user changed)."""
        markers = {_owner_key(key): STALE for key in session_keys}
        if not markers:
            return
        try:
            session_cache().set_many(markers, TOMBSTONE_TIMEOUT)
        except Exception:
            logger.warning("Session cache unavailable; could not mark a changed user's sessions")

    @classmethod
    def user_changed(cls, user: models.Model, using: str | None = None) -> None:
        """A user was saved: their sessions' cached rows are read anew once it commits."""
        if not app_settings.CACHE_USER:
            return
        model = cls.get_model_class()
        if "user" not in db.model_columns(model):
            return
        user_id = user.pk

        def mark() -> None:
            keys = model.objects.filter(user_id=user_id).values_list("session_key", flat=True)
            cls.mark_owners_stale(list(keys))

        transaction.on_commit(mark, using=using)

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
        # The old key must not come back from the cache, once the re-key
        # commits: rolled back, the row keeps the old key and the session
        # goes on under the cookie the browser still has.
        endings.forget_on_commit(self._bury, [old_key], router.db_for_write(self.model))

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

    def _delete_row(self, session_key: str) -> None:
        # The key is known: the plain delete, then the tombstone, without the
        # key lookup the queryset's delete needs to find what to bury. The
        # tombstone waits for the commit: an anonymous visit given up by a
        # sign-in that is rolled back keeps its row, and its data.
        using = router.db_for_write(self.model)
        models.QuerySet.delete(
            self.model._base_manager.using(using).filter(session_key=session_key)
        )
        endings.forget_on_commit(self._bury, [session_key], using)

    def _forget_ended(self) -> Forget:
        # This store's tombstones, whatever SESSION_ENGINE names.
        return self._bury

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
