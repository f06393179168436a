"""What account security costs: ordinary requests with it all on, and a sign-in with alerts.

History, sign-in alerts and the session policy must leave an ordinary signed-in
request exactly as it was (the same queries and the same activity writes);
they may only cost something when a session starts or ends. This measures both
stores with everything off and everything on, and counts the statements of one
sign-in through Django's ``LoginView`` from a device the account has not used
(so the alert path runs in full: new-device lookup, cap, mail after commit).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from benchmarks.harness import OURS_CACHED, OURS_DB, Side, count_statements, sign_in
from benchmarks.writes import _traffic
from user_sessions.conf import app_settings

OFF = {
    "USER_SESSIONS_HISTORY_DAYS": 0,
    "USER_SESSIONS_SIGN_IN_ALERTS": False,
    "USER_SESSIONS_MAX_SESSIONS": 0,
    "USER_SESSIONS_IDLE_TIMEOUT": 0,
    "USER_SESSIONS_LIFETIME": 0,
}
ON = {
    "USER_SESSIONS_HISTORY_DAYS": 90,
    "USER_SESSIONS_SIGN_IN_ALERTS": True,
    "USER_SESSIONS_MAX_SESSIONS": 5,
    # Above twice the activity interval, as check E012 asks.
    "USER_SESSIONS_IDLE_TIMEOUT": 3_600,
    "USER_SESSIONS_LIFETIME": 30 * 86_400,
}
# One device per measurement, none like the traffic's Chrome on Windows: each
# sign-in is from a device new to the account, so the alert path runs in full
# (an alert goes once per device and day).
NEW_DEVICES = {
    ("ours db", "off"): "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    ("ours db", "on"): (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
    ),
    ("ours cached_db", "off"): (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
    ),
    ("ours cached_db", "on"): (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Safari/605.1.15"
    ),
}
NEW_DEVICE_IP = "198.51.100.20"


@contextmanager
def configured(values: dict[str, Any]) -> Iterator[None]:
    """Assign ``values`` on the settings object (as ``Side.settings`` does), then restore."""
    missing = object()
    saved = {name: getattr(settings, name, missing) for name in values}
    saved_backend = settings.EMAIL_BACKEND
    for name, value in values.items():
        setattr(settings, name, value)
    # Mail stays in memory: the count is the point, not an SMTP round trip.
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    app_settings.reload()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is missing:
                delattr(settings, name)
            else:
                setattr(settings, name, value)
        settings.EMAIL_BACKEND = saved_backend
        app_settings.reload()


def _sign_in_statements(side: Side, user: Any, user_agent: str) -> dict[str, int]:
    """One sign-in through the login form from a device the account has not used."""
    sign_in(side, user)  # an earlier session: this is not the account's first sign-in
    mail.outbox = []
    client = Client(HTTP_USER_AGENT=user_agent, REMOTE_ADDR=NEW_DEVICE_IP)
    with count_statements() as statements:
        response = client.post("/login/", {"username": user.get_username(), "password": "x"})
    assert response.status_code == 302, response.status_code
    return {
        "queries": statements.queries,
        "writes": statements.writes,
        "mails": len(mail.outbox),
    }


def measure(identical: int, simulated_seconds: int) -> list[dict[str, Any]]:
    # A user of its own, with a primary key no earlier run used: the daily
    # alert mark outlives the throwaway database in a shared cache (Redis),
    # and the same key today would hold back the alert this counts.
    user = get_user_model().objects.create_user(
        "security", email="security@example.com", password="x", pk=secrets.randbelow(2**30) + 2
    )
    interval = app_settings.ACTIVITY_INTERVAL
    rows = []
    for side in (OURS_DB, OURS_CACHED):
        row: dict[str, Any] = {"side": side.label}
        for state, values in (("off", OFF), ("on", ON)):
            with configured(values), side.settings():
                burst = _traffic(side, user, identical, spacing=interval * 0.9 / identical)
                hour = _traffic(side, user, simulated_seconds, spacing=1.0)
                signing_in = _sign_in_statements(side, user, NEW_DEVICES[side.label, state])
            row[state] = {
                "identical_queries": burst["queries"],
                "identical_writes": burst["writes"],
                "simulated_queries": hour["queries"],
                "simulated_writes": hour["writes"],
                "sign_in_queries": signing_in["queries"],
                "sign_in_writes": signing_in["writes"],
                "sign_in_mails": signing_in["mails"],
            }
        row["identical_requests"] = identical
        row["simulated_seconds"] = simulated_seconds
        rows.append(row)
    return rows
