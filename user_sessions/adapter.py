"""Site policy in one class: override the method for the decision you care about.

``USER_SESSIONS_ADAPTER`` names the class (a dotted path); the default,
:class:`SessionsAdapter`, answers every question from the ``USER_SESSIONS_*``
settings, so a site that only needs one rule for everybody never subclasses
it. A site that decides per user (shorter sessions for staff, a higher cap
for a kiosk account) overrides one method::

    from user_sessions.adapter import SessionsAdapter

    class Policy(SessionsAdapter):
        def idle_timeout(self, user):
            return 15 * 60 if user.is_staff else super().idle_timeout(user)

Methods are called often (``idle_timeout`` and ``lifetime`` whenever a
signed-in session is loaded): keep them to what the user object already
holds.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from user_sessions.conf import app_settings

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

    from user_sessions.alerts import SignInAlert
    from user_sessions.models import AbstractSession


class SessionsAdapter:
    """The package's defaults: each decision read from its setting."""

    def max_sessions(self, user: AbstractBaseUser) -> int:
        """How many sessions ``user`` may hold at once; 0 sets no cap.

        Asked when ``user`` signs in: the new session counts, and the least
        recently active others beyond the cap end (reason "evicted").
        """
        return app_settings.MAX_SESSIONS

    def idle_timeout(self, user: AbstractBaseUser) -> int | None:
        """Seconds without activity after which a session of ``user`` ends; ``None``: never.

        Activity is recorded at most once per ``USER_SESSIONS_ACTIVITY_INTERVAL``,
        so a timeout must be longer than twice that (check ``user_sessions.E012``).
        """
        return app_settings.IDLE_TIMEOUT

    def lifetime(self, user: AbstractBaseUser) -> int | None:
        """Seconds since sign-in after which a session of ``user`` ends; ``None``: never."""
        return app_settings.LIFETIME

    def is_new_device(self, user: AbstractBaseUser, session: AbstractSession) -> bool:
        """Whether ``session`` (just signed in) deserves a sign-in alert as a new device.

        Asked only with ``USER_SESSIONS_SIGN_IN_ALERTS`` on. The default
        compares browser, platform and country with the account's other live
        sessions and its history (:func:`user_sessions.alerts.is_new_device`).
        """
        from user_sessions import alerts

        return alerts.is_new_device(user, session)

    def send_sign_in_alert(self, alert: SignInAlert) -> None:
        """Deliver ``alert``: by default the mail of ``user_sessions/email/sign_in_alert/``.

        Runs after commit (in a task worker when ``TASKS`` is configured);
        an exception is logged and goes no further.
        """
        from user_sessions import alerts

        alerts.send_sign_in_alert(alert)


@functools.cache
def _load(path: str) -> SessionsAdapter:
    adapter_class: Any = import_string(path)
    if not isinstance(adapter_class, type) or not issubclass(adapter_class, SessionsAdapter):
        raise ImproperlyConfigured(
            f"USER_SESSIONS_ADAPTER must name a subclass of "
            f"user_sessions.adapter.SessionsAdapter, not {path!r}."
        )
    return adapter_class()


def get_adapter() -> SessionsAdapter:
    """The site's adapter: one instance per class, made on first use."""
    return _load(app_settings.ADAPTER)


@receiver(setting_changed)
def _reload(*, setting: str, **kwargs: Any) -> None:
    # The path is read on every call; this drops instances of classes a test
    # may have redefined under the same path.
    if setting == "USER_SESSIONS_ADAPTER":
        _load.cache_clear()


__all__ = ["SessionsAdapter", "get_adapter"]
