"""Write discipline: how often an unchanged session costs an UPDATE.

``timezone.now`` is replaced by a clock the benchmark moves, so "an hour of one
request per second" takes seconds. Each session is signed in one activity
interval before the traffic starts, so its first request is due an activity
write: the targets are that one write and nothing more inside the interval,
and about one write per interval over the hour.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

from django.utils import timezone

from benchmarks.harness import (
    CHROME_WINDOWS,
    CLIENT_IP,
    OURS_CACHED,
    OURS_DB,
    FakeClock,
    Side,
    WsgiClient,
    count_statements,
    sign_in,
)
from user_sessions.conf import app_settings


def _traffic(side: Side, user: Any, requests: int, spacing: float) -> dict[str, int]:
    """Sign in, then serve ``requests`` identical requests ``spacing`` seconds apart."""
    interval = app_settings.ACTIVITY_INTERVAL
    start = timezone.now().replace(microsecond=0)
    clock = FakeClock(start - datetime.timedelta(seconds=interval + 1))
    client = WsgiClient(side)
    with clock.installed(), side.settings():
        session_key = sign_in(side, user)
        clock.now = start
        environ = [client.environ("/read/", session_key, CLIENT_IP, CHROME_WINDOWS)]
        with count_statements() as statements:
            for _ in range(requests):
                client.run(environ)
                clock.advance(spacing)
    return {"queries": statements.queries, "writes": statements.writes}


def measure(user: Any, identical: int, simulated_seconds: int) -> list[dict[str, Any]]:
    interval = app_settings.ACTIVITY_INTERVAL
    rows = []
    # Django's stores never write for an unchanged session (they keep no
    # activity); the per-request counts show it.
    for side in (OURS_DB, OURS_CACHED):
        # The burst stays inside one interval whatever its size.
        burst = _traffic(side, user, identical, spacing=interval * 0.9 / identical)
        hour = _traffic(side, user, simulated_seconds, spacing=1.0)
        rows.append(
            {
                "side": side.label,
                "interval_s": interval,
                "identical_requests": identical,
                "identical_writes": burst["writes"],
                "identical_queries": burst["queries"],
                "simulated_seconds": simulated_seconds,
                "simulated_writes": hour["writes"],
                "simulated_queries": hour["queries"],
                "expected_identical_writes": 1,
                "expected_simulated_writes": math.ceil(simulated_seconds / max(interval, 1)),
            }
        )
    return rows
