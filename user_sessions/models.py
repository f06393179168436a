"""The session row: one signed-in place (a browser on a device) of one user.

``AbstractSession`` carries every column this package records, for a site's
own session model with columns of its own (wired as Django documents: a
``SessionStore`` subclass whose ``get_model_class()`` returns it). ``Session``
is the concrete model the package ships.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING, Any, ClassVar, cast

from django.conf import settings
from django.contrib.sessions.base_session import AbstractBaseSession, BaseSessionManager
from django.db import NotSupportedError, models, router
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from user_sessions.events import EndedBy, Reason

if TYPE_CHECKING:
    from django.contrib.sessions.backends.base import SessionBase
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models.sql.compiler import SQLCompiler, _AsSqlType

    from user_sessions.devices import Location


def new_handle() -> str:
    """An opaque public id, unrelated to the session key.

    URLs, HTML and the admin name a session by this so that nothing a page
    shows can be replayed as a cookie.
    """
    return secrets.token_urlsafe(16)


# The ORM always fills the columns below itself (``default``). Their database
# defaults are for rows the ORM of this version does not write: those of
# django-user-sessions 2.x, still serving during a rolling upgrade, which
# knows neither ``created_at`` nor ``handle``.


class RandomHandle(models.Func):
    """A handle made by the database: a fresh random value for every row."""

    arity = 0
    output_field = models.CharField(max_length=32)

    def as_sql(  # type: ignore[override]
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> _AsSqlType:
        if connection.vendor == "postgresql":
            # gen_random_uuid() is built in (PostgreSQL 13+) and cryptographically
            # random (122 of its 128 bits); written in new_handle()'s alphabet.
            template = (
                "translate(rtrim(encode(uuid_send(gen_random_uuid()), 'base64'), '='), '+/', '-_')"
            )
        elif connection.vendor == "mysql":
            if connection.mysql_is_mariadb and connection.mysql_version < (10, 10):  # type: ignore[attr-defined]
                # RANDOM_BYTES() came with MariaDB 10.10; UUID() is unique but
                # guessable, so the hash mixes in RAND() as well.
                template = "LEFT(SHA2(CONCAT(UUID(), RAND()), 256), 32)"
            else:
                template = (
                    "REPLACE(REPLACE(REPLACE(TO_BASE64(RANDOM_BYTES(16)),"
                    " '+', '-'), '/', '_'), '=', '')"
                )
        elif connection.vendor == "sqlite":
            template = "lower(hex(randomblob(16)))"
        else:
            raise NotSupportedError(f"No random handle expression for {connection.vendor}.")
        return super().as_sql(compiler, connection, template=template, **extra_context)


class UtcNow(Now):
    """``Now()`` in the time zone Django stores datetimes in on MySQL/MariaDB.

    With ``USE_TZ`` Django writes UTC there, but ``CURRENT_TIMESTAMP`` is in
    the connection's time zone, which 2.x code leaves at the server's.
    """

    def as_mysql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> _AsSqlType:
        if not settings.USE_TZ:
            return super().as_mysql(compiler, connection, **extra_context)
        return self.as_sql(compiler, connection, template="UTC_TIMESTAMP(6)", **extra_context)


def _forget_cached() -> Callable[[list[str]], None] | None:
    """The engine's way to drop cached copies of sessions, if it keeps any.

    Asking the engine keeps this model free of any knowledge of the cache.
    """
    engine = import_module(settings.SESSION_ENGINE)
    return getattr(engine.SessionStore, "forget", None)


def _discard_cached() -> Callable[[list[str]], None] | None:
    """The engine's way to drop cached copies of rows that changed (not ended)."""
    engine = import_module(settings.SESSION_ENGINE)
    return getattr(engine.SessionStore, "discard", None)


class SessionQuerySet(models.QuerySet["Session"]):
    def active(self) -> SessionQuerySet:
        return cast(SessionQuerySet, self.filter(expire_date__gt=timezone.now()))

    def expired(self) -> SessionQuerySet:
        return cast(SessionQuerySet, self.filter(expire_date__lte=timezone.now()))

    def delete(self) -> tuple[int, dict[str, int]]:
        """End these sessions (``revoke()``): rows and cached copies go at once."""
        ended = self.revoke()
        return ended, {self.model._meta.label: ended}

    delete.queryset_only = True  # type: ignore[attr-defined]

    def revoke(
        self,
        reason: Reason = Reason.ADMIN,
        *,
        ended_by: EndedBy = EndedBy.SYSTEM,
        by_handle: str | None = None,
    ) -> int:
        """Sign these sessions out, recording why; returns how many ended."""
        from user_sessions.endings import end_sessions

        return end_sessions(self, reason, ended_by=ended_by, by_handle=by_handle)


class SessionManager(BaseSessionManager.from_queryset(SessionQuerySet)):  # type: ignore[misc]
    """Django's ``BaseSessionManager`` (``encode()``, ``save()``) with this package's queryset."""

    def get_queryset(self) -> SessionQuerySet:
        # Sessions are read where they are written, as the store reads them
        # (SessionStore.db_for_read): from a lagging read replica the widget
        # would list a session just signed out, and a row fetched there would
        # be revoked there (a read-only standby refuses the DELETE).
        queryset: SessionQuerySet = super().get_queryset()
        if self._db is None:
            queryset = queryset.using(router.db_for_write(self.model))
        return queryset

    def save(
        self, session_key: str, session_dict: dict[str, Any], expire_date: Any
    ) -> AbstractSession:
        """Store ``session_dict`` under ``session_key``, or delete the session if it is empty.

        As Django's, except that an existing row keeps its handle and sign-in
        time, its owner follows the data (as the store's saves do) and a
        cached copy is dropped, so the next request reads what was saved.
        """
        from user_sessions.backends.db import owner_pk

        if not session_dict:
            self.filter(session_key=session_key).delete()
            return cast(
                "AbstractSession", self.model(session_key, self.encode(session_dict), expire_date)
            )
        values: dict[str, Any] = {
            "session_data": self.encode(session_dict),
            "expire_date": expire_date,
        }
        values["user_id"] = owner_pk(self.model, session_dict)
        if not self.filter(session_key=session_key).update(**values):
            self.model(session_key=session_key, **values).save(force_insert=True)
        elif discard := _discard_cached():
            discard([session_key])
        return cast("AbstractSession", self.get(session_key=session_key))


class ClientLabels:
    """Device and place labels from the ``user_agent``, ``client_hints`` and ``ip`` columns."""

    user_agent: str | None
    client_hints: str | None
    ip: str | None

    @property
    def device(self) -> str | None:
        from user_sessions.devices import device_label

        return device_label(self.user_agent, self.client_hints)

    @property
    def device_kind(self) -> str:
        """``"desktop"``, ``"phone"``, ``"tablet"``, ``"bot"`` or ``"unknown"``: which icon."""
        from user_sessions.devices import device_kind

        return device_kind(self.user_agent, self.client_hints)

    @property
    def location(self) -> str | None:
        from user_sessions.devices import location_label

        return location_label(self.ip)

    def geo(self) -> Location | None:
        from user_sessions.devices import lookup_ip

        return lookup_ip(self.ip)


class AbstractSession(ClientLabels, AbstractBaseSession):
    """A session with an owner, where it comes from and when it was used.

    ``session_key``, ``session_data`` and ``expire_date`` come from Django's
    ``AbstractBaseSession``. Extend this for a session model with columns of
    your own; the store fills them in ``create_model_instance()``, as Django's.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        # user.<model name>_set: a site's model beside Session clashes with nothing.
        related_name="%(class)s_set",
        verbose_name=_("user"),
    )
    user_agent = models.CharField(_("user agent"), max_length=400, null=True, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    # What Chromium browsers tell in User-Agent Client Hints (the real
    # Windows or macOS version, the phone's model), as user_sessions.hints
    # stores it; recorded with the user agent and under the same rules.
    client_hints = models.CharField(_("client hints"), max_length=255, null=True, blank=True)
    # Translators: admin column and field: the date and time the session began.
    created_at = models.DateTimeField(_("signed in"), default=timezone.now, db_default=UtcNow())
    last_activity = models.DateTimeField(
        _("last activity"), default=timezone.now, db_default=UtcNow()
    )
    handle = models.CharField(
        # Translators: admin field: the session's public identifier, a random
        # string used in addresses instead of the secret session key.
        _("handle"),
        max_length=32,
        unique=True,
        default=new_handle,
        db_default=RandomHandle(),
        editable=False,
    )

    objects: ClassVar[SessionManager] = SessionManager()

    class Meta(AbstractBaseSession.Meta):
        abstract = True
        verbose_name = _("session")  # type: ignore[assignment]
        verbose_name_plural = _("sessions")  # type: ignore[assignment]
        # A user's sessions, most recent first: what the widget lists.
        indexes = [
            models.Index(fields=["user", "-last_activity"], name="%(app_label)s_%(class)s_recent"),
        ]

    def __str__(self) -> str:
        # Never the session key: this string reaches admin pages and logs.
        return self.handle

    @classmethod
    def get_session_store_class(cls) -> type[SessionBase]:
        from user_sessions.backends.db import SessionStore

        return SessionStore

    def save(self, *args: Any, **kwargs: Any) -> None:
        field = cast("models.CharField[Any, Any]", self._meta.get_field("user_agent"))
        limit = field.max_length or 0
        if self.user_agent and len(self.user_agent) > limit:
            self.user_agent = self.user_agent[:limit]
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        """End this session (``revoke()``): the row and any cached copy go at once."""
        ended = int(self.revoke())
        # As Django's delete() leaves an instance: without a primary key.
        self.pk = None
        return ended, {self._meta.label: ended}

    def revoke(
        self,
        reason: Reason = Reason.ADMIN,
        *,
        ended_by: EndedBy = EndedBy.SYSTEM,
        by_handle: str | None = None,
    ) -> bool:
        """Sign this session out, recording why; False if it had ended already."""
        from user_sessions.endings import end_session

        return end_session(self, reason, ended_by=ended_by, by_handle=by_handle)

    @property
    def is_active(self) -> bool:
        return self.expire_date > timezone.now()


class Session(AbstractSession):
    """The package's session model.

    Its table and first four migrations match django-user-sessions 2.x, so an
    existing table upgrades in place.
    """

    # Named as in 2.x (user.session_set); the abstract model's "%(class)s_set"
    # gives the same name but another migration state.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="session_set",
        verbose_name=_("user"),
    )

    class Meta(AbstractSession.Meta):
        # The index's name from migration 0002.
        indexes = [
            models.Index(fields=["user", "-last_activity"], name="user_sessions_user_recent"),
        ]


class EndedSession(ClientLabels, models.Model):
    """A session that ended: whose, from where, when, why and by whom. Never its key.

    ``user_sessions.endings`` writes one for each session of a user that ends
    while ``USER_SESSIONS_HISTORY_DAYS`` is above 0; ``clearsessions`` drops
    records older than that. The client columns are the session's last ones
    (the address under ``USER_SESSIONS_IP_PRIVACY`` as it is when recorded).
    """

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="ended_sessions",
        verbose_name=_("user"),
    )
    handle = models.CharField(_("handle"), max_length=32)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=400, null=True, blank=True)
    client_hints = models.CharField(_("client hints"), max_length=255, null=True, blank=True)
    created_at = models.DateTimeField(_("signed in"), null=True, blank=True)
    last_activity = models.DateTimeField(_("last activity"), null=True, blank=True)
    # Translators: admin column: the date and time a session ended.
    ended_at = models.DateTimeField(_("ended"), default=timezone.now)
    reason = models.CharField(_("reason"), max_length=32, choices=Reason.choices)
    # Translators: admin column: who ended a session (you, an administrator, the site).
    ended_by = models.CharField(_("ended by"), max_length=16, choices=EndedBy.choices)
    # Translators: admin field: the handle of the session a sign-out was made from.
    by_handle = models.CharField(_("ended from"), max_length=32, null=True, blank=True)

    class Meta:
        verbose_name = _("ended session")
        verbose_name_plural = _("ended sessions")
        indexes = [
            # A user's recent endings, newest first: what the widget lists.
            models.Index(fields=["user", "-ended_at"], name="user_sessions_ended_recent"),
            # What clearsessions prunes, oldest first.
            models.Index(fields=["ended_at"], name="user_sessions_ended_at"),
        ]

    def __str__(self) -> str:
        return self.handle


def get_session_model() -> type[AbstractSession]:
    """The model the widget, views and sign-outs use: the engine's, or ``Session``.

    A site's own model counts when it extends ``AbstractSession`` (it has the
    columns they need); for any other, check W011 says what is left out.
    Read at call time, so overrides of SESSION_ENGINE apply.
    """
    from user_sessions.backends.db import SessionStore

    store = getattr(import_module(settings.SESSION_ENGINE), "SessionStore", None)
    # Only our stores: Django's would import django.contrib.sessions' model.
    if isinstance(store, type) and issubclass(store, SessionStore):
        model = store.get_model_class()
        if issubclass(model, AbstractSession):
            return model
    return Session
