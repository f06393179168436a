"""Django's session test classes with this package's engines, model and middleware swapped in.

Each class below subclasses Django's and changes only what names the code
under test (``backend``, ``session_engine``, settings for the engine and
cache, and the middleware, store and model Django's middleware tests name as
module globals). No test method is overridden and no assertion changed.
``EXCLUDED`` lists, with reasons, the tests that do not apply.
"""

from __future__ import annotations

from typing import Any
from unittest import mock, skipUnless

from django.test import override_settings
from sessions_tests import tests as django_tests  # Django's, fetched by source.py

from tests.django_suite.settings import REDIS_CACHES
from user_sessions.backends import cached_db, db
from user_sessions.middleware import SessionMiddleware

DB = "user_sessions.backends.db"
CACHED_DB = "user_sessions.backends.cached_db"

EXCLUDED = {
    "test_session_str": (
        "str(session) is the session's public handle on purpose, never its key: "
        "the string reaches admin pages and logs, and a key there could be replayed as a cookie"
    ),
}


def _redis_reachable() -> bool:
    try:
        import redis

        redis.Redis.from_url(REDIS_CACHES["default"]["LOCATION"], socket_connect_timeout=3).ping()
    except Exception:
        return False
    return True


REDIS_UP = _redis_reachable()
needs_redis = skipUnless(REDIS_UP, f"Redis not reachable at {REDIS_CACHES['default']['LOCATION']}")


class OurMiddlewareAndStore:
    """Django's middleware tests name its middleware and database store as module globals.

    (Its ``Session`` global is already ours: see ``__main__.our_session_model``.)
    """

    def setUp(self) -> None:
        patcher = mock.patch.multiple(
            django_tests,
            SessionMiddleware=SessionMiddleware,
            DatabaseSession=db.SessionStore,
        )
        patcher.start()
        self.addCleanup(patcher.stop)  # type: ignore[attr-defined]
        super().setUp()  # type: ignore[misc]


# -- user_sessions.backends.db -------------------------------------------------


class DatabaseSessionTests(django_tests.DatabaseSessionTests):
    backend = db.SessionStore
    session_engine = DB


class DatabaseSessionWithTimeZoneTests(django_tests.DatabaseSessionWithTimeZoneTests):
    backend = db.SessionStore
    session_engine = DB


class CustomDatabaseSessionTests(django_tests.CustomDatabaseSessionTests):
    """Django's own: its custom store extends our database engine (see ``__main__``)."""


@override_settings(SESSION_ENGINE=DB)
class SessionMiddlewareTests(OurMiddlewareAndStore, django_tests.SessionMiddlewareTests):
    pass


class ClearSessionsCommandTests(django_tests.ClearSessionsCommandTests):
    """Ours: this package's ``clearsessions`` replaces Django's."""


# -- user_sessions.backends.cached_db on a local-memory cache -------------------


@override_settings(SESSION_ENGINE=CACHED_DB)
class CacheDBSessionTests(django_tests.CacheDBSessionTests):
    backend = cached_db.SessionStore


@override_settings(SESSION_ENGINE=CACHED_DB)
class CacheDBSessionWithTimeZoneTests(django_tests.CacheDBSessionWithTimeZoneTests):
    backend = cached_db.SessionStore


@override_settings(SESSION_ENGINE=CACHED_DB)
class SessionMiddlewareCachedDBTests(OurMiddlewareAndStore, django_tests.SessionMiddlewareTests):
    pass


# -- user_sessions.backends.cached_db on Redis ----------------------------------


@needs_redis
@override_settings(SESSION_ENGINE=CACHED_DB, CACHES=REDIS_CACHES)
class CacheDBSessionRedisTests(django_tests.CacheDBSessionTests):
    backend = cached_db.SessionStore


@needs_redis
@override_settings(SESSION_ENGINE=CACHED_DB, CACHES=REDIS_CACHES)
class CacheDBSessionWithTimeZoneRedisTests(django_tests.CacheDBSessionWithTimeZoneTests):
    backend = cached_db.SessionStore


@needs_redis
@override_settings(SESSION_ENGINE=CACHED_DB, CACHES=REDIS_CACHES)
class SessionMiddlewareCachedDBRedisTests(
    OurMiddlewareAndStore, django_tests.SessionMiddlewareTests
):
    pass


CLASSES: list[type[Any]] = [
    DatabaseSessionTests,
    DatabaseSessionWithTimeZoneTests,
    CustomDatabaseSessionTests,
    SessionMiddlewareTests,
    ClearSessionsCommandTests,
    CacheDBSessionTests,
    CacheDBSessionWithTimeZoneTests,
    SessionMiddlewareCachedDBTests,
    CacheDBSessionRedisTests,
    CacheDBSessionWithTimeZoneRedisTests,
    SessionMiddlewareCachedDBRedisTests,
]
