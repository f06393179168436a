"""The "Your devices" widget: render time, size, queries and label caching by number of sessions.

Each user's sessions carry distinct user agents and addresses (the worst case
for the label caches). The first render starts with empty caches; the second
is what a refresh costs, and must parse no user agent and look up no address
again. One render shows this device and ``USER_SESSIONS_WIDGET_LIMIT`` others
whatever the number of sessions; "Show all" loads ``PAGE_SIZE`` rows per
request, which is also where the cost of one row is measured.
"""

from __future__ import annotations

import datetime
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import geoip2.database
import ua_parser
from django.conf import settings
from django.contrib.auth import get_user_model
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.utils import timezone

from benchmarks.harness import CHROME_WINDOWS, OURS_DB, WsgiClient, count_statements, sign_in
from user_sessions import devices
from user_sessions.conf import app_settings
from user_sessions.models import Session
from user_sessions.widget import PAGE_SIZE, build_device_page

WIDGET_TEMPLATE = "user_sessions/widget.html"
PAGE_TEMPLATE = "user_sessions/partials/page.html"
# What one render may cost at 10,000 sessions (reported; the size is a count).
RENDER_MS_TARGET = 50
HTML_BYTES_TARGET = 100 * 1024

_USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/{v}.0.{n}.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{v} like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.{v} Mobile/15E{n} Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.{n}",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/{v}.{n} Safari/605.1.15",
)


def _user_agent(i: int) -> str:
    # Distinct strings, so each one costs a parse until it is cached.
    return _USER_AGENTS[i % len(_USER_AGENTS)].format(v=100 + i % 30, n=i)


def _ip(i: int) -> str:
    # The networks the GeoIP test database knows, and distinct addresses in them.
    if i % 3 == 0:
        return f"203.0.113.{i % 250 + 1}"
    if i % 3 == 1:
        return f"198.51.100.{i % 250 + 1}"
    return f"2001:db8:1::{i:x}"


@contextmanager
def geoip_database() -> Iterator[str]:
    """Point ``GEOIP_PATH`` at a small City database; yields what is in use."""
    try:
        from tests.geoip import write_city_db
    except ImportError as exc:  # mmdb-writer is a test dependency
        yield f"off ({exc.name} not installed)"
        return
    with tempfile.TemporaryDirectory() as directory:
        path = write_city_db(Path(directory) / "bench-city.mmdb")
        saved = settings.GEOIP_PATH
        settings.GEOIP_PATH = str(path)
        devices.reset_caches()
        try:
            yield "test City database (tests/geoip.py)"
        finally:
            settings.GEOIP_PATH = saved
            devices.reset_caches()


def give_sessions(user: Any, count: int) -> None:
    """``count`` live sessions for ``user``, each from its own browser and address."""
    now = timezone.now()
    Session.objects.bulk_create(
        (
            Session(
                session_key=secrets.token_hex(16),
                session_data="",
                expire_date=now + datetime.timedelta(days=14),
                user=user,
                user_agent=_user_agent(i),
                ip=_ip(i),
                created_at=now - datetime.timedelta(days=i % 90, minutes=i),
                last_activity=now - datetime.timedelta(minutes=i * 7),
            )
            for i in range(count)
        ),
        batch_size=1000,
    )


class Lookups:
    """Counts the expensive calls under the label caches."""

    def __init__(self) -> None:
        self.user_agent_parses = 0
        self.geoip_lookups = 0

    @contextmanager
    def counting(self) -> Iterator[Lookups]:
        parse, city, country = (
            ua_parser.parse,
            geoip2.database.Reader.city,
            geoip2.database.Reader.country,
        )

        def counted_parse(*args: Any, **kwargs: Any) -> Any:
            self.user_agent_parses += 1
            return parse(*args, **kwargs)

        def counted(method: Any) -> Any:
            def lookup(*args: Any, **kwargs: Any) -> Any:
                self.geoip_lookups += 1
                return method(*args, **kwargs)

            return lookup

        with (
            mock.patch.object(ua_parser, "parse", counted_parse),
            mock.patch.object(geoip2.database.Reader, "city", counted(city)),
            mock.patch.object(geoip2.database.Reader, "country", counted(country)),
        ):
            yield self


def _render(request: Any, template: str = WIDGET_TEMPLATE, **context: Any) -> dict[str, Any]:
    lookups = Lookups()
    with lookups.counting(), count_statements() as statements:
        started = time.perf_counter()
        html = render_to_string(template, {"heading_level": 2, **context}, request)
        elapsed = time.perf_counter() - started
    return {
        "ms": elapsed * 1000,
        "queries": statements.queries,
        "user_agent_parses": lookups.user_agent_parses,
        "geoip_lookups": lookups.geoip_lookups,
        "html": html,
    }


def _timed_request(client: WsgiClient, environ: dict[str, Any]) -> tuple[float, int]:
    """Milliseconds and queries of one request, after one that warmed it up."""
    client.run([environ])
    with count_statements() as statements:
        started = time.perf_counter()
        client.run([environ])
        elapsed = (time.perf_counter() - started) * 1000
    return elapsed, statements.queries


def _page_of_rows(request: Any, repeats: int) -> dict[str, Any]:
    """One "Show more" page (``PAGE_SIZE`` rows), built and rendered: the cost per row.

    Wall time (median) and CPU time of this process (the least of the
    rounds, which a busy machine disturbs least).
    """
    _render(request, PAGE_TEMPLATE, widget=build_device_page(request, None))  # warm the caches
    wall, cpu = [], []
    html = ""
    for _ in range(max(repeats, 5)):
        started, started_cpu = time.perf_counter(), time.process_time()
        page = build_device_page(request, None)
        html = render_to_string(PAGE_TEMPLATE, {"widget": page}, request)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    rows = html.count('<li class="us-row')
    return {
        "page_rows": rows,
        "row_ms": statistics.median(wall) / rows,
        "row_cpu_ms": min(cpu) / rows,
        "row_bytes": len(html.encode()) / rows,
    }


def measure(sizes: tuple[int, ...], repeats: int) -> dict[str, Any]:
    factory = RequestFactory(HTTP_USER_AGENT=CHROME_WINDOWS, REMOTE_ADDR="203.0.113.10")
    client = WsgiClient(OURS_DB)
    limit = app_settings.WIDGET_LIMIT
    rows = []
    html_by_size: dict[int, str] = {}
    per_row: dict[str, Any] = {}
    with geoip_database() as geoip, OURS_DB.settings():
        for size in sizes:
            user = get_user_model().objects.create_user(f"widget-{size}")
            # The browser rendering the widget is one of the ``size`` sessions.
            current_key = sign_in(OURS_DB, user)
            give_sessions(user, size - 1)
            request = factory.get("/account/sessions/")
            request.user = user
            request.session = OURS_DB.store_class(current_key)

            devices.reset_caches()
            first = _render(request)
            again = [_render(request) for _ in range(repeats)]
            second = again[0]
            html_by_size[size] = second["html"]
            shown = second["html"].count('<li class="us-row')
            if shown != min(size, limit + 1):
                raise AssertionError(f"widget shows {shown} rows of {size} sessions")

            # The same list as the widget's periodic htmx refresh fetches it.
            environ = client.environ(
                "/account/sessions/", current_key, "203.0.113.10", CHROME_WINDOWS
            )
            environ["HTTP_HX_REQUEST"] = "true"
            refresh_ms, refresh_queries = _timed_request(client, environ)
            row: dict[str, Any] = {
                "sessions": size,
                "rows_shown": shown,
                "html_bytes": len(second["html"].encode()),
                "first_render_ms": first["ms"],
                "render_ms": statistics.median(r["ms"] for r in again),
                "queries_first": first["queries"],
                "queries": second["queries"],
                "user_agent_parses_first": first["user_agent_parses"],
                "user_agent_parses_second": second["user_agent_parses"],
                "geoip_lookups_first": first["geoip_lookups"],
                "geoip_lookups_second": second["geoip_lookups"],
                "refresh_request_ms": refresh_ms,
                "refresh_request_queries": refresh_queries,
            }
            if size > limit + 1:
                # "Show all": the page after the first one, as htmx asks for it.
                environ["QUERY_STRING"] = (
                    "after=" + second["html"].split("?after=", 1)[1].split('"', 1)[0]
                )
                row["more_request_ms"], row["more_request_queries"] = _timed_request(
                    client, environ
                )
            rows.append(row)
            if size > PAGE_SIZE and not per_row:
                per_row = {"sessions": size, **_page_of_rows(request, repeats)}
    return {
        "geoip": geoip,
        "limit": limit,
        # "Recent activity" costs one query of its own when shown.
        "history_shown": bool(app_settings.HISTORY_DAYS and app_settings.HISTORY_WIDGET_LIMIT),
        "page_size": PAGE_SIZE,
        "per_row": per_row,
        "rows": rows,
        "html": html_by_size,
    }
