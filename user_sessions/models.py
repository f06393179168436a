"""The session row: one signed-in place (a browser on a device) of one user."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING, Any, ClassVar, cast

from django.conf import settings
from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from django.contrib.sessions.backends.base import SessionBase

    from user_sessions.devices import Location


def new_handle() -> str:
    """An opaque public id, unrelated to the session key.

    URLs, HTML and the admin name a session by this so that nothing a page
    shows can be replayed as a cookie.
    """
    return secrets.token_urlsafe(16)


def _forget_cached() -> Callable[[list[str]], None] | None:
    """The engine's way to drop cached copies of sessions, if it keeps any.

    Asking the engine keeps this model free of any knowledge of the cache.
    """
    engine = import_module(settings.SESSION_ENGINE)
    return getattr(engine.SessionStore, "forget", None)


class SessionQuerySet(models.QuerySet["Session"]):
    def active(self) -> SessionQuerySet:
        return cast(SessionQuerySet, self.filter(expire_date__gt=timezone.now()))

    def expired(self) -> SessionQuerySet:
        return cast(SessionQuerySet, self.filter(expire_date__lte=timezone.now()))

    def delete(self) -> tuple[int, dict[str, int]]:
        """Delete the rows and drop any cached copy, so the sessions end at once."""
        forget = _forget_cached()
        keys = list(self.values_list("session_key", flat=True)) if forget else []
        result = super().delete()
        if forget and keys:
            forget(keys)
        return result

    delete.queryset_only = True  # type: ignore[attr-defined]

    def revoke(self) -> int:
        """Sign these sessions out; returns how many ended."""
        deleted, _counts = self.delete()
        return deleted


class Session(AbstractBaseSession):
    """A session with an owner, where it comes from and when it was used.

    ``session_key``, ``session_data`` and ``expire_date`` come from Django's
    ``AbstractBaseSession``; the table and the first four migrations match
    django-user-sessions 2.x, so an existing table upgrades in place.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="session_set",
        verbose_name=_("user"),
    )
    user_agent = models.CharField(_("user agent"), max_length=400, null=True, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    # Translators: admin column and field: the date and time the session began.
    created_at = models.DateTimeField(_("signed in"), default=timezone.now)
    last_activity = models.DateTimeField(_("last activity"), default=timezone.now)
    handle = models.CharField(
        # Translators: admin field: the session's public identifier, a random
        # string used in addresses instead of the secret session key.
        _("handle"),
        max_length=32,
        unique=True,
        default=new_handle,
        editable=False,
    )

    objects: ClassVar[SessionQuerySet] = SessionQuerySet.as_manager()  # type: ignore[assignment]

    class Meta(AbstractBaseSession.Meta):
        verbose_name = _("session")  # type: ignore[assignment]
        verbose_name_plural = _("sessions")  # type: ignore[assignment]
        indexes = [
            models.Index(fields=["user", "-last_activity"], name="user_sessions_user_recent"),
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
        key = self.session_key  # Django clears the pk once the row is gone
        result = super().delete(*args, **kwargs)
        if forget := _forget_cached():
            forget([key])
        return result

    def revoke(self) -> None:
        self.delete()

    @property
    def is_active(self) -> bool:
        return self.expire_date > timezone.now()

    @property
    def device(self) -> str | None:
        from user_sessions.devices import device_label

        return device_label(self.user_agent)

    @property
    def location(self) -> str | None:
        from user_sessions.devices import location_label

        return location_label(self.ip)

    def geo(self) -> Location | None:
        from user_sessions.devices import lookup_ip

        return lookup_ip(self.ip)
