"""System checks for setups that would silently record nothing or the wrong thing."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from user_sessions.conf import app_settings

OUR_MIDDLEWARE = "user_sessions.middleware.SessionMiddleware"
DJANGO_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"
OUR_ENGINES = ("user_sessions.backends.db", "user_sessions.backends.cached_db")


def _engine_store() -> type[Any] | None:
    try:
        store: type[Any] = import_module(settings.SESSION_ENGINE).SessionStore
    except (ImportError, AttributeError):
        return None
    return store


def _uses_our_engine() -> bool:
    # By class, as the middleware decides: a site's own subclass counts.
    from user_sessions.backends.db import SessionStore

    store = _engine_store()
    return store is not None and issubclass(store, SessionStore)


def _middleware_classes() -> list[type[Any]]:
    classes = []
    for path in settings.MIDDLEWARE:
        try:
            classes.append(import_string(path))
        except ImportError:
            continue
    return classes


def check_setup(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from django.contrib.sessions.middleware import SessionMiddleware as DjangoMiddleware

    from user_sessions.middleware import SessionMiddleware as OurMiddleware

    errors: list[checks.CheckMessage] = []
    classes = _middleware_classes()
    ours = any(issubclass(cls, OurMiddleware) for cls in classes)
    djangos = any(
        issubclass(cls, DjangoMiddleware) and not issubclass(cls, OurMiddleware) for cls in classes
    )
    if ours and not _uses_our_engine():
        errors.append(
            checks.Error(
                _("%(middleware)s is installed but SESSION_ENGINE is %(engine)r.")
                % {"middleware": OUR_MIDDLEWARE, "engine": settings.SESSION_ENGINE},
                hint=_("Set SESSION_ENGINE = %(db)r (or %(cached_db)r).")
                % {"db": OUR_ENGINES[0], "cached_db": OUR_ENGINES[1]},
                id="user_sessions.E001",
            )
        )
    if djangos and _uses_our_engine():
        errors.append(
            checks.Error(
                _(
                    "SESSION_ENGINE is %(engine)r but MIDDLEWARE uses Django's "
                    "SessionMiddleware, so no IP address, user agent or activity is recorded."
                )
                % {"engine": settings.SESSION_ENGINE},
                hint=_("Replace %(django)r with %(ours)r in MIDDLEWARE.")
                % {"django": DJANGO_MIDDLEWARE, "ours": OUR_MIDDLEWARE},
                id="user_sessions.E002",
            )
        )
    if _uses_our_engine() and not ours and not djangos:
        errors.append(
            checks.Error(
                _("SESSION_ENGINE is %(engine)r but no session middleware is installed.")
                % {"engine": settings.SESSION_ENGINE},
                hint=_("Add %(ours)r to MIDDLEWARE.") % {"ours": OUR_MIDDLEWARE},
                id="user_sessions.E003",
            )
        )
    if "django.contrib.sessions" in settings.INSTALLED_APPS:
        errors.append(
            checks.Warning(
                _("Both 'django.contrib.sessions' and 'user_sessions' are in INSTALLED_APPS."),
                hint=_(
                    "Remove 'django.contrib.sessions' once its sessions are imported with "
                    "'manage.py migratesessions'; both ship a 'clearsessions' command and a "
                    "Session model."
                ),
                id="user_sessions.W004",
            )
        )
    for name in (
        "ACTIVITY_INTERVAL",
        "PROXY_COUNT",
        "IP_PRIVACY",
        "REFRESH_INTERVAL",
        "WIDGET_LIMIT",
        "REQUIRE_PASSWORD",
        "PASSWORD_ATTEMPTS",
        "PASSWORD_LOCKOUT",
        "CLIENT_IP_RESOLVER",
        "CLIENT_HINTS",
        "JOIN_USER",
        "CACHE_USER",
        "MAX_SESSIONS",
        "IDLE_TIMEOUT",
        "LIFETIME",
        "PUSH",
        "SIGN_IN_ALERTS",
        "SIGN_IN_ALERT_FIRST",
        "REPORT_LINK_MAX_AGE",
        "REPORT_REDIRECT_URL",
    ):
        try:
            getattr(app_settings, name)
        except (ImproperlyConfigured, ImportError) as exc:
            errors.append(checks.Error(f"USER_SESSIONS_{name}: {exc}", id="user_sessions.E005"))
    return errors


def check_geoip(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    path = getattr(settings, "GEOIP_PATH", None)
    if not path:
        return []
    if not Path(path).exists():
        return [
            checks.Warning(
                _("GEOIP_PATH %(path)r does not exist; sessions will show no location.")
                % {"path": str(path)},
                hint=_(
                    "Point GEOIP_PATH at a MaxMind City or Country database (.mmdb) or the "
                    "folder holding it, or remove the setting."
                ),
                id="user_sessions.W006",
            )
        ]
    return []


# Caches whose entries live inside one process: a revoke reaches only the
# process that made it, so other workers keep serving the revoked session.
PROCESS_LOCAL_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


def check_cache(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from user_sessions.backends.cached_db import SessionStore

    store = _engine_store()
    if store is None or not issubclass(store, SessionStore):
        return []
    alias = getattr(settings, "SESSION_CACHE_ALIAS", "default")
    backend = settings.CACHES.get(alias, {}).get("BACKEND", "")
    if backend not in PROCESS_LOCAL_CACHES:
        return []
    return [
        checks.Warning(
            _(
                "SESSION_ENGINE is %(engine)r but the cache %(alias)r (%(backend)s) is not "
                "shared between processes: a session revoked in one worker stays valid in "
                "the others until its cached copy expires."
            )
            % {"engine": settings.SESSION_ENGINE, "alias": alias, "backend": backend},
            hint=_(
                "Use a shared cache (Redis, Memcached, database) for sessions, or "
                "SESSION_ENGINE = 'user_sessions.backends.db'."
            ),
            id="user_sessions.W007",
        )
    ]


# Caches that spread keys over their servers (each key on one), rather than
# copy them from a primary to replicas.
SHARDING_CACHES = ("django.core.cache.backends.memcached.BaseMemcachedCache",)


def check_replicated_cache(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A session cache on several servers whose reads the store cannot send to the primary."""
    from django.core.cache.backends.redis import RedisCache

    from user_sessions.backends.cached_db import SessionStore
    from user_sessions.backends.primary_cache import servers

    store = _engine_store()
    if store is None or not issubclass(store, SessionStore):
        return []
    alias = getattr(settings, "SESSION_CACHE_ALIAS", "default")
    if len(servers(alias)) < 2:
        return []
    try:
        backend = import_string(settings.CACHES[alias]["BACKEND"])
    except (ImportError, KeyError):
        return []
    if issubclass(backend, RedisCache) or any(
        issubclass(backend, import_string(path)) for path in SHARDING_CACHES
    ):
        return []
    return [
        checks.Warning(
            _(
                "The session cache %(alias)r has several servers and its backend %(backend)s "
                "may read from a replica, which can lag behind a revoke (the session would "
                "still work) or a save (the save would be lost)."
            )
            % {"alias": alias, "backend": settings.CACHES[alias]["BACKEND"]},
            hint=_(
                "Point SESSION_CACHE_ALIAS at a cache whose LOCATION is the primary only, or "
                "use Django's RedisCache, whose reads the store sends to the first server."
            ),
            id="user_sessions.W030",
        )
    ]


def check_prepared_statements(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Prepared statements on a database that says it is behind a transaction pooler."""
    from django.db import router

    from user_sessions.models import get_session_model

    alias = router.db_for_write(get_session_model())
    database: dict[str, Any] = settings.DATABASES.get(alias, {})
    options: dict[str, Any] = database.get("OPTIONS") or {}
    if (
        "postgresql" not in database.get("ENGINE", "")
        or not database.get("DISABLE_SERVER_SIDE_CURSORS")
        or options.get("prepare_threshold") is None
    ):
        return []
    return [
        checks.Warning(
            _(
                "The sessions' database %(alias)r sets DISABLE_SERVER_SIDE_CURSORS, as Django "
                "asks behind a transaction pooler, and psycopg's prepare_threshold: a pooler "
                "that does not track prepared statements fails their second use."
            )
            % {"alias": alias},
            hint=_(
                "Behind PgBouncer, use 1.21 or later with max_prepared_statements > 0, or "
                "leave prepare_threshold out of OPTIONS (Django's default: none prepared)."
            ),
            id="user_sessions.W031",
        )
    ]


def check_databases(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Sessions must be written where their owners are: the owner is a foreign key."""
    from django.contrib.auth import get_user_model
    from django.db import router

    from user_sessions.models import Session

    user_model = get_user_model()
    store = _engine_store()
    # What sign-ins write: a site's own model when the engine is ours.
    model = store.get_model_class() if store is not None and _uses_our_engine() else Session
    owned = any(
        field.many_to_one and field.related_model is user_model
        for field in model._meta.concrete_fields
    )
    if not owned:
        return []
    sessions_db = router.db_for_write(model)
    users_db = router.db_for_write(user_model)
    if sessions_db == users_db:
        return []
    return [
        checks.Error(
            _(
                "Sessions are written to the database %(sessions)r but users to %(users)r. "
                "A session's owner is a foreign key to %(model)s, so every sign-in would fail."
            )
            % {"sessions": sessions_db, "users": users_db, "model": user_model._meta.label},
            hint=_(
                "Route user_sessions.Session to the database of AUTH_USER_MODEL "
                "(db_for_write in DATABASE_ROUTERS), or route both to one database."
            ),
            id="user_sessions.E008",
        )
    ]


# Caches whose incr() is one atomic step shared by every worker: only these
# count wrong passwords exactly. Django's database and file caches read and
# write the value in two steps (parallel requests can each take the same
# number), and the local-memory cache counts per process.
EXACT_COUNTING_CACHES = (
    "django.core.cache.backends.redis.RedisCache",
    "django.core.cache.backends.memcached.PyMemcacheCache",
    "django.core.cache.backends.memcached.PyLibMCCache",
)


def _counts_exactly(backend: str) -> bool:
    # A site's subclass of one of them (to add a key prefix, say) keeps its incr().
    try:
        backend_class = import_string(backend)
    except ImportError:
        return False
    return isinstance(backend_class, type) and any(
        issubclass(backend_class, import_string(path)) for path in EXACT_COUNTING_CACHES
    )


def check_password_attempts(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    try:
        limited = app_settings.REQUIRE_PASSWORD is not None and app_settings.PASSWORD_ATTEMPTS
    except ImproperlyConfigured:
        return []  # E005 reports the setting itself.
    if not limited:
        return []
    alias = getattr(settings, "SESSION_CACHE_ALIAS", "default")
    backend = settings.CACHES.get(alias, {}).get("BACKEND", "")
    if _counts_exactly(backend):
        return []
    return [
        checks.Warning(
            _(
                "USER_SESSIONS_PASSWORD_ATTEMPTS is counted in the cache %(alias)r "
                "(%(backend)s), which cannot count exactly: parallel requests or other "
                "worker processes can get more wrong passwords than the limit."
            )
            % {"alias": alias, "backend": backend},
            hint=_("Use Redis or Memcached for SESSION_CACHE_ALIAS to enforce the limit exactly."),
            id="user_sessions.W009",
        )
    ]


def check_session_cache_alias(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The cached store fails on every request when its cache does not exist, as Django's does."""
    from user_sessions.backends.cached_db import SessionStore

    store = _engine_store()
    if store is None or not issubclass(store, SessionStore):
        return []
    alias = getattr(settings, "SESSION_CACHE_ALIAS", "default")
    if alias in settings.CACHES:
        return []
    return [
        checks.Error(
            _(
                "SESSION_CACHE_ALIAS is %(alias)r, but CACHES has no such cache: "
                "every request with a session would fail (InvalidCacheBackendError)."
            )
            % {"alias": alias},
            hint=_("Add %(alias)r to CACHES or set SESSION_CACHE_ALIAS to one of: %(known)s.")
            % {"alias": alias, "known": ", ".join(map(repr, settings.CACHES)) or "-"},
            id="user_sessions.E010",
        )
    ]


def check_cache_user(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """USER_SESSIONS_CACHE_USER acts only with the cached store and the joined read."""
    from user_sessions.backends.cached_db import SessionStore

    try:
        if not app_settings.CACHE_USER:
            return []
        joined = app_settings.JOIN_USER
    except ImproperlyConfigured:
        return []  # E005 says so
    store = _engine_store()
    if joined and store is not None and issubclass(store, SessionStore):
        return []
    return [
        checks.Warning(
            _(
                "USER_SESSIONS_CACHE_USER is True but has no effect: it needs SESSION_ENGINE "
                "'user_sessions.backends.cached_db' (or a subclass) and "
                "USER_SESSIONS_JOIN_USER = True."
            ),
            hint=_("Use the cached_db store, or remove USER_SESSIONS_CACHE_USER."),
            id="user_sessions.W013",
        )
    ]


# What the widget and its views, the admin and activity tracking read and write.
SESSION_MODEL_COLUMNS = ("user", "ip", "user_agent", "created_at", "last_activity", "handle")


def check_session_model(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A site's own session model (``get_model_class()``) without this package's columns.

    The store works with it as Django's does; what needs the columns would
    fail later with an AttributeError or FieldError, so it is said here.
    """
    from user_sessions.backends.db import model_columns

    store = _engine_store()
    if store is None or not _uses_our_engine():
        return []
    model = store.get_model_class()
    missing = [name for name in SESSION_MODEL_COLUMNS if name not in model_columns(model)]
    if not missing:
        return []
    return [
        checks.Warning(
            _(
                "The session model %(model)s has no %(columns)s: the devices widget and its "
                "views, the session admin, sign-out on password change and activity tracking "
                "(IP address, user agent, last activity) need them. Sessions are stored as "
                "Django's store stores them, with nothing more."
            )
            % {"model": model._meta.label, "columns": ", ".join(missing)},
            hint=_(
                "Base the model on user_sessions.models.AbstractSession, which has every "
                "column, instead of AbstractBaseSession."
            ),
            obj=model,
            id="user_sessions.W011",
        )
    ]


def check_push(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A broker that cannot carry events between the site's processes."""
    import os

    from django.db import connections

    try:
        push = app_settings.PUSH
    except ImproperlyConfigured:
        return []  # E005 reports the setting itself.
    if push is None:
        return []
    if push.broker == "memory":
        # Workers cannot be counted from here; a site out of DEBUG, or told to
        # run several (WEB_CONCURRENCY, read by gunicorn and uvicorn), is
        # taken to run more than one.
        workers = os.environ.get("WEB_CONCURRENCY", "1")
        if settings.DEBUG and workers.strip() in ("", "1"):
            return []
        return [
            checks.Warning(
                _(
                    "USER_SESSIONS_PUSH uses the in-process broker: an event reaches only "
                    "the worker process it happened in, so widgets served by the other "
                    "workers do not update."
                ),
                hint=_("Use the 'redis' or 'postgres' broker when running more than one worker."),
                id="user_sessions.W020",
            )
        ]
    if (
        push.broker == "postgres"
        and not push.url
        and (
            push.database not in connections.settings
            or connections[push.database].vendor != "postgresql"
        )
    ):
        return [
            checks.Error(
                _(
                    "USER_SESSIONS_PUSH uses the PostgreSQL broker through the database "
                    "%(alias)r, which is not a PostgreSQL database."
                )
                % {"alias": push.database},
                hint=_("Set 'DATABASE' to a PostgreSQL alias, or 'URL' to a libpq URL."),
                id="user_sessions.E021",
            )
        ]
    return []


def check_policy(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The adapter loads, and an idle timeout is not shorter than activity can show."""
    from user_sessions.adapter import get_adapter

    try:
        get_adapter()
    except (ImproperlyConfigured, ImportError) as exc:
        return [checks.Error(f"USER_SESSIONS_ADAPTER: {exc}", id="user_sessions.E005")]
    try:
        idle_timeout = app_settings.IDLE_TIMEOUT
        interval = app_settings.ACTIVITY_INTERVAL
    except ImproperlyConfigured:
        return []  # E005 reports the setting itself.
    if idle_timeout is None or idle_timeout > 2 * interval:
        return []
    return [
        checks.Error(
            _(
                "USER_SESSIONS_IDLE_TIMEOUT (%(timeout)s s) must be more than twice "
                "USER_SESSIONS_ACTIVITY_INTERVAL (%(interval)s s): activity is recorded at "
                "most once per interval, so a session in use could look idle and end."
            )
            % {"timeout": idle_timeout, "interval": interval},
            hint=_("Raise USER_SESSIONS_IDLE_TIMEOUT above %(minimum)s or lower the interval.")
            % {"minimum": 2 * interval},
            id="user_sessions.E012",
        )
    ]


def check_alerts(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Sign-in alerts can carry their "This wasn't me" link (the package's URLs are mounted)."""
    from django.urls import NoReverseMatch, reverse

    try:
        if not app_settings.SIGN_IN_ALERTS:
            return []
    except ImproperlyConfigured:
        return []  # E005 reports the setting itself.
    try:
        reverse("user_sessions:report", kwargs={"token": "check"})
    except NoReverseMatch:
        return [
            checks.Warning(
                _(
                    "USER_SESSIONS_SIGN_IN_ALERTS is on, but the URL "
                    "'user_sessions:report' does not resolve: alerts go out without "
                    "their “This wasn't me” link."
                ),
                hint=_(
                    'Mount the package\'s URLs: path("account/sessions/", '
                    'include("user_sessions.urls")).'
                ),
                id="user_sessions.W040",
            )
        ]
    return []


def register() -> None:
    checks.register(check_setup)
    checks.register(check_geoip)
    checks.register(check_cache)
    checks.register(check_databases)
    checks.register(check_replicated_cache)
    checks.register(check_prepared_statements)
    checks.register(check_password_attempts)
    checks.register(check_session_cache_alias)
    checks.register(check_cache_user)
    checks.register(check_session_model)
    checks.register(check_policy)
    checks.register(check_push)
    checks.register(check_alerts, checks.Tags.urls)
