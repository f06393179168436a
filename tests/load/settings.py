"""The example site, with one extra view for the load run (``scripts/load``).

Read from the environment (``scripts/load`` sets them):
``LOAD_DB`` = postgres (libpq's ``PGHOST``, ``PGPORT``, ``PGUSER``, ``PGPASSWORD``)
| mysql (``MYSQL_HOST``, ``MYSQL_PORT``, ``MYSQL_USER``, ``MYSQL_PASSWORD``),
``LOAD_DATABASE`` (its name), ``LOAD_SESSION_ENGINE`` = db | cached_db,
``LOAD_CACHE`` = redis | locmem, ``REDIS_URL``, ``LOAD_ACTIVITY_INTERVAL`` and
``LOAD_CONN_MAX_AGE`` (seconds), ``LOAD_PGBOUNCER`` and ``LOAD_SERVER_SIDE_BINDING``
(1: on).
"""

from __future__ import annotations

import os

from example_site.settings import *  # noqa: F403

DEBUG = False
ROOT_URLCONF = "tests.load.urls"
# Sign-ins are part of the load; a real hasher would be most of it.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Persistent connections by default, as production sites run: under ASGI (a
# connection per request) one kept alive by mistake soon exhausts the server.
CONN_MAX_AGE = int(os.environ.get("LOAD_CONN_MAX_AGE", "60"))
# Each client library reads its own variables (PGHOST, MYSQL_HOST, ...); the defaults are
# the services of scripts/load.
if os.environ.get("LOAD_DB", "postgres") == "mysql":
    _engine, _env, _user, _port = "mysql", "MYSQL_", "root", "3306"
    _extra: dict[str, object] = {"OPTIONS": {"charset": "utf8mb4"}}
else:
    _engine, _env, _user, _port = "postgresql", "PG", "postgres", "5432"
    _extra = {}
DATABASES = {
    "default": {
        "ENGINE": f"django.db.backends.{_engine}",
        "NAME": os.environ.get("LOAD_DATABASE", "user_sessions_load"),
        "USER": os.environ.get(f"{_env}USER", _user),
        "PASSWORD": os.environ.get(f"{_env}PASSWORD", ""),
        "HOST": os.environ.get(f"{_env}HOST", "127.0.0.1"),
        "PORT": os.environ.get(f"{_env}PORT", _port),
        "CONN_MAX_AGE": CONN_MAX_AGE,
        "CONN_HEALTH_CHECKS": True,
        **_extra,
    }
}
if os.environ.get("LOAD_PGBOUNCER") == "1":
    # Django's requirement for transaction pooling (QuerySet.iterator()).
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
if os.environ.get("LOAD_SERVER_SIDE_BINDING") == "1":
    DATABASES["default"]["OPTIONS"] = {"server_side_binding": True}

SESSION_ENGINE = "user_sessions.backends." + os.environ.get("LOAD_SESSION_ENGINE", "db")
if os.environ.get("LOAD_CACHE", "redis") == "redis":
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/11"),
            "KEY_PREFIX": os.environ.get("LOAD_CACHE_PREFIX", "user-sessions-load"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

USER_SESSIONS_ACTIVITY_INTERVAL = int(os.environ.get("LOAD_ACTIVITY_INTERVAL", "0"))

# DEBUG is off, so Django's console handler is silent: send what matters to
# stderr, which scripts/load keeps in the server log and shows on failure.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django.request": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
        "user_sessions": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
    },
}
