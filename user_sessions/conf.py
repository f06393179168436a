"""Package settings, all prefixed ``USER_SESSIONS_`` and read at access time.

Reading on every access (instead of once at import) is what makes
``override_settings`` and ``settings`` fixtures work in a site's own tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from django.http import HttpRequest

IPPrivacy = Literal["full", "truncate", "none"]
IP_PRIVACY_CHOICES: tuple[str, ...] = ("full", "truncate", "none")
REQUIRE_PASSWORD_CHOICES: tuple[str | None, ...] = (None, "others", "all")


PUSH_BROKERS: tuple[str, ...] = ("redis", "postgres", "memory")


@dataclass(frozen=True)
class PushSettings:
    """``USER_SESSIONS_PUSH``, checked: the broker that carries events, and the stream's limits."""

    broker: str
    #: Redis URL, or a libpq connection string for PostgreSQL (else ``database`` is used).
    url: str | None = None
    #: The ``DATABASES`` alias a PostgreSQL broker connects to when it has no URL.
    database: str = "default"
    #: One channel per site: sites sharing a broker need different ones.
    channel: str = "user_sessions"
    #: Seconds between two heartbeats on an idle stream.
    heartbeat: int = 15
    #: Open streams one user may hold in one worker process.
    max_streams: int = 10

    @classmethod
    def from_setting(cls, value: dict[str, Any]) -> PushSettings:
        name = "USER_SESSIONS_PUSH"
        known = {"BROKER", "URL", "DATABASE", "CHANNEL", "HEARTBEAT", "MAX_STREAMS"}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ImproperlyConfigured(f"{name} has unknown keys: {', '.join(unknown)}.")
        broker = value.get("BROKER")
        if broker not in PUSH_BROKERS:
            raise ImproperlyConfigured(f"{name}['BROKER'] must be one of {PUSH_BROKERS}.")
        if broker == "redis" and not value.get("URL"):
            raise ImproperlyConfigured(f"{name}['URL'] is required for the Redis broker.")
        for key, minimum in (("HEARTBEAT", 1), ("MAX_STREAMS", 1)):
            number = value.get(key, 1)
            if isinstance(number, bool) or not isinstance(number, int) or number < minimum:
                raise ImproperlyConfigured(f"{name}['{key}'] must be a whole number >= {minimum}.")
        channel = str(value.get("CHANNEL", "user_sessions"))
        # PostgreSQL channel names are identifiers of at most 63 bytes.
        if not channel or len(channel.encode()) > 63:
            raise ImproperlyConfigured(f"{name}['CHANNEL'] must be 1 to 63 bytes long.")
        return cls(
            broker=broker,
            url=value.get("URL") or None,
            database=str(value.get("DATABASE", "default")),
            channel=channel,
            heartbeat=value.get("HEARTBEAT", 15),
            max_streams=value.get("MAX_STREAMS", 10),
        )


class Settings:
    """The ``USER_SESSIONS_*`` settings, one property each, validated on every access."""

    prefix = "USER_SESSIONS_"

    def __init__(self) -> None:
        # Raw values by name. An unset setting costs a failed attribute
        # lookup on Django's settings (microseconds, several per request),
        # so values are kept until a ``setting_changed`` signal (sent by
        # ``override_settings`` and the pytest ``settings`` fixture) says
        # otherwise. Validation below still runs on every access.
        self._values: dict[str, Any] = {}

    def _get(self, name: str, default: Any) -> Any:
        try:
            return self._values[name]
        except KeyError:
            value = self._values[name] = getattr(django_settings, self.prefix + name, default)
            return value

    def _whole_number(self, name: str, default: int, *, minimum: int, unit: str) -> int:
        value = self._get(name, default)
        # bool is an int to Python, never to a reader of settings.py.
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ImproperlyConfigured(
                f"{self.prefix}{name} must be a whole number{unit} >= {minimum}."
            )
        return value

    def _flag(self, name: str, default: bool) -> bool:
        value = self._get(name, default)
        if not isinstance(value, bool):
            raise ImproperlyConfigured(f"{self.prefix}{name} must be True or False.")
        return value

    def _seconds_or_off(self, name: str) -> int | None:
        # 0 and None both mean "off"; None is what the adapter's methods return for it.
        value = self._get(name, None)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ImproperlyConfigured(
                f"{self.prefix}{name} must be a whole number of seconds >= 0, or None."
            )
        return value or None

    def reload(self) -> None:
        self._values.clear()

    @property
    def ACTIVITY_INTERVAL(self) -> int:
        """Seconds between two writes of ``last_activity`` for an unchanged session."""
        return self._whole_number("ACTIVITY_INTERVAL", 60, minimum=0, unit=" of seconds")

    @property
    def PROXY_COUNT(self) -> int:
        """How many reverse proxies stand in front of the site and append to the header."""
        return self._whole_number("PROXY_COUNT", 0, minimum=0, unit="")

    @property
    def TRUSTED_PROXIES(self) -> tuple[str, ...]:
        """Addresses or networks (CIDR) of the site's own reverse proxies."""
        value = self._get("TRUSTED_PROXIES", ())
        if isinstance(value, str):
            value = (value,)
        return tuple(value)

    @property
    def PROXY_HEADER(self) -> str:
        """The request header proxies write the client chain to, as a ``request.META`` key."""
        value = str(self._get("PROXY_HEADER", "HTTP_X_FORWARDED_FOR"))
        key = value.upper().replace("-", "_")
        if not key.startswith("HTTP_"):
            key = "HTTP_" + key
        return key

    @property
    def CLIENT_IP_RESOLVER(self) -> Callable[[HttpRequest], str | None] | None:
        """A callable (or dotted path) ``resolver(request) -> str | None`` replacing the rule."""
        value = self._get("CLIENT_IP_RESOLVER", None)
        if value is None:
            return None
        if isinstance(value, str):
            # Imported once, not on every activity write.
            value = self._values["CLIENT_IP_RESOLVER"] = import_string(value)
        if not callable(value):
            raise ImproperlyConfigured("USER_SESSIONS_CLIENT_IP_RESOLVER must be a callable.")
        return value  # type: ignore[no-any-return]

    @property
    def IP_PRIVACY(self) -> IPPrivacy:
        """What is stored of the client address: ``"full"``, ``"truncate"`` or ``"none"``."""
        value = self._get("IP_PRIVACY", "full")
        if value not in IP_PRIVACY_CHOICES:
            raise ImproperlyConfigured(
                "USER_SESSIONS_IP_PRIVACY must be one of 'full', 'truncate' or 'none'."
            )
        return value  # type: ignore[no-any-return]

    @property
    def REFRESH_INTERVAL(self) -> int:
        """Seconds between two refreshes of the widget's list; 0 turns refreshing off."""
        return self._whole_number("REFRESH_INTERVAL", 30, minimum=0, unit=" of seconds")

    @property
    def WIDGET_LIMIT(self) -> int:
        """Other sessions the widget shows in one render; "Show all" loads the rest in pages."""
        return self._whole_number("WIDGET_LIMIT", 10, minimum=1, unit=" of sessions")

    @property
    def HISTORY_DAYS(self) -> int:
        """Days a record of an ended session is kept (``user_sessions.history``); 0: none kept."""
        return self._whole_number("HISTORY_DAYS", 90, minimum=0, unit=" of days")

    @property
    def HISTORY_WIDGET_LIMIT(self) -> int:
        """Ended sessions the widget's "Recent activity" lists; 0 leaves the section out."""
        return self._whole_number("HISTORY_WIDGET_LIMIT", 5, minimum=0, unit=" of sessions")

    @property
    def REQUIRE_PASSWORD(self) -> str | None:
        """``"others"``: signing out any session but the one in use asks for the password.

        ``"all"`` is the 3.0 spelling and now means the same: a policy that
        asked only before "sign out all others" could be sidestepped by
        signing the others out one at a time.
        """
        value = self._get("REQUIRE_PASSWORD", None)
        if value not in REQUIRE_PASSWORD_CHOICES:
            raise ImproperlyConfigured(
                "USER_SESSIONS_REQUIRE_PASSWORD must be None, 'others' or 'all'."
            )
        return value  # type: ignore[no-any-return]

    @property
    def PASSWORD_ATTEMPTS(self) -> int:
        """Wrong passwords a session may enter in the sign-out confirmation; 0 = no limit."""
        return self._whole_number("PASSWORD_ATTEMPTS", 5, minimum=0, unit="")

    @property
    def PASSWORD_LOCKOUT(self) -> int:
        """Seconds a session waits, after its last wrong password, once the attempts are used up."""
        return self._whole_number("PASSWORD_LOCKOUT", 300, minimum=1, unit=" of seconds")

    @property
    def CLIENT_HINTS(self) -> bool:
        """Ask Chromium browsers for client hints, so devices get names such as "Windows 11"."""
        return self._flag("CLIENT_HINTS", True)

    @property
    def JOIN_USER(self) -> bool:
        """Read the session's owner with the session (one query instead of two)."""
        return self._flag("JOIN_USER", True)

    @property
    def CACHE_USER(self) -> bool:
        """With ``cached_db``: keep the owner's row in the cache too (no query on a warm hit)."""
        return self._flag("CACHE_USER", False)

    @property
    def ADAPTER(self) -> str:
        """Dotted path of the class holding the site's policy (``user_sessions.adapter``)."""
        value = self._get("ADAPTER", "user_sessions.adapter.SessionsAdapter")
        if not isinstance(value, str) or not value:
            raise ImproperlyConfigured(f"{self.prefix}ADAPTER must be a dotted path to a class.")
        return value

    @property
    def MAX_SESSIONS(self) -> int:
        """Sessions one user may hold; a sign-in beyond it ends the least recently active.

        0 sets no cap.
        """
        return self._whole_number("MAX_SESSIONS", 0, minimum=0, unit=" of sessions")

    @property
    def IDLE_TIMEOUT(self) -> int | None:
        """Seconds without activity after which a session ends at its next request; None: off."""
        return self._seconds_or_off("IDLE_TIMEOUT")

    @property
    def LIFETIME(self) -> int | None:
        """Seconds since sign-in after which a session ends, however active; None: off."""
        return self._seconds_or_off("LIFETIME")

    @property
    def PUSH(self) -> PushSettings | None:
        """Live updates through a broker (``user_sessions.push``); ``None`` polls only."""
        value = self._get("PUSH", None)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ImproperlyConfigured(f"{self.prefix}PUSH must be a dict or None.")
        return PushSettings.from_setting(value)

    @property
    def CRISPY_TEMPLATE_PACK(self) -> str:
        """The django-crispy-forms template pack of the password form."""
        return str(self._get("CRISPY_TEMPLATE_PACK", "user_sessions"))

    @property
    def SIGN_IN_ALERTS(self) -> bool:
        """Mail the owner when their account signs in from a new device (``alerts``)."""
        return self._flag("SIGN_IN_ALERTS", False)

    @property
    def SIGN_IN_ALERT_FIRST(self) -> bool:
        """Alert on an account's very first sign-in too (it has no other device to compare)."""
        return self._flag("SIGN_IN_ALERT_FIRST", False)

    @property
    def REPORT_LINK_MAX_AGE(self) -> int:
        """Seconds an alert's "This wasn't me" link stays valid."""
        return self._whole_number(
            "REPORT_LINK_MAX_AGE", 7 * 24 * 3600, minimum=1, unit=" of seconds"
        )

    @property
    def REPORT_REDIRECT_URL(self) -> str | None:
        """Where "This wasn't me" leads once confirmed: a URL or URL name; ``None``: see docs."""
        value = self._get("REPORT_REDIRECT_URL", None)
        if value is not None and not isinstance(value, str):
            raise ImproperlyConfigured(
                f"{self.prefix}REPORT_REDIRECT_URL must be a string or None."
            )
        return value


app_settings = Settings()


@receiver(setting_changed)
def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith(Settings.prefix):
        app_settings.reload()
