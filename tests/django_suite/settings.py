"""Settings for Django's session tests: Django's test settings with our app in place of its own.

As Django's ``tests/test_sqlite.py``: ``USE_TZ`` off (the ``...WithTimeZone``
classes turn it on), the default ``TIME_ZONE``, a local-memory default cache.
The database is chosen as for this package's suite (``USER_SESSIONS_TEST_DB``).
"""

from __future__ import annotations

import copy
import os

from tests import settings as package_settings

SECRET_KEY = "django_tests_secret_key"
USE_TZ = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

DATABASES = copy.deepcopy(package_settings.DATABASES)
if "TEST" in DATABASES["default"]:
    # Apart from the package suite's database, which may be in use meanwhile.
    DATABASES["default"]["TEST"]["NAME"] = "test_django_sessions" + os.environ.get(
        "TEST_DB_SUFFIX", ""
    )

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
REDIS_CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9"),
        "KEY_PREFIX": "user-sessions-django-tests",
    }
}

# No django.contrib.sessions: this package replaces it (model, engines,
# clearsessions). sessions_tests holds Django's CustomSession model.
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "user_sessions",
    "sessions_tests",
]
MIDDLEWARE = [
    "user_sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
SESSION_ENGINE = "user_sessions.backends.db"
