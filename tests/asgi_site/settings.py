"""The test suite's settings, on a database of the test's own, behind uvicorn.

``ASGI_SITE_DATABASE`` holds the ``DATABASES["default"]`` entry as JSON;
tests/test_asgi.py creates that database, migrates it and starts the server.
"""

from __future__ import annotations

import json
import os

from tests.settings import *  # noqa: F403

DATABASES = {
    "default": {
        **json.loads(os.environ["ASGI_SITE_DATABASE"]),
        # Persistent connections, as in the report this site reproduces.
        "CONN_MAX_AGE": 600,
    }
}
ROOT_URLCONF = "tests.asgi_site.urls"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
SESSION_ENGINE = "user_sessions.backends." + os.environ.get("ASGI_SITE_SESSION_ENGINE", "db")

# DEBUG is off, so Django's console handler is silent: the test shows this
# server's output when a request fails.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
}
