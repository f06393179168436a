"""Settings for the benchmarks: both session apps installed, one database from the environment.

``BENCH_DB`` = sqlite (default) | postgres picks the database; the cache is
Redis when one answers at ``REDIS_URL`` (default ``redis://127.0.0.1:6379/10``)
and a process-local cache otherwise. Each benchmark round switches
``SESSION_ENGINE`` and ``MIDDLEWARE`` between Django's stores and ours.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

SECRET_KEY = "benchmarks-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
USE_TZ = True
TIME_ZONE = "UTC"
USE_I18N = True
LANGUAGE_CODE = "en"

DB_VENDOR = os.environ.get("BENCH_DB", "sqlite")
# Persistent connections, as a production site runs: reconnecting per request
# would bury the session store's cost under connection setup.
CONN_MAX_AGE = None

if DB_VENDOR == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("PGDATABASE", "postgres"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "PASSWORD": os.environ.get("PGPASSWORD", ""),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "CONN_MAX_AGE": CONN_MAX_AGE,
            # A database of its own, created and dropped by each run (the
            # process id keeps two runs at once apart).
            "TEST": {"NAME": f"bench_user_sessions_{os.getpid()}"},
        }
    }
elif DB_VENDOR == "sqlite":
    # A file rather than ":memory:" so every thread (ASGI) sees the same data.
    _sqlite_file = Path(tempfile.gettempdir()) / f"bench_user_sessions_{os.getpid()}.sqlite3"
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(_sqlite_file),
            "CONN_MAX_AGE": CONN_MAX_AGE,
            "TEST": {"NAME": str(_sqlite_file)},
        }
    }
else:
    raise RuntimeError(f"BENCH_DB must be 'sqlite' or 'postgres', not {DB_VENDOR!r}")


def _redis_answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 0.2):
            return True
    except OSError:
        return False


REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/10")
if os.environ.get("BENCH_CACHE", "redis") == "redis" and _redis_answers(REDIS_URL):
    CACHE_KIND = "redis"
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "user-sessions-bench",
        }
    }
else:
    CACHE_KIND = "locmem"
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Both stores side by side: their tables (django_session and
    # user_sessions_session) and app labels differ.
    "django.contrib.sessions",
    "django_htmx",
    "crispy_forms",
    "user_sessions",
]
SILENCED_SYSTEM_CHECKS = ["user_sessions.W004"]


def middleware(session_middleware: str) -> list[str]:
    """The stack every side runs; only the session middleware differs."""
    return [
        "django.middleware.security.SecurityMiddleware",
        session_middleware,
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django_htmx.middleware.HtmxMiddleware",
    ]


MIDDLEWARE = middleware("user_sessions.middleware.SessionMiddleware")
SESSION_ENGINE = "user_sessions.backends.db"
ROOT_URLCONF = "benchmarks.urls"
LOGIN_URL = "/login/"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

STATIC_URL = "/static/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
# Filled in by the widget benchmark when it can write a GeoIP database.
GEOIP_PATH = None
