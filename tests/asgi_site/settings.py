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
        # Persistent connections: a wrapper something keeps alive then keeps
        # its database connection open too.
        "CONN_MAX_AGE": 600,
    }
}
ROOT_URLCONF = "tests.asgi_site.urls"
# Nothing shared with the suite's cache (its Redis keys, say).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# DEBUG is off, so Django's console handler is silent: the test shows this
# server's output when a request fails.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
}
