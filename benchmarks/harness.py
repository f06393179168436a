"""What every benchmark shares: the stores under test, in-process WSGI/ASGI clients,
statement counting, a controllable clock and the throwaway database.
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import itertools
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import import_module
from io import BytesIO
from typing import Any
from unittest import mock

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection

from benchmarks.settings import middleware
from user_sessions.conf import app_settings

CACHE_USER = "USER_SESSIONS_CACHE_USER"

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
CLIENT_IP = "203.0.113.10"


# The stores under test ---------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """One session store with the middleware it is meant to run under."""

    label: str
    engine: str
    session_middleware: str
    # USER_SESSIONS_CACHE_USER: the owner's row in the cache as well.
    cache_user: bool = False

    @property
    def store(self) -> str:
        """The store's name as the tables show it."""
        name = self.engine.rsplit(".", 1)[1]
        return f"{name}, `CACHE_USER`" if self.cache_user else name

    @property
    def ours(self) -> bool:
        return self.engine.startswith("user_sessions.")

    @property
    def cached(self) -> bool:
        return self.engine.endswith("cached_db")

    @contextmanager
    def settings(self) -> Iterator[None]:
        """Make this side the configured one.

        Assigned on the settings object itself rather than through
        ``override_settings``: under an override every setting a site leaves
        unset costs an extra failed lookup, which would tax the store that
        reads optional settings (ours) more than a real site does.
        """
        saved = settings.SESSION_ENGINE, settings.MIDDLEWARE
        settings.SESSION_ENGINE = self.engine
        settings.MIDDLEWARE = middleware(self.session_middleware)
        self._cache_user(self.cache_user)
        try:
            yield
        finally:
            settings.SESSION_ENGINE, settings.MIDDLEWARE = saved
            self._cache_user(False)

    @staticmethod
    def _cache_user(value: bool) -> None:
        if getattr(settings, CACHE_USER, False) == value:
            return
        setattr(settings, CACHE_USER, value)
        # Assigned directly, no setting_changed signal: the package's
        # settings drop what they kept (once per round, not per request).
        app_settings.reload()

    @property
    def store_class(self) -> type[Any]:
        return import_module(self.engine).SessionStore  # type: ignore[no-any-return]


STOCK_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"
OUR_MIDDLEWARE = "user_sessions.middleware.SessionMiddleware"

STOCK_DB = Side("stock db", "django.contrib.sessions.backends.db", STOCK_MIDDLEWARE)
STOCK_CACHED = Side(
    "stock cached_db", "django.contrib.sessions.backends.cached_db", STOCK_MIDDLEWARE
)
OURS_DB = Side("ours db", "user_sessions.backends.db", OUR_MIDDLEWARE)
OURS_CACHED = Side("ours cached_db", "user_sessions.backends.cached_db", OUR_MIDDLEWARE)
OURS_CACHED_USER = Side(
    "ours cached_db, CACHE_USER",
    "user_sessions.backends.cached_db",
    OUR_MIDDLEWARE,
    cache_user=True,
)
SIDES = (STOCK_DB, OURS_DB, STOCK_CACHED, OURS_CACHED, OURS_CACHED_USER)
# Each of ours is compared with the stock store it replaces.
PAIRS = ((STOCK_DB, OURS_DB), (STOCK_CACHED, OURS_CACHED), (STOCK_CACHED, OURS_CACHED_USER))


def sign_in(side: Side, user: Any, ip: str = CLIENT_IP, user_agent: str = CHROME_WINDOWS) -> str:
    """Create a signed-in session for ``user`` in ``side``'s store; returns its cookie value.

    The session holds exactly what ``django.contrib.auth.login`` puts there,
    so every side serves the same authenticated request.
    """
    with side.settings():
        store_class = side.store_class
        store = store_class(user_agent=user_agent, ip=ip) if side.ours else store_class()
        store[SESSION_KEY] = user._meta.pk.value_to_string(user)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.save()
        return str(store.session_key)


# In-process clients -------------------------------------------------------------


def _start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
    if not status.startswith("200"):
        raise AssertionError(f"benchmark request answered {status}")
    return None


class WsgiClient:
    """Calls a ``WSGIHandler`` directly with environ dicts: no test-client overhead."""

    def __init__(self, side: Side) -> None:
        with side.settings():
            self.handler = WSGIHandler()

    @staticmethod
    def environ(path: str, session_key: str, ip: str, user_agent: str) -> dict[str, Any]:
        return {
            "REQUEST_METHOD": "GET",
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": ip,
            "HTTP_HOST": "testserver",
            "HTTP_USER_AGENT": user_agent,
            "HTTP_COOKIE": f"{settings.SESSION_COOKIE_NAME}={session_key}",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }

    def run(self, environs: list[dict[str, Any]]) -> bytes:
        """Serve every request in order; returns the last body."""
        body = b""
        for base in environs:
            environ = dict(base)
            environ["wsgi.input"] = BytesIO()
            response = self.handler(environ, _start_response)
            body = b"".join(response)
            response.close()
        return body


class AsgiClient:
    """Drives an ``ASGIHandler`` in-process.

    The whole batch runs inside one ``async_to_sync`` call from this thread, so
    the ORM's thread-sensitive work happens here on the one persistent
    connection (an ASGI server would open a thread, and so a connection, per
    request, burying the store's cost under connection setup).
    """

    def __init__(self, side: Side) -> None:
        with side.settings():
            self.handler = ASGIHandler()

    @staticmethod
    def scope(path: str, session_key: str, ip: str, user_agent: str) -> dict[str, Any]:
        cookie = f"{settings.SESSION_COOKIE_NAME}={session_key}"
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"host", b"testserver"),
                (b"user-agent", user_agent.encode()),
                (b"cookie", cookie.encode()),
            ],
            "client": (ip, 50000),
            "server": ("testserver", 80),
        }

    def run(self, scopes: list[dict[str, Any]]) -> bytes:
        return async_to_sync(self._run)(scopes)  # type: ignore[no-any-return]

    async def _run(self, scopes: list[dict[str, Any]]) -> bytes:
        body = b""
        for scope in scopes:
            body = await self._call(scope)
        return body

    async def _call(self, scope: dict[str, Any]) -> bytes:
        sent_request = False
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent_request
            if not sent_request:
                sent_request = True
                return {"type": "http.request", "body": b"", "more_body": False}
            # Django listens for a disconnect until the response is out, then
            # cancels this wait.
            await asyncio.Event().wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] != 200:
                raise AssertionError(f"benchmark request answered {message['status']}")
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.handler(scope, receive, send)
        return b"".join(chunks)


# Statement counting --------------------------------------------------------------

WRITE_KINDS = ("INSERT", "UPDATE", "DELETE")


@dataclass
class Statements:
    """Every statement the default connection ran, with its kind and duration."""

    kinds: Counter[str] = field(default_factory=Counter)
    seconds: Counter[str] = field(default_factory=Counter)
    longest: float = 0.0
    longest_sql: str = ""
    keep_sql: bool = False
    log: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.kinds.values())

    @property
    def queries(self) -> int:
        """Statements that touch data (transaction control such as SAVEPOINT left out)."""
        return sum(self.kinds[kind] for kind in ("SELECT", *WRITE_KINDS))

    @property
    def writes(self) -> int:
        return sum(self.kinds[kind] for kind in WRITE_KINDS)

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = time.perf_counter() - started
            kind = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"
            self.kinds[kind] += 1
            self.seconds[kind] += elapsed
            if elapsed > self.longest:
                self.longest, self.longest_sql = elapsed, sql
            if self.keep_sql:
                self.log.append((sql, params))


@contextmanager
def count_statements(keep_sql: bool = False) -> Iterator[Statements]:
    statements = Statements(keep_sql=keep_sql)
    with connection.execute_wrapper(statements):
        yield statements


# Time ------------------------------------------------------------------------------


class FakeClock:
    """Replaces ``django.utils.timezone.now`` so an hour of traffic runs in seconds."""

    def __init__(self, start: datetime.datetime) -> None:
        self.now = start

    def advance(self, seconds: float) -> None:
        self.now += datetime.timedelta(seconds=seconds)

    @contextmanager
    def installed(self) -> Iterator[FakeClock]:
        with mock.patch("django.utils.timezone.now", lambda: self.now):
            yield self


def timed(run: Callable[[], Any]) -> float:
    """Seconds ``run`` took, with garbage from earlier work collected first."""
    gc.collect()
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def timed_both(run: Callable[[], Any]) -> tuple[float, float]:
    """Wall-clock and CPU seconds (this process only) that ``run`` took."""
    gc.collect()
    started, started_cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - started, time.process_time() - started_cpu


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def rotations(items: tuple[Any, ...], rounds: int) -> Iterator[tuple[Any, ...]]:
    """``items`` in a different order each round, so no side always runs first."""
    for shift in itertools.islice(itertools.count(), rounds):
        k = shift % len(items)
        yield items[k:] + items[:k]


# The database ----------------------------------------------------------------------


@contextmanager
def throwaway_database() -> Iterator[str]:
    """Create (and afterwards drop) the benchmark database, fully migrated."""
    old_name = connection.settings_dict["NAME"]
    name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        yield name
    finally:
        connection.close()
        connection.creation.destroy_test_db(old_name, verbosity=0)
