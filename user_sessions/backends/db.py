"""Database session store whose rows know their owner, origin and activity.

Differences from ``django.contrib.sessions.backends.db`` that matter:

* an update never writes the public handle or the sign-in time, and it fails
  (instead of inserting) when the row was deleted meanwhile: a revoked session
  is never written back;
* ``touch()`` refreshes ``last_activity``/IP/user agent with one UPDATE at most
  once per ``USER_SESSIONS_ACTIVITY_INTERVAL`` for a session nothing else changed;
* a session is read from the database it is written to (``db_for_read()``),
  never from a read replica that may lag behind a sign-in or a revoke.

A site's own model (``get_model_class()``, as Django documents) may lack this
package's columns: the store writes the ones the model has, so a model with
only ``AbstractBaseSession``'s columns works as with Django's store.
"""

from __future__ import annotations

import datetime
import functools
import logging
import re
from typing import TYPE_CHECKING, Any, NamedTuple

from asgiref.sync import sync_to_async
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.db import DatabaseError, IntegrityError, models, router, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.functional import cached_property

from user_sessions.backends.statements import statements
from user_sessions.client import (
    USER_AGENT_MAX_LENGTH,
    anonymize_ip,
    get_client_hints,
    get_client_ip,
    get_user_agent,
)
from user_sessions.conf import app_settings
from user_sessions.events import EndedBy, Reason
from user_sessions.passwords import hash_verifies

if TYPE_CHECKING:
    from django.http import HttpRequest

    from user_sessions.endings import Ending, Forget
    from user_sessions.models import Session

logger = logging.getLogger("user_sessions.backends")

SESSION_KEY_PATTERN = re.compile(r"[a-z0-9]{8,40}")

# Deleting expired rows in slices keeps memory flat and every statement short,
# whatever the size of the table.
CLEAR_EXPIRED_BATCH_SIZE = 1000


# A new key collides with an existing one about never (32 characters of 36);
# more than a few collisions in a row means something else is wrong, and
# retrying forever would hide it (and hammer the database).
MAX_CREATE_ATTEMPTS = 10

_UNRESOLVED = object()

# What the store records about the client, each where the model has the column.
ACTIVITY_COLUMNS = ("ip", "user_agent", "client_hints", "last_activity")
# Set when the row is made and never by a save: a session keeps its public
# handle and sign-in time however often it is written.
INSERT_ONLY_COLUMNS = frozenset({"handle", "created_at"})


@functools.cache
def model_columns(model: type[models.Model]) -> frozenset[str]:
    """The names of the model's concrete fields (``user``, not ``user_id``)."""
    return frozenset(field.name for field in model._meta.concrete_fields)


def owner_pk(model: type[models.Model], data: dict[str, Any]) -> Any:
    """The primary key of the user the session data names, or None."""
    value = data.get(SESSION_KEY)
    if value is None:
        return None
    if "user" in model_columns(model):
        # The column holds the user model's primary key.
        pk_field = model._meta.get_field("user").target_field  # type: ignore[union-attr]
    else:
        from django.contrib.auth import get_user_model

        pk_field = get_user_model()._meta.pk
    try:
        return pk_field.to_python(value)
    except (ValidationError, TypeError, ValueError):
        return None


class SessionGone(UpdateError):
    """The row was deleted (revoked) while this request was using it."""


class OwnerGone(CreateError):
    """The data names a user who no longer exists, so the row cannot be inserted."""


class RowState(NamedTuple):
    """What the stored row said when this request loaded it (None: no such column)."""

    last_activity: datetime.datetime | None
    ip: str | None
    user_agent: str | None
    # Last, with a default: the cached store keeps the first three only.
    client_hints: str | None = None

    @classmethod
    def of(cls, obj: models.Model) -> RowState:
        return cls(
            getattr(obj, "last_activity", None),
            getattr(obj, "ip", None),
            getattr(obj, "user_agent", None),
            getattr(obj, "client_hints", None),
        )


class SessionStore(SessionBase):
    def __init__(
        self,
        session_key: str | None = None,
        user_agent: str | None = None,
        ip: str | None = None,
    ) -> None:
        super().__init__(session_key)
        self._user_agent: str | object | None = user_agent
        self._ip: str | object | None = ip
        self._client_hints: str | object | None = None
        self._request: HttpRequest | None = None
        # Stores made outside a request (shell, Client.login(), scripts) know
        # nothing about the client, so their saves leave IP/UA/activity alone.
        self.has_client = user_agent is not None or ip is not None
        self._row: RowState | None = None
        # The owner's row as the session's read found it (see user_sessions.auth).
        self.owner_row: models.Model | None = None
        # When the session's row was made (its sign-in), as read or inserted.
        self.signed_in_at: datetime.datetime | None = None
        # When the row was read: whether activity is due is judged at that
        # moment, which spares a clock reading (and the middleware asks twice
        # on some paths).
        self._loaded_at: datetime.datetime | None = None
        # One activity write per request at most, whatever the interval.
        self._touched = False
        self._write_activity = False

    def bind_request(self, request: HttpRequest) -> None:
        """Take the client's IP and user agent from ``request`` when a write needs them.

        Most requests write nothing, so resolving the address (proxy rules,
        validation) is left until then.
        """
        self._request = request
        self._ip = self._user_agent = self._client_hints = _UNRESOLVED
        self.has_client = True

    @property
    def ip(self) -> str | None:
        if self._ip is _UNRESOLVED:
            self._ip = get_client_ip(self._request) if self._request is not None else None
        return self._ip  # type: ignore[return-value]

    @ip.setter
    def ip(self, value: str | None) -> None:
        self._ip = value

    @property
    def user_agent(self) -> str | None:
        if self._user_agent is _UNRESOLVED:
            self._user_agent = get_user_agent(self._request) if self._request is not None else None
        value = self._user_agent
        return value[:USER_AGENT_MAX_LENGTH] if isinstance(value, str) else None

    @user_agent.setter
    def user_agent(self, value: str | None) -> None:
        self._user_agent = value

    @property
    def client_hints(self) -> str | None:
        if self._client_hints is _UNRESOLVED:
            request = self._request
            self._client_hints = get_client_hints(request) if request is not None else None
        return self._client_hints  # type: ignore[return-value]

    # What flush() learnt for the delete() it calls (see _prepare_ending).
    _ending: Ending | None = None
    _ending_reason: tuple[Reason, EndedBy] = (Reason.LOGOUT, EndedBy.USER)
    # The key and handle of the row this request read (its sign-in time: signed_in_at).
    _identity: tuple[str, str | None] | None = None
    #: Why the next flush() ends the session; None: worked out (see _prepare_ending).
    ending_reason: Reason | None = None

    @classmethod
    def get_model_class(cls) -> type[Session]:
        from user_sessions.models import Session

        return Session

    @cached_property
    def model(self) -> type[Session]:
        return self.get_model_class()

    @cached_property
    def _has_owner(self) -> bool:
        return "user" in model_columns(self.model)

    @cached_property
    def _saved_columns(self) -> tuple[str, ...]:
        # Everything but the key, the insert-only columns and activity (which
        # follows its own rate limit). A site's own columns are written from
        # create_model_instance() on every save, as Django's store writes them.
        return tuple(
            field.attname
            for field in self.model._meta.concrete_fields
            if not field.primary_key
            and field.name not in INSERT_ONLY_COLUMNS
            and field.name not in ACTIVITY_COLUMNS
        )

    @cached_property
    def _activity_columns(self) -> tuple[str, ...]:
        columns = model_columns(self.model)
        return tuple(name for name in ACTIVITY_COLUMNS if name in columns)

    @property
    def user_id(self) -> Any:
        """The signed-in user's primary key, or None (django-user-sessions 2.x had it).

        Read from the session's data, so it is right before a save as well.
        """
        return self._owner_id(self._session)  # type: ignore[attr-defined]

    # -- reading ---------------------------------------------------------

    def _validate_session_key(self, key: object) -> bool:
        # Only what this store issues (Django's alphabet and lengths): a
        # cookie carrying anything else, a NUL byte say, never reaches SQL.
        return isinstance(key, str) and SESSION_KEY_PATTERN.fullmatch(key) is not None

    def _remember(self, obj: Session) -> None:
        self._row = RowState.of(obj)

    def db_for_read(self) -> str:
        """The database alias sessions are read from: the one they are written to.

        A read-replica router sends Django's session reads to a replica, where
        a sign-in that just happened may be missing (the user looks signed
        out) and a revoke may not have arrived (the session still works). So
        the store reads each session where ``router.db_for_write()`` writes it.
        A site whose replicas apply every commit before it returns (synchronous
        replication with ``remote_apply``) may override this to return
        ``router.db_for_read(self.model)``.
        """
        return router.db_for_write(self.model)

    def _get_session_from_db(self) -> Session | None:
        now = self._loaded_at = timezone.now()
        self.owner_row = None
        using = self.db_for_read()
        key: str = self.session_key  # type: ignore[assignment]
        try:
            obj: Session | None
            if self._has_owner and app_settings.JOIN_USER:
                # The owner comes along for user_sessions.auth, which decides
                # whether the request may use it.
                obj, self.owner_row = statements.read_with_owner(self.model, using, key, now)
            else:
                obj = statements.read(self.model, using, key, now)
        except SuspiciousOperation as exc:
            logging.getLogger(f"django.security.{exc.__class__.__name__}").warning(
                "Session data failed a security check"
            )
            obj = None
        if obj is None:
            # Ended where rows are deleted: a subclass may read from a replica,
            # which refuses the ending's SELECT ... FOR UPDATE.
            self._end_if_expired(key, router.db_for_write(self.model), now)
            self._session_key = None
            return None
        self._remember(obj)
        self.signed_in_at = getattr(obj, "created_at", None)
        # Who the row is, for the record if this request ends it (flush()).
        self._identity = (key, getattr(obj, "handle", None))
        return obj

    def _end_if_expired(self, key: str, using: str, now: datetime.datetime) -> None:
        """A cookie naming an expired row ends it now, not at the next ``clearsessions``.

        Only when someone hears of it (history, a ``session_ended`` receiver):
        then a request with a dead cookie costs a SELECT more. Nobody
        listening, the row waits for ``clearsessions`` as before.
        """
        from user_sessions import endings

        if not self._validate_session_key(key) or not endings.heard():
            return
        expired = Q(expire_date__lte=now)
        endings.end_matching(
            self.model._base_manager.using(using).filter(expired, session_key=key),
            Reason.EXPIRED,
            still=expired,
            # A cached copy of an expired session expired with it.
            forget=False,
        )

    def load(self) -> dict[str, Any]:
        obj = self._get_session_from_db()
        if obj is None:
            return {}
        data = self.decode(obj.session_data)
        return {} if self._ended_by_policy(data) else data

    def _ended_by_policy(self, data: dict[str, Any]) -> bool:
        """End the session just read if the site's policy says it is over (user_sessions.policy)."""
        from user_sessions import policy

        last_activity = self._row.last_activity if self._row is not None else None
        if not policy.end_if_over(self, data, last_activity=last_activity, now=self._loaded_at):
            return False
        # Then on as with an expired session: anonymous, and the cookie goes.
        self._session_key = None
        self._row = None
        self.owner_row = None
        return True

    def exists(self, session_key: str | None) -> bool:
        if not session_key:
            return False
        using = self.db_for_read()
        return bool(self.model.objects.using(using).filter(session_key=session_key).exists())

    # -- writing ---------------------------------------------------------

    def create(self) -> None:
        # A new row is a new record: its client and activity are this
        # request's. A sign-in creates one, and must never inherit the address
        # and browser of the anonymous visit before it.
        self._row = None
        self._drop_missing_owner(self._get_session(no_load=True))  # type: ignore[attr-defined]
        for _attempt in range(MAX_CREATE_ATTEMPTS):
            self._session_key = self._get_new_session_key()  # type: ignore[attr-defined]
            try:
                self.save(must_create=True)
            except OwnerGone:
                # Deleted between the check and the insert.
                self._drop_missing_owner(self._get_session(no_load=True))  # type: ignore[attr-defined]
                continue
            except CreateError:
                continue
            self.modified = True
            return
        raise CreateError(f"No session could be created in {MAX_CREATE_ATTEMPTS} attempts.")

    def _owner_exists(self, owner_id: Any, using: str | None = None) -> bool:
        if not self._has_owner:
            return True
        user_model = self.model._meta.get_field("user").related_model
        using = using or router.db_for_write(self.model)
        return bool(user_model._base_manager.using(using).filter(pk=owner_id).exists())  # type: ignore[union-attr]

    def _drop_missing_owner(self, data: dict[str, Any]) -> None:
        """Carry on as anonymous when the data names a user who no longer exists.

        The row's owner is a foreign key, so inserting it would fail, and it
        would fail again on every retry. Django's own auth treats such a
        session as anonymous; so does this.
        """
        owner_id = self._owner_id(data)
        if owner_id is None or self._owner_exists(owner_id):
            return
        for key in (SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY):
            data.pop(key, None)

    def cycle_key(self) -> None:
        """A new key for the same data; a signed-in session keeps its handle and sign-in time.

        Django cycles the key of a signed-in session when the password changes
        (``update_session_auth_hash``) and when a session signed under a
        fallback ``SECRET_KEY`` is upgraded: the session goes on, so its row is
        re-keyed in place (one UPDATE), and lists and history keep naming it
        by the same handle. A session without an owner (the anonymous visit
        before a sign-in) gets a new row; one revoked meanwhile stays ended.
        """
        data = self._session  # type: ignore[attr-defined]
        key = self.session_key
        if key is not None and self._owner_id(data) is not None and self._rekey(key, data):
            return
        super().cycle_key()

    def _rekey(self, old_key: str, data: dict[str, Any]) -> bool:
        new_key: str = self._get_new_session_key()  # type: ignore[attr-defined]
        values: dict[str, Any] = {
            "session_key": new_key,
            "session_data": self.encode(data),
            "expire_date": self.get_expiry_date(),
        }
        if self.has_client:
            values |= self._client_values(timezone.now())
        model = self.model
        using = router.db_for_write(model)
        try:
            updated = model._base_manager.using(using).filter(pk=old_key).update(**values)
        except IntegrityError:
            # The new key was taken meanwhile (or the owner went): the plain
            # cycle handles both.
            return False
        if not updated:
            # The row was deleted (revoked) while this request used it. The
            # plain cycle would insert the data again under a new key: the
            # session ends here instead, as a save of it would.
            self._session_key = None
            self._session_cache = {}
            self.modified = True
            return True
        self._session_key = new_key
        self._session_cache = data
        self.modified = True
        if "last_activity" in values:
            self._row = RowState(
                values["last_activity"],
                values.get("ip"),
                values.get("user_agent"),
                values.get("client_hints"),
            )
            self._touched = True
        self._rekeyed(old_key, data, values["expire_date"])
        return True

    def _rekeyed(self, old_key: str, data: dict[str, Any], expire_date: datetime.datetime) -> None:
        """Called once a row has its new key; cached stores move their copy."""

    def _owner_id(self, data: dict[str, Any]) -> Any:
        return owner_pk(self.model, data)

    def _client_values(self, now: datetime.datetime) -> dict[str, Any]:
        """This request's client and time, for the activity columns the model has."""
        columns = self._activity_columns
        values = {
            "ip": anonymize_ip(self.ip),
            "user_agent": self.user_agent,
            # Parsed only for a model that stores them.
            "client_hints": self.client_hints if "client_hints" in columns else None,
            "last_activity": now,
        }
        return {name: values[name] for name in columns}

    def create_model_instance(self, data: dict[str, Any]) -> Session:
        obj = self.model(
            session_key=self._get_or_create_session_key(),  # type: ignore[attr-defined]
            session_data=self.encode(data),
            expire_date=self.get_expiry_date(),
        )
        if self._has_owner:
            obj.user_id = self._owner_id(data)
        if self._row is None:
            # A new row: signed in at the time it is inserted with.
            self.signed_in_at = getattr(obj, "created_at", None)
        # Activity columns follow the same rate limit as touch(): a new row
        # gets them, an update only when activity is due. Skipping them keeps
        # the UPDATE as small as Django's (and off the activity index).
        self._write_activity = (
            self.has_client
            and bool(self._activity_columns)
            and (self._row is None or self._row_lacks_client() or self.activity_due())
        )
        if self._write_activity:
            values = self._client_values(timezone.now())
        elif self._row is not None:
            values = self._row._asdict()
        else:
            values = {}
        for name in self._activity_columns:
            if name in values:
                setattr(obj, name, values[name])
        return obj

    def _row_lacks_client(self) -> bool:
        # Made outside a request (Client.login(), a script): the first request
        # that saves fills the client details in at once.
        row = self._row
        return row is not None and row.ip is None and not row.user_agent

    def _update_fields(self) -> list[str]:
        fields = list(self._saved_columns)
        if self._write_activity:
            fields += self._activity_columns
        return fields

    def _write(self, obj: Session, must_create: bool) -> None:
        using = router.db_for_write(self.model, instance=obj)
        try:
            with transaction.atomic(using=using):
                if must_create:
                    obj.save(force_insert=True, using=using)
                    updated = 1
                else:
                    # An UPDATE of our own columns: it cannot insert, so a row
                    # deleted meanwhile stays deleted.
                    columns = {name: getattr(obj, name) for name in self._update_fields()}
                    updated = statements.update(self.model, using, obj.pk, columns)
        except IntegrityError as exc:
            if must_create:
                owner_id = getattr(obj, "user_id", None)
                if owner_id is not None and not self._owner_exists(owner_id, using):
                    raise OwnerGone from exc
                raise CreateError from exc
            # The owner named in the data no longer exists (its rows went with
            # it): the session is gone as far as this request is concerned.
            raise SessionGone from exc
        except DatabaseError as exc:
            if not must_create:
                # Django's answer to a failed session update.
                raise UpdateError from exc
            raise
        if not updated:
            raise SessionGone
        if self._write_activity:
            self._touched = True
        self._remember(obj)

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        data = self._get_session(no_load=must_create)  # type: ignore[attr-defined]
        self._write(self.create_model_instance(data), must_create)
        return None

    def delete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        ending, self._ending = self._ending, None
        if ending is not None and ending.session_key == session_key:
            self._end(ending)
        else:
            # Not an ending that anyone hears of: an anonymous visit's key
            # given up at sign-in, or a key named outright.
            self._delete_row(session_key)

    def _delete_row(self, session_key: str) -> None:
        models.QuerySet.delete(self.model._base_manager.filter(session_key=session_key))

    def _forget_ended(self) -> Forget:
        """How cached copies of an ended session go: the engine's way."""
        return True

    # -- ending: flush() is a logout, or a password that no longer verifies --

    def flush(self) -> None:
        self._prepare_ending()
        super().flush()

    async def aflush(self) -> None:
        await sync_to_async(self._prepare_ending)()
        await super().aflush()

    def flush_as(self, reason: Reason) -> None:
        """``flush()`` recording ``reason``: this request ended its own session."""
        self.ending_reason = reason
        try:
            self.flush()
        finally:
            self.ending_reason = None

    def _prepare_ending(self) -> None:
        """Before flush() empties the data: whose session ends, and why.

        Django flushes a session at logout, at a sign-in as someone else, and
        when its auth hash no longer verifies (the password changed
        elsewhere); the hash tells the last apart, checked against the user
        this request already has where it can.
        """
        from user_sessions import endings

        self._ending = None
        key = self.session_key
        if key is None or not endings.heard():
            return
        loaded = hasattr(self, "_session_cache")
        # Never loaded: the row says whose it was (read then, not now).
        data: dict[str, Any] = self._session_cache if loaded else {}
        owner_id = self._owner_id(data)
        if owner_id is None and loaded:
            return  # anonymous: nobody to tell
        reason = self.ending_reason
        ended_by = EndedBy.USER
        if reason is None and owner_id is not None:
            user = self._known_user(owner_id)
            if user is None:
                return  # the owner is gone, and their history with them
            if hasattr(user, "get_session_auth_hash") and not hash_verifies(
                user, data.get(HASH_SESSION_KEY)
            ):
                reason, ended_by = Reason.PASSWORD_CHANGED, EndedBy.SYSTEM
        identity = self._identity if self._identity and self._identity[0] == key else None
        row = self._row
        known = owner_id is not None and identity is not None and row is not None
        self._ending = endings.Ending(
            session_key=key,
            user_id=owner_id,
            handle=identity[1] if known and identity else None,
            ip=row.ip if known and row else None,
            user_agent=row.user_agent if known and row else None,
            client_hints=row.client_hints if known and row else None,
            created_at=self.signed_in_at if known else None,
            last_activity=row.last_activity if known and row else None,
        )
        self._ending_reason = (reason or Reason.LOGOUT, ended_by)

    def current_handle(self) -> str | None:
        """This session's public handle: as read this request, else looked up (one query)."""
        key = self.session_key
        if key is None:
            return None
        if self._identity is not None and self._identity[0] == key:
            return self._identity[1]
        if "handle" not in model_columns(self.model):
            return None
        handle: str | None = (
            self.model._base_manager.using(router.db_for_write(self.model))
            .filter(pk=key)
            .values_list("handle", flat=True)
            .first()
        )
        return handle

    def _known_user(self, owner_id: Any) -> Any:
        """The owner as this request has it already (no query), else as stored."""
        request = self._request
        for name in ("_cached_user", "_acached_user"):
            user = getattr(request, name, None) if request is not None else None
            if user is not None and user.is_authenticated and str(user.pk) == str(owner_id):
                return user
        owner = self.owner_row
        if owner is not None and str(owner.pk) == str(owner_id):
            return owner
        user_model = get_user_model()
        return user_model._default_manager.filter(pk=owner_id).first()

    def _end(self, ending: Ending) -> None:
        from user_sessions import endings

        reason, ended_by = self._ending_reason
        model = self.model
        using = router.db_for_write(model)
        if ending.handle is None:
            # Served from a cache, or never loaded: the row says who it was.
            found = endings.describe(model._base_manager.using(using).filter(pk=ending.session_key))
            if not found:
                return  # ended meanwhile
            ending = found[0]
        endings.end_described(
            model,
            using,
            [ending],
            reason,
            ended_by=ended_by,
            # Ended by its own request: a logout, or the password changed here.
            by_handle=ending.handle if ended_by == EndedBy.USER else None,
            forget=self._forget_ended(),
        )

    # -- activity --------------------------------------------------------

    def activity_due(self, now: datetime.datetime | None = None) -> bool:
        """Whether this request should refresh the row's activity columns."""
        if self._row is None or self._touched or not self.has_client or self.session_key is None:
            return False
        if self._row.last_activity is None:
            return False  # the model keeps no activity
        now = now or self._loaded_at or timezone.now()
        elapsed = (now - self._row.last_activity).total_seconds()
        return elapsed >= app_settings.ACTIVITY_INTERVAL

    def touch(self, now: datetime.datetime | None = None) -> bool:
        """Write activity, IP and user agent only; False if the row is gone.

        One UPDATE and no SELECT; it cannot create a row, so a session revoked
        while this request ran stays revoked.
        """
        now = now or timezone.now()
        values = self._client_values(now)
        model = self.model
        self._touched = True
        if not values:
            return self.exists(self.session_key)
        updated = statements.update(model, router.db_for_write(model), self.session_key, values)
        if updated:
            self._row = RowState(
                now, values.get("ip"), values.get("user_agent"), values.get("client_hints")
            )
        return bool(updated)

    # -- async: the same code paths, run where the ORM may block -----------

    async def aload(self) -> dict[str, Any]:
        return await sync_to_async(self.load)()

    async def aexists(self, session_key: str | None) -> bool:
        return await sync_to_async(self.exists)(session_key)

    async def acreate(self) -> None:
        await sync_to_async(self.create)()

    async def acycle_key(self) -> None:
        await sync_to_async(self.cycle_key)()

    async def asave(self, must_create: bool = False) -> None:
        await sync_to_async(self.save)(must_create)

    async def adelete(self, session_key: str | None = None) -> None:
        await sync_to_async(self.delete)(session_key)

    async def acreate_model_instance(self, data: dict[str, Any]) -> Session:
        return await sync_to_async(self.create_model_instance)(data)

    # -- housekeeping ----------------------------------------------------

    @classmethod
    def clear_expired(cls) -> int:  # type: ignore[override]
        """Delete expired rows in bounded batches; returns how many went."""
        from user_sessions import endings

        model = cls.get_model_class()
        now = timezone.now()
        using = router.db_for_write(model)
        if endings.heard():
            # Each owned session ends with a record and an event (EXPIRED).
            expired = Q(expire_date__lte=now)
            return endings.end_matching(
                model.objects.using(using).filter(expired).order_by("expire_date"),
                Reason.EXPIRED,
                still=expired,
                forget=False,
                batch=CLEAR_EXPIRED_BATCH_SIZE,
            )
        total = 0
        while True:
            # Oldest first, by the expire_date index: without an order,
            # PostgreSQL scans the table from its start every batch, past the
            # dead rows earlier batches left (a million rows: 15 s and a
            # 286 ms longest statement without; 12.6-13 s and 87-115 ms with).
            keys = list(
                model.objects.using(using)
                .filter(expire_date__lte=now)
                .order_by("expire_date")
                .values_list("session_key", flat=True)[:CLEAR_EXPIRED_BATCH_SIZE]
            )
            if not keys:
                return total
            # Expired sessions cannot be served from a cache either (its
            # entries expire with them), so the plain delete suffices. Expiry
            # is checked again: a session saved since the SELECT lives on.
            deleted: int = (
                model.objects.using(using)
                .filter(session_key__in=keys, expire_date__lte=now)
                ._raw_delete(using)
            )
            total += deleted
            if len(keys) < CLEAR_EXPIRED_BATCH_SIZE:
                return total

    @classmethod
    async def aclear_expired(cls) -> int:  # type: ignore[override]
        return await sync_to_async(cls.clear_expired)()
